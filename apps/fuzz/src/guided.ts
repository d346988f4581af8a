/**
 * Coverage-guided fuzzing for any surface, without a native fuzzer.
 *
 * The idea is the "choice sequence" of Hypothesis: a surface's fast-check arbitrary draws
 * its randomness from a byte buffer instead of a PRNG, so the buffer *is* the input, and
 * mutating a few bytes changes a few choices in the generated value. Around that sits a
 * libFuzzer-style loop: pick a buffer from the corpus, mutate it, run the surface on the
 * value it generates, and keep the buffer when V8's block coverage (the inspector's
 * precise coverage, reset after every input) shows a code block, or a hit-count bucket of
 * one, that no earlier input reached. Failures are shrunk by cutting and zeroing bytes.
 *
 * Corpus and crashes persist under fuzz-results/<surface>/ so runs build on each other.
 * (Jazzer.js, the registry's coverage-guided fuzzer, ships a native addon that needs a
 * newer glibc than Debian 12's, or a download at install time; this needs neither.)
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import { Session } from "node:inspector/promises";
import path from "node:path";
import fc from "fast-check";
import type { FuzzResult } from "./run.ts";
import type { FuzzSurface } from "./surface.ts";

/** A pure-rand (v8 interface) generator whose output is read from a byte buffer. */
class ByteStream {
  private readonly bytes: Uint8Array;
  private pos: number;
  constructor(bytes: Uint8Array, pos = 0) {
    this.bytes = bytes;
    this.pos = pos;
  }
  clone(): ByteStream {
    return new ByteStream(this.bytes, this.pos);
  }
  /** The next 32 bits; past the end, a fixed mix of the position, so draws stay varied. */
  next(): number {
    const b = this.bytes;
    const p = this.pos;
    this.pos += 4;
    if (p + 4 <= b.length) return b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24) | 0;
    return Math.imul(p ^ 0x9e3779b9, 0x85ebca6b) | 0;
  }
  jump(): void {}
  getState(): readonly number[] {
    return [this.pos];
  }
  /** Bytes read so far (a clone shares the buffer but counts for itself). */
  get consumed(): number {
    return this.pos;
  }
}

/** The value an arbitrary generates when its choices are read from `bytes`. */
export function valueFromBytes<T>(arb: fc.Arbitrary<T>, bytes: Uint8Array): T {
  return arb.generate(new fc.Random(new ByteStream(bytes)), undefined).value;
}

/**
 * The prefix of `bytes` that generating a value actually reads: corpus entries are kept
 * at that length, so mutations land on bytes that matter.
 */
function usedPrefix<T>(arb: fc.Arbitrary<T>, bytes: Uint8Array): Uint8Array {
  let stream: ByteStream | undefined;
  const source = new ByteStream(bytes);
  // fc.Random clones its source; catch the clone it reads from.
  const clone = source.clone.bind(source);
  source.clone = () => (stream = clone());
  arb.generate(new fc.Random(source), undefined);
  return bytes.subarray(0, Math.min(bytes.length, stream?.consumed ?? bytes.length));
}

/**
 * Block coverage of the project's own code (packages/ and apps/), reset on each take.
 *
 * V8 reports a function's blocks as nested ranges sorted by start, each listed only where
 * its count differs from the enclosing range's, so a block that ran exactly as often as
 * its parent is not listed at all. A block is therefore known by the start offsets ever
 * seen for it (it shows up with count 0 before it first runs), and its count in a report
 * is the count of the innermost range around that offset.
 */
export class Coverage {
  private readonly session = new Session();
  private readonly seen = new Set<string>();
  /** Per script and function start: the block start offsets seen so far, sorted. */
  private readonly blocks = new Map<string, number[]>();
  private readonly include: RegExp;

  /** `include`: the script URLs whose blocks count (default: the workspace's sources). */
  constructor(include = /\/(packages|apps)\/[^/]+\/src\//) {
    this.include = include;
  }

  async start(): Promise<void> {
    this.session.connect();
    await this.session.post("Profiler.enable");
    await this.session.post("Profiler.startPreciseCoverage", { callCount: true, detailed: true });
  }

  /**
   * Features (block, hit-count bucket) run since the last take that no earlier take saw.
   * With `commit` false they are counted but not remembered (a batch's first look).
   */
  async takeNew(commit = true): Promise<number> {
    const { result } = await this.session.post("Profiler.takePreciseCoverage");
    let fresh = 0;
    const found: string[] = [];
    for (const script of result) {
      const url = script.url;
      if (url.includes("node_modules") || !this.include.test(url)) continue;
      for (const fn of script.functions) {
        const ranges = fn.ranges;
        const top = ranges[0];
        if (top === undefined || top.count === 0) continue;
        const id = `${url}:${top.startOffset}`;
        let known = this.blocks.get(id);
        if (known === undefined) this.blocks.set(id, (known = []));
        for (const r of ranges) {
          if (!sortedHas(known, r.startOffset)) sortedInsert(known, r.startOffset);
        }
        // Sweep the known block starts against the ranges, innermost range wins.
        const stack: { end: number; count: number }[] = [];
        let ri = 0;
        for (const off of known) {
          while (ri < ranges.length && ranges[ri]!.startOffset <= off) {
            const r = ranges[ri++]!;
            while (stack.length > 0 && stack[stack.length - 1]!.end <= r.startOffset) stack.pop();
            stack.push({ end: r.endOffset, count: r.count });
          }
          while (stack.length > 0 && stack[stack.length - 1]!.end <= off) stack.pop();
          const count = stack.length > 0 ? stack[stack.length - 1]!.count : 0;
          if (count === 0) continue;
          const key = `${id}:${off}:${bucket(count)}`;
          if (!this.seen.has(key)) {
            fresh++;
            found.push(key);
          }
        }
      }
    }
    if (commit) for (const k of found) this.seen.add(k);
    return fresh;
  }

  get features(): number {
    return this.seen.size;
  }
}

function sortedHas(a: number[], v: number): boolean {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return a[lo] === v;
}

function sortedInsert(a: number[], v: number): void {
  let i = a.length;
  while (i > 0 && a[i - 1]! > v) i--;
  a.splice(i, 0, v);
}

/** AFL's hit-count buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+. */
function bucket(n: number): number {
  if (n <= 3) return n;
  if (n < 8) return 4;
  if (n < 16) return 5;
  if (n < 32) return 6;
  return n < 128 ? 7 : 8;
}

/** Deterministic mutation randomness (xorshift32), seeded per run. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x2545f491;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
}

const MAX_LEN = 4096;
/** Inputs run between two coverage takes. */
const BATCH = 16;

/**
 * One libFuzzer-style mutation: flip, set, interesting value, a new 32-bit draw, insert,
 * erase, copy, splice. Each of the stream's draws reads one aligned 32-bit word, so
 * replacing a word changes exactly one choice of the generated value.
 */
function mutate(src: Uint8Array, other: Uint8Array, rng: Rng): Uint8Array {
  const b = Array.from(src);
  const rounds = 1 + rng.below(2);
  for (let k = 0; k < rounds; k++) {
    const at = rng.below(b.length + 1);
    switch (rng.below(8)) {
      case 7: {
        const w = rng.below(b.length >>> 2) << 2;
        const v = rng.u32();
        for (let i = 0; i < 4 && w + i < b.length; i++) b[w + i] = (v >>> (8 * i)) & 0xff;
        break;
      }
      case 0:
        if (b.length > 0) b[at % b.length]! ^= 1 << rng.below(8);
        break;
      case 1:
        if (b.length > 0) b[at % b.length] = rng.below(256);
        break;
      case 2: {
        const v = INTERESTING[rng.below(INTERESTING.length)]!;
        for (let i = 0; i < 4; i++) if (at + i < b.length) b[at + i] = (v >>> (8 * i)) & 0xff;
        break;
      }
      case 3: {
        const n = 1 + rng.below(16);
        b.splice(at, 0, ...Array.from({ length: n }, () => rng.below(256)));
        break;
      }
      case 4:
        b.splice(at, 1 + rng.below(16));
        break;
      case 5: {
        if (b.length === 0) break;
        const from = rng.below(b.length);
        const n = 1 + rng.below(Math.min(32, b.length - from));
        b.splice(at, 0, ...b.slice(from, from + n));
        break;
      }
      default: {
        const cut = rng.below(other.length + 1);
        b.splice(at, b.length - at, ...other.subarray(cut));
      }
    }
  }
  return Uint8Array.from(b.slice(0, MAX_LEN));
}

/** Values that sit on boundaries: 0, 1, -1, powers of two and their neighbours. */
const INTERESTING = [
  0,
  1,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0xffffffff,
  0x1000,
  0xfff,
  0x80000000 - 1,
];

/** Half the time one of the newest entries (they reached the newest code), else any. */
function pick(corpus: Uint8Array[], rng: Rng): Uint8Array {
  const n = corpus.length;
  return rng.below(2) === 0 ? corpus[n - 1 - rng.below(Math.min(4, n))]! : corpus[rng.below(n)]!;
}

function hash(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex").slice(0, 16);
}

function loadCorpus(dir: string): Uint8Array[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .sort()
    .map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f))));
}

async function fails<T>(s: FuzzSurface<T>, bytes: Uint8Array): Promise<unknown> {
  try {
    await s.check(valueFromBytes(s.arbitrary, bytes));
    return undefined;
  } catch (e) {
    return e ?? new Error("threw undefined");
  }
}

/** Cut and zero bytes while the input still fails, within a bounded number of tries. */
async function shrink<T>(s: FuzzSurface<T>, bytes: Uint8Array): Promise<Uint8Array> {
  let best = bytes;
  let tries = 0;
  for (let chunk = best.length >> 1; chunk >= 1 && tries < 400; chunk >>= 1) {
    for (let at = 0; at + chunk <= best.length && tries < 400; ) {
      tries++;
      const cut = Uint8Array.from([...best.subarray(0, at), ...best.subarray(at + chunk)]);
      if ((await fails(s, cut)) !== undefined) best = cut;
      else at += chunk;
    }
  }
  for (let i = 0; i < best.length && tries < 800; i++) {
    if (best[i] === 0) continue;
    tries++;
    const z = best.slice();
    z[i] = 0;
    if ((await fails(s, z)) !== undefined) best = z;
  }
  return best;
}

export interface GuidedLimits {
  timeMs: number;
  /** Stop after this many inputs (tests), whatever the time. */
  maxInputs?: number;
  seed: number;
  /** Where corpus/ and crashes/ live for this surface. */
  dir: string;
}

export async function runGuided<T>(
  s: FuzzSurface<T>,
  cov: Coverage,
  limits: GuidedLimits,
): Promise<FuzzResult> {
  const rng = new Rng(limits.seed);
  const corpusDir = path.join(limits.dir, "corpus");
  const corpus = loadCorpus(corpusDir);
  for (let i = 0; corpus.length < 8 && i < 8; i++) {
    corpus.push(Uint8Array.from({ length: 16 + rng.below(112) }, () => rng.below(256)));
  }
  fs.mkdirSync(corpusDir, { recursive: true });
  let inputs = 0;
  const t0 = performance.now();
  const featuresBefore = cov.features;
  await s.setup?.();
  try {
    await cov.takeNew(); // the surface's own setup is not an input's coverage
    // Replay the corpus first: it sets the coverage baseline.
    const queue = [...corpus];
    const maxInputs = limits.maxInputs ?? Number.POSITIVE_INFINITY;
    while (performance.now() - t0 < limits.timeMs && inputs < maxInputs) {
      // A batch runs with one coverage take (a take costs milliseconds); only a batch that
      // reached something new is replayed input by input to find which inputs to keep.
      const batch: { bytes: Uint8Array; fromCorpus: boolean }[] = [];
      while (batch.length < BATCH && inputs < maxInputs) {
        const fromCorpus = queue.length > 0;
        const bytes = fromCorpus
          ? queue.shift()!
          : mutate(pick(corpus, rng), corpus[rng.below(corpus.length)]!, rng);
        const err = await fails(s, bytes);
        inputs++;
        if (err !== undefined) {
          const small = await shrink(s, bytes);
          const crashes = path.join(limits.dir, "crashes");
          fs.mkdirSync(crashes, { recursive: true });
          const file = path.join(crashes, hash(small));
          fs.writeFileSync(file, small);
          const e = (await fails(s, small)) ?? err;
          const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
          return {
            name: s.name,
            inputs,
            ms: performance.now() - t0,
            corpus: corpus.length,
            features: cov.features - featuresBefore,
            failure: `${msg}\n  input ${fc.stringify(valueFromBytes(s.arbitrary, small))}\n  bytes saved to ${file}`,
          };
        }
        batch.push({ bytes, fromCorpus });
      }
      if ((await cov.takeNew(false)) === 0) continue;
      for (const { bytes, fromCorpus } of batch) {
        await fails(s, bytes);
        if ((await cov.takeNew()) === 0) continue;
        const kept = usedPrefix(s.arbitrary, bytes);
        if (!fromCorpus) corpus.push(kept);
        fs.writeFileSync(path.join(corpusDir, hash(kept)), kept);
      }
    }
  } finally {
    await s.teardown?.();
  }
  return {
    name: s.name,
    inputs,
    ms: performance.now() - t0,
    corpus: corpus.length,
    features: cov.features - featuresBefore,
  };
}
