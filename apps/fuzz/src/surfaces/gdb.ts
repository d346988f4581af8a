/**
 * The GDB remote stub (`GdbStub`, @visor/cpu) against a hostile client: packets built
 * from the protocol's grammar with hostile numbers (addresses, lengths, register numbers,
 * thread ids), raw garbage between them, Ctrl-C bytes, all cut into chunks anywhere, while
 * the hart runs between chunks under whatever breakpoints, watchpoints and steps the
 * client set. Invariants: no host exception from the stub or the hart (a bad packet is an
 * error reply, never a throw); every reply fits in one packet of the advertised size; at
 * most one reply per packet and stop.
 */
import { GdbStub, type GdbTarget, Hart, MAX_PACKET } from "@visor/cpu";
import { GuestRam, hpa } from "@visor/memory";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";

const BASE = 0x8000_0000;
const RAM = 64 << 10;
const bus = { read: () => -1, write: () => false, read64: () => undefined, write64: () => false };
// addi x1,x1,1 ; sd x1,0(x2) ; c.addi x3,1 ; c.nop ; lr.d x5,(x2) ; sc.d x6,x1,(x2) ; jal x0,-18
const PROGRAM = [0x00108093, 0x00113023, 0x00010185, 0x1001_32af, 0x1811_332f, 0xfedff06f];

const hex = (n: bigint) => n.toString(16);
const hostileNumber = fc.oneof(
  fc.constantFrom(0n, 1n, 0x8000_0000n, 0x8000_0ffcn, 0x8000_fff8n, 0xffff_ffffn, 2n ** 63n, 2n ** 64n - 1n),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.bigInt({ min: 0x8000_0000n, max: 0x8001_0010n }),
);
const hexArg = fc.oneof(
  hostileNumber.map(hex),
  fc.constantFrom("", "-1", "zz", "0".repeat(40), "ffffffffffffffffff"),
);
const packet: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "?",
    "g",
    "qSupported",
    "qfThreadInfo",
    "qsThreadInfo",
    "qC",
    "qAttached",
    "vCont?",
    "s",
    "c",
  ),
  fc.constantFrom("QStartNoAckMode", "D", "vMustReplyEmpty", "k"),
  fc.tuple(hexArg, hexArg).map(([a, l]) => `m${a},${l}`),
  fc
    .tuple(hexArg, fc.uint8Array({ maxLength: 24 }))
    .map(([a, d]) => `M${a},${hex(BigInt(d.length))}:${Buffer.from(d).toString("hex")}`),
  fc
    .tuple(hexArg, fc.uint8Array({ maxLength: 24 }))
    .map(([a, d]) => `X${a},${hex(BigInt(d.length))}:${Buffer.from(d).toString("latin1")}`),
  fc.tuple(fc.nat(5), hexArg, hexArg).map(([t, a, k]) => `${t % 2 ? "Z" : "z"}${t >> 1},${a},${k}`),
  fc.tuple(fc.nat(4), hexArg, hexArg).map(([t, a, k]) => `Z${t},${a},${k}`),
  fc.tuple(hexArg).map(([n]) => `p${n}`),
  fc.tuple(hexArg, hexArg).map(([n, v]) => `P${n}=${v}`),
  fc.tuple(fc.constantFrom("g", "c", "x"), hexArg).map(([o, t]) => `H${o}${t}`),
  fc.tuple(hexArg).map(([t]) => `T${t}`),
  fc.tuple(hexArg, hexArg).map(([o, l]) => `qXfer:features:read:target.xml:${o},${l}`),
  fc
    .tuple(fc.constantFrom("c", "s", "C05", "S05", "q"), fc.option(hexArg))
    .map(([a, t]) => `vCont;${a}${t === null ? "" : `:${t}`}`),
  fc.tuple(fc.constantFrom("c", "s", "C", "S"), fc.option(hexArg)).map(([c, a]) => `${c}${a ?? ""}`),
  fc.string({ maxLength: 40 }),
);

function frame(payload: string, corrupt: boolean): Uint8Array {
  let sum = 0;
  const body: number[] = [];
  for (const ch of payload) {
    const b = ch.charCodeAt(0) & 0xff;
    if (b === 0x24 || b === 0x23 || b === 0x7d || b === 0x2a) body.push(0x7d, b ^ 0x20);
    else body.push(b);
  }
  for (const b of body) sum = (sum + b) & 0xff;
  if (corrupt) sum ^= 1;
  return Uint8Array.from([0x24, ...body, 0x23, ...Buffer.from(sum.toString(16).padStart(2, "0"))]);
}

interface Item {
  payload: string;
  corrupt: boolean;
  garbage: Uint8Array;
  interrupt: boolean;
}
interface Input {
  items: Item[];
  cuts: number[];
  jit: boolean;
}

const surface: FuzzSurface<Input> = {
  name: "gdb",
  description:
    "gdb remote packets with hostile numbers, garbage and Ctrl-C, cut anywhere, the hart running between chunks: no host exception, bounded replies",
  arbitrary: fc.record({
    items: fc.array(
      fc.record({
        payload: packet,
        corrupt: fc.boolean(),
        garbage: fc.uint8Array({ maxLength: 6 }),
        interrupt: fc.boolean(),
      }),
      { maxLength: 24 },
    ),
    cuts: fc.array(fc.nat(4000), { maxLength: 10 }),
    jit: fc.boolean(),
  }),
  check({ items, cuts, jit }) {
    const ram = new GuestRam(BASE, RAM);
    for (const [i, w] of PROGRAM.entries()) ram.write32(hpa(BASE + 4 * i), w);
    const hart = new Hart({ ram, bus, jit: jit ? "always" : "off" });
    hart.reset(BASE);
    hart.setX(2, BigInt(BASE + 0x1000));
    let paused = false;
    let alive = true;
    const target: GdbTarget = {
      system: true,
      ram,
      threads: () => (alive ? [{ id: 1, hart }] : []),
      pause: () => {
        paused = true;
      },
      resume: () => {
        paused = false;
      },
      setHook: (h) => {
        hart.debugHook = h;
      },
      kill: () => {
        alive = false;
      },
    };
    const stub = new GdbStub(target, true);
    let replies = 0;
    stub.attach({
      write: (b) => {
        invariant(b.length <= 2 * MAX_PACKET + 4, `a reply of ${b.length} bytes`);
        if (b[0] === 0x24) replies++;
      },
      close: () => {},
    });
    const parts: number[] = [];
    for (const it of items) {
      parts.push(...frame(it.payload, it.corrupt), ...it.garbage);
      if (it.interrupt) parts.push(3);
    }
    const bytes = Uint8Array.from(parts);
    const points = [...new Set(cuts.filter((c) => c < bytes.length))].sort((a, b) => a - b);
    let from = 0;
    for (const to of [...points, bytes.length]) {
      stub.receive(bytes.slice(from, to));
      from = to;
      if (!paused && alive) hart.run(500);
    }
    // a packet gets one reply at most; a stop reply may come for each resume, and an
    // overlong or garbage run none
    invariant(replies <= 2 * items.length + 1, `${replies} replies to ${items.length} packets`);
  },
  ciRuns: 150,
};

export default surface;
