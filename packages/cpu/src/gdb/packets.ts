/**
 * The GDB remote serial protocol's framing: `$payload#cs` packets (cs = the payload's
 * byte sum modulo 256, two hex digits), `+`/`-` acknowledgements, the Ctrl-C interrupt
 * byte (0x03) between packets, `}` escapes and `*` run-length encoding.
 *
 * The peer is untrusted: a packet longer than MAX_PACKET is dropped whole (answered with
 * `-` while acks are on, and reported as an error), bad checksums are refused with `-`,
 * and nothing here allocates more than MAX_PACKET bytes per packet.
 */

/** The largest payload accepted (and advertised as PacketSize). */
export const MAX_PACKET = 0x4000;

/** What the reader found in the byte stream. */
export type Frame =
  | { kind: "packet"; payload: Uint8Array }
  | { kind: "interrupt" }
  | { kind: "ack" }
  | { kind: "nack" }
  | { kind: "bad-checksum" }
  | { kind: "overlong" };

const St = { Idle: 0, Payload: 1, Escape: 2, Repeat: 3, Check1: 4, Check2: 5 } as const;

const HEX = "0123456789abcdef";

/** The value of a hex digit (either case), -1 for anything else. */
export function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  return -1;
}

/**
 * Splits the byte stream into frames. Bytes between packets other than `+`, `-` and 0x03
 * are ignored (line noise), as gdbserver does.
 */
export class PacketReader {
  private st: number = St.Idle;
  private readonly buf = new Uint8Array(MAX_PACKET);
  private len = 0;
  private sum = 0;
  private check = 0;
  private overlong = false;

  /** Feed bytes; returns the frames they complete, in order. */
  push(data: Uint8Array): Frame[] {
    const out: Frame[] = [];
    for (const b of data) {
      switch (this.st) {
        case St.Idle:
          if (b === 0x24 /* $ */) {
            this.st = St.Payload;
            this.len = 0;
            this.sum = 0;
            this.overlong = false;
          } else if (b === 0x03) out.push({ kind: "interrupt" });
          else if (b === 0x2b /* + */) out.push({ kind: "ack" });
          else if (b === 0x2d /* - */) out.push({ kind: "nack" });
          break;
        case St.Payload:
          this.sum = (this.sum + b) & 0xff;
          if (b === 0x23 /* # */) {
            this.sum = (this.sum - b) & 0xff;
            this.st = St.Check1;
          } else if (b === 0x7d /* } */) {
            this.st = St.Escape;
          } else if (b === 0x2a /* * */ && this.len > 0) {
            // run-length: the next byte says how many more copies of the previous one
            this.st = St.Repeat;
          } else this.put(b);
          break;
        case St.Escape:
          this.sum = (this.sum + b) & 0xff;
          this.st = St.Payload;
          this.put(b ^ 0x20);
          break;
        case St.Repeat: {
          this.sum = (this.sum + b) & 0xff;
          this.st = St.Payload;
          const prev = this.buf[Math.min(this.len, MAX_PACKET) - 1]!;
          for (let i = 0, n = b - 29; i < n && !this.overlong; i++) this.put(prev);
          break;
        }
        case St.Check1: {
          const v = hexValue(b);
          this.check = v < 0 ? -1 : v << 4;
          this.st = St.Check2;
          break;
        }
        case St.Check2: {
          const v = hexValue(b);
          this.st = St.Idle;
          if (this.overlong) out.push({ kind: "overlong" });
          else if (v < 0 || this.check < 0 || (this.check | v) !== this.sum)
            out.push({ kind: "bad-checksum" });
          else out.push({ kind: "packet", payload: this.buf.slice(0, this.len) });
          break;
        }
      }
    }
    return out;
  }

  private put(b: number): void {
    if (this.len >= MAX_PACKET) {
      this.overlong = true;
      return;
    }
    this.buf[this.len++] = b;
  }
}

/** Frame a payload: `$payload#cs`, escaping `$`, `#`, `}` and `*`. */
export function framePacket(payload: string | Uint8Array): Uint8Array {
  const src = typeof payload === "string" ? latin1(payload) : payload;
  const out: number[] = [0x24];
  let sum = 0;
  for (const b of src) {
    if (b === 0x24 || b === 0x23 || b === 0x7d || b === 0x2a) {
      out.push(0x7d, b ^ 0x20);
      sum += 0x7d + (b ^ 0x20);
    } else {
      out.push(b);
      sum += b;
    }
  }
  sum &= 0xff;
  out.push(0x23, HEX.charCodeAt(sum >> 4), HEX.charCodeAt(sum & 15));
  return Uint8Array.from(out);
}

/** A string's code units as bytes (the protocol's text is ASCII). */
export function latin1(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}

/** Bytes as a string, one code unit per byte. */
export function fromLatin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, i + 4096));
  return s;
}

/** Bytes as lowercase hex. */
export function toHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += HEX[x >> 4]! + HEX[x & 15]!;
  return s;
}

/** Hex text as bytes; undefined when it is not an even number of hex digits. */
export function fromHex(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexValue(s.charCodeAt(2 * i));
    const lo = hexValue(s.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) return undefined;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** A hex number of at most 16 digits (a 64-bit value); undefined otherwise. */
export function parseHexNumber(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F]{1,16}$/.test(s)) return undefined;
  return BigInt(`0x${s}`);
}

/** A 64-bit value as 16 hex digits, little-endian byte order (register contents). */
export function le64Hex(v: bigint): string {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
  return toHex(b);
}

/** 16 hex digits, little-endian, as a value; undefined when malformed. */
export function parseLe64Hex(s: string): bigint | undefined {
  const b = fromHex(s);
  if (b === undefined || b.length !== 8) return undefined;
  return new DataView(b.buffer).getBigUint64(0, true);
}
