/**
 * Socket network backend framing (QEMU -netdev socket: a 4-byte big-endian length, then
 * the frame): a hostile peer's byte stream, cut into chunks anywhere, must give exactly
 * the frames a straightforward reading gives, refuse an oversized length on its header,
 * and never hold more than one partial frame.
 */
import { SOCKET_NET_MAX_FRAME, SocketFrameDecoder } from "@visor/devices/node";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";

/** A frame of the stream: a length (sometimes not the payload's) and a payload. */
const frame = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((p) => ({ len: p.length, payload: p })),
  fc.record({
    len: fc.oneof(
      fc.constantFrom(0, SOCKET_NET_MAX_FRAME, SOCKET_NET_MAX_FRAME + 1, 0xffff_ffff, 0x8000_0000),
      fc.nat(SOCKET_NET_MAX_FRAME + 16),
    ),
    payload: fc.uint8Array({ maxLength: 32 }),
  }),
);

interface Input {
  frames: { len: number; payload: Uint8Array }[];
  cuts: number[];
  garbage: Uint8Array;
}

function wire(frames: Input["frames"], garbage: Uint8Array): Uint8Array {
  const parts: number[] = [];
  for (const f of frames) {
    parts.push(
      (f.len >>> 24) & 0xff,
      (f.len >>> 16) & 0xff,
      (f.len >>> 8) & 0xff,
      f.len & 0xff,
      ...f.payload,
    );
  }
  parts.push(...garbage);
  return Uint8Array.from(parts);
}

/** The frames a whole-buffer reading of `bytes` gives, and whether it hits a bad length. */
function reference(bytes: Uint8Array): { frames: Uint8Array[]; refused: boolean } {
  const frames: Uint8Array[] = [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  while (bytes.length - off >= 4) {
    const len = dv.getUint32(off);
    if (len > SOCKET_NET_MAX_FRAME) return { frames, refused: true };
    if (bytes.length - off - 4 < len) break;
    if (len > 0) frames.push(bytes.slice(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return { frames, refused: false };
}

const surface: FuzzSurface<Input> = {
  name: "netsock",
  description:
    "socket net framing: hostile lengths and chunk splits; exact frames, refusal on the header, one partial frame held",
  arbitrary: fc.record({
    frames: fc.array(frame, { maxLength: 12 }),
    cuts: fc.array(fc.nat(2000), { maxLength: 8 }),
    garbage: fc.uint8Array({ maxLength: 16 }),
  }),
  check({ frames, cuts, garbage }) {
    const bytes = wire(frames, garbage);
    const want = reference(bytes);
    const d = new SocketFrameDecoder();
    const got: Uint8Array[] = [];
    const points = [...new Set(cuts.filter((c) => c < bytes.length))].sort((a, b) => a - b);
    let from = 0;
    let refused = false;
    for (const to of [...points, bytes.length]) {
      if (refused) break;
      refused = !d.push(bytes.slice(from, to), (f) => got.push(f));
      from = to;
      invariant(d.buffered <= 4 + SOCKET_NET_MAX_FRAME, `holds ${d.buffered} bytes`);
    }
    invariant(refused === want.refused, `refused ${refused}, expected ${want.refused}`);
    invariant(got.length === want.frames.length, `${got.length} frames, expected ${want.frames.length}`);
    got.forEach((f, i) => {
      const w = want.frames[i]!;
      invariant(f.length === w.length && f.every((b, j) => b === w[j]), `frame ${i} differs`);
    });
    if (refused) invariant(d.buffered === 0, "kept bytes after refusing a length");
  },
  ciRuns: 2000,
};

export default surface;
