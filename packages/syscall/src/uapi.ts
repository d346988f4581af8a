/**
 * Encoders for the user-visible structures (riscv64 layouts: asm-generic struct stat,
 * struct statx, timespec, termios ...), checked against the riscv64 headers with
 * offsetof/sizeof probes.
 */
import type { HostStat } from "./host.ts";

const TWO32 = 4294967296;

export function setU64(dv: DataView, o: number, v: number): void {
  dv.setUint32(o, (v % TWO32) >>> 0, true);
  dv.setUint32(o + 4, Math.floor(v / TWO32) >>> 0, true);
}

export function setI64(dv: DataView, o: number, v: number): void {
  const hi = Math.floor(v / TWO32);
  dv.setUint32(o, (v - hi * TWO32) >>> 0, true);
  dv.setInt32(o + 4, hi, true);
}

export function getU64(dv: DataView, o: number): number {
  return dv.getUint32(o + 4, true) * TWO32 + dv.getUint32(o, true);
}

export function getI64(dv: DataView, o: number): number {
  return dv.getInt32(o + 4, true) * TWO32 + dv.getUint32(o, true);
}

function secNs(ns: bigint): [number, number] {
  let s = ns / 1000000000n;
  let r = ns % 1000000000n;
  if (r < 0n) {
    r += 1000000000n;
    s -= 1n;
  }
  return [Number(s), Number(r)];
}

/** struct stat (asm-generic/stat.h), 128 bytes. */
export function encodeStat(st: HostStat): Uint8Array {
  const b = new Uint8Array(128);
  const dv = new DataView(b.buffer);
  setU64(dv, 0, st.dev);
  setU64(dv, 8, st.ino);
  dv.setUint32(16, st.mode, true);
  dv.setUint32(20, st.nlink, true);
  dv.setUint32(24, st.uid, true);
  dv.setUint32(28, st.gid, true);
  setU64(dv, 32, st.rdev);
  setI64(dv, 48, st.size);
  dv.setInt32(56, st.blksize, true);
  setI64(dv, 64, st.blocks);
  const times = [st.atimeNs, st.mtimeNs, st.ctimeNs];
  for (let i = 0; i < 3; i++) {
    const [s, n] = secNs(times[i]!);
    setI64(dv, 72 + 16 * i, s);
    setU64(dv, 80 + 16 * i, n);
  }
  return b;
}

/** Linux dev_t encoding (include/linux/kdev_t.h new_decode_dev). */
export function devMajor(dev: number): number {
  return ((dev >>> 8) & 0xfff) | (Math.floor(dev / TWO32) & ~0xfff);
}
export function devMinor(dev: number): number {
  return (dev & 0xff) | ((dev >>> 12) & ~0xff & 0xfffff00);
}

/** struct statx (linux/stat.h), 256 bytes. */
export function encodeStatx(st: HostStat, mask: number): Uint8Array {
  const b = new Uint8Array(256);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, mask, true);
  dv.setUint32(4, st.blksize, true);
  dv.setUint32(16, st.nlink, true);
  dv.setUint32(20, st.uid, true);
  dv.setUint32(24, st.gid, true);
  dv.setUint16(28, st.mode, true);
  setU64(dv, 32, st.ino);
  setU64(dv, 40, st.size);
  setU64(dv, 48, st.blocks);
  const put = (o: number, ns: bigint) => {
    const [s, n] = secNs(ns);
    setI64(dv, o, s);
    dv.setUint32(o + 8, n, true);
  };
  put(64, st.atimeNs);
  put(80, st.birthtimeNs);
  put(96, st.ctimeNs);
  put(112, st.mtimeNs);
  dv.setUint32(128, devMajor(st.rdev), true);
  dv.setUint32(132, devMinor(st.rdev), true);
  dv.setUint32(136, devMajor(st.dev), true);
  dv.setUint32(140, devMinor(st.dev), true);
  return b;
}

/** struct timespec / timeval from nanoseconds. */
export function encodeTimespec(ns: bigint, micro = false): Uint8Array {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  const [s, n] = secNs(ns);
  setI64(dv, 0, s);
  setI64(dv, 8, micro ? Math.floor(n / 1000) : n);
  return b;
}

/** Decode a timespec (sec, nsec) read as 16 bytes; returns nanoseconds or -1 if invalid. */
export function decodeTimespec(b: Uint8Array): bigint {
  const dv = new DataView(b.buffer, b.byteOffset, 16);
  const s = dv.getBigInt64(0, true);
  const n = dv.getBigInt64(8, true);
  if (s < 0n || n < 0n || n >= 1000000000n) return -1n;
  return s * 1000000000n + n;
}
