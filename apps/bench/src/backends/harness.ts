/**
 * Running a kernel on the three engines: the cross-check (same registers, FP registers,
 * data memory, exit pc and instruction count as the interpreter) and the measurements
 * (MIPS warm and cold, compile time per region).
 */
import { type Engine, InterpreterEngine, JsEngine, RAM, WasmEngine } from "./engines.ts";
import { DATA, DATA_END, type Kernel, type Program } from "./kernels.ts";
import type { Region } from "./region.ts";

/** A budget large enough that no run stops for it (the check is still compiled in). */
export const NO_BUDGET = 2 ** 30;

export function makeEngines(
  p: Program,
  k: Kernel,
  region: Region,
): [InterpreterEngine, JsEngine, WasmEngine] {
  const engines = [
    new InterpreterEngine(p.text, region),
    new JsEngine(region),
    new WasmEngine(region),
  ] as const;
  for (const e of engines) k.init?.(e);
  return [...engines];
}

/** One run of the kernel: registers set up, the loop run from its header to an exit. */
export function runOnce(e: Engine, k: Kernel, region: Region, run: number, budget = NO_BUDGET): number {
  k.setup(e, run);
  return e.run(region.entry, budget);
}

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** How `b`'s state differs from `a`'s (empty when they agree). */
export function differences(a: Engine, b: Engine): string[] {
  const out: string[] = [];
  if (a.pc !== b.pc) out.push(`pc ${hex(a.pc)} vs ${hex(b.pc)}`);
  for (let i = 1; i < 32; i++)
    if (a.getX(i) !== b.getX(i)) out.push(`x${i} ${hex(a.getX(i))} vs ${hex(b.getX(i))}`);
  for (let i = 0; i < 32; i++)
    if (a.getF(i) !== b.getF(i)) out.push(`f${i} ${hex(a.getF(i))} vs ${hex(b.getF(i))}`);
  const from = DATA - RAM.base;
  const ua = new Uint8Array(a.ram.buffer, a.ram.byteOffset + from, DATA_END - DATA);
  const ub = new Uint8Array(b.ram.buffer, b.ram.byteOffset + from, DATA_END - DATA);
  for (let i = 0; i < ua.length; i++)
    if (ua[i] !== ub[i]) {
      out.push(`memory first differs at ${hex(DATA + i)}`);
      break;
    }
  return out;
}

/**
 * Run the kernel `runs` times on fresh engines with `budget` per call and compare the
 * translators with the interpreter after every run. Returns the problems (empty: agreed)
 * and the instructions of the last run.
 */
export function crossCheck(
  p: Program,
  k: Kernel,
  region: Region,
  runs = 2,
  budget = NO_BUDGET,
): { problems: string[]; instructions: number } {
  const [interp, ...translated] = makeEngines(p, k, region);
  const problems: string[] = [];
  let instructions = 0;
  for (let r = 0; r < runs; r++) {
    instructions = runOnce(interp, k, region, r);
    for (const e of translated) {
      const n = runOnce(e, k, region, r, budget);
      if (n !== instructions)
        problems.push(`${e.name} run ${r}: ${n} instructions, the interpreter ${instructions}`);
      for (const d of differences(interp, e)) problems.push(`${e.name} run ${r}: ${d}`);
    }
  }
  return { problems, instructions };
}

export interface Sample {
  instructions: number;
  ms: number;
}

export const mips = (s: Sample): number => s.instructions / s.ms / 1000;

/**
 * CPU time of this thread in milliseconds. The machine this runs on is shared and loaded,
 * so wall-clock time would count the time other processes had the CPU; V8's background
 * threads (concurrent optimization, GC) are not counted either. The kernel brings this
 * clock up to date at scheduler ticks and context switches, so a reading can lag by up to
 * a tick (4 ms at 250 Hz): only intervals of a hundred milliseconds or more are timed by it.
 */
export function cpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}

/** CPU time of one register setup on this engine (subtracted from the run times), over at least `minMs`. */
export function setupMs(e: Engine, k: Kernel, minMs = 60): number {
  let count = 0;
  const t0 = cpuMs();
  let t = t0;
  while (t - t0 < minMs) {
    for (let r = 0; r < 1000; r++) k.setup(e, count + r);
    count += 1000;
    t = cpuMs();
  }
  return (t - t0) / count;
}

function batch(
  e: Engine,
  k: Kernel,
  region: Region,
  runs: number,
  firstRun: number,
  perSetup: number,
): Sample {
  let instructions = 0;
  const t0 = cpuMs();
  for (let r = firstRun; r < firstRun + runs; r++) {
    k.setup(e, r);
    instructions += e.run(region.entry, NO_BUDGET);
  }
  return { instructions, ms: Math.max(cpuMs() - t0 - runs * perSetup, 1e-3) };
}

/** Run the kernel for at least `minMs` of CPU time (the register setups' time taken out). */
export function measure(
  e: Engine,
  k: Kernel,
  region: Region,
  minMs: number,
  perSetup: number,
  firstRun = 0,
): Sample {
  let runs = 1;
  for (;;) {
    const s = batch(e, k, region, runs, firstRun, perSetup);
    if (s.ms >= minMs) return s;
    runs = Math.max(runs + 1, Math.min(runs * 8, Math.ceil((runs * minMs * 1.1) / s.ms)));
  }
}

/**
 * The first `instructions` after a fresh translation, before V8's optimizing tier has
 * replaced it: the best of `tries` fresh translations, in wall-clock time (too short for
 * the thread CPU clock, whose resolution is the scheduler tick; the best of several
 * leaves out the tries another process interrupted). Register setups are included.
 */
export function measureCold(
  e: JsEngine | WasmEngine,
  k: Kernel,
  region: Region,
  instructions: number,
  tries: number,
): Sample {
  let best: Sample = { instructions: 0, ms: Number.POSITIVE_INFINITY };
  for (let t = 0; t < tries; t++) {
    e.fn = e.compile();
    let n = 0;
    const t0 = performance.now();
    for (let r = 0; n < instructions; r++) {
      k.setup(e, r);
      n += e.run(region.entry, NO_BUDGET);
    }
    const ms = performance.now() - t0;
    if (ms / n < best.ms / Math.max(best.instructions, 1)) best = { instructions: n, ms };
  }
  return best;
}

/**
 * Median wall-clock time of `count` fresh translations of the region, in microseconds:
 * emit, compile, instantiate and the first call (when V8 compiles the function body).
 */
export function compileMicros(e: JsEngine | WasmEngine, count: number): number {
  const t: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    e.compile();
    t.push((performance.now() - t0) * 1000);
  }
  return median(t);
}

export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
