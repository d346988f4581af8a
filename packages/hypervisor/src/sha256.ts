/**
 * SHA-256 (FIPS 180-4, section 6.2), synchronous and free of host modules, so the
 * snapshot code runs the same in Node and in a browser (Web Crypto's digest is async
 * only). The snapshot file's checksum; not used for anything secret.
 */

/** FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
const K = Int32Array.of(
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
);
/** FIPS 180-4 5.3.3: the initial hash value. */
const H0 = Uint32Array.of(
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
);
const BLOCK = 64;
export const SHA256_BYTES = 32;

interface NodeCrypto {
  createHash(alg: "sha256"): { update(d: Uint8Array): { digest(): Uint8Array } };
}

/** Node's crypto module once looked up (null: the host has none). */
let nodeCrypto: NodeCrypto | null | undefined;

/**
 * Node's own (OpenSSL) hash where the host has it: `process.getBuiltinModule` is
 * synchronous. Looked up at the first digest, not when this module loads: loading
 * node:crypto takes a few milliseconds that a run without snapshots need not spend.
 */
function hostCrypto(): NodeCrypto | null {
  nodeCrypto ??=
    ((globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.(
      "node:crypto",
    ) as NodeCrypto | undefined) ?? null;
  return nodeCrypto;
}

/** The SHA-256 digest of `data` (32 bytes). */
export function sha256(data: Uint8Array): Uint8Array {
  const c = hostCrypto();
  if (c !== null) return new Uint8Array(c.createHash("sha256").update(data).digest());
  return sha256Portable(data);
}

/** The same in TypeScript, for hosts without node:crypto (browsers). */
export function sha256Portable(data: Uint8Array): Uint8Array {
  const h = Int32Array.from(H0);
  const w = new Int32Array(64);
  const full = data.length - (data.length % BLOCK);
  for (let o = 0; o < full; o += BLOCK) compress(h, w, data, o);
  // The padding (5.1.1): 0x80, zeros, and the length in bits as a big-endian u64.
  const tailLen = data.length - full;
  const tail = new Uint8Array(tailLen + 9 <= BLOCK ? BLOCK : 2 * BLOCK);
  tail.set(data.subarray(full));
  tail[tailLen] = 0x80;
  const tdv = new DataView(tail.buffer);
  const bits = data.length * 8;
  tdv.setUint32(tail.length - 8, Math.floor(bits / 2 ** 32));
  tdv.setUint32(tail.length - 4, bits >>> 0);
  for (let o = 0; o < tail.length; o += BLOCK) compress(h, w, tail, o);
  const out = new Uint8Array(SHA256_BYTES);
  const odv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) odv.setInt32(4 * i, h[i]!);
  return out;
}

/** One 64-byte block at `o` (6.2.2). */
function compress(h: Int32Array, w: Int32Array, u8: Uint8Array, o: number): void {
  for (let t = 0; t < 16; t++) {
    const i = o + 4 * t;
    w[t] = (u8[i]! << 24) | (u8[i + 1]! << 16) | (u8[i + 2]! << 8) | u8[i + 3]!;
  }
  for (let t = 16; t < 64; t++) {
    const x = w[t - 15]!;
    const y = w[t - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[t] = (w[t - 16]! + s0 + w[t - 7]! + s1) | 0;
  }
  let a = h[0]!;
  let b = h[1]!;
  let c = h[2]!;
  let d = h[3]!;
  let e = h[4]!;
  let f = h[5]!;
  let g = h[6]!;
  let k = h[7]!;
  for (let t = 0; t < 64; t++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (k + S1 + ch + K[t]! + w[t]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (S0 + maj) | 0;
    k = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  h[0] = (h[0]! + a) | 0;
  h[1] = (h[1]! + b) | 0;
  h[2] = (h[2]! + c) | 0;
  h[3] = (h[3]! + d) | 0;
  h[4] = (h[4]! + e) | 0;
  h[5] = (h[5]! + f) | 0;
  h[6] = (h[6]! + g) | 0;
  h[7] = (h[7]! + k) | 0;
}
