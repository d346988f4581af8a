#!/usr/bin/env node
/**
 * backends: the measured choice between two binary-translator backends, on the cpu
 * benchmark's own hot loops.
 *
 *   pnpm bench:backends [--quick] [--kernel NAME]... [--show]
 *
 * Each loop of apps/bench/fixtures/riscv64/cpu (found by its instruction sequence, decoded
 * with @visor/cpu's decoder) runs three ways: on the interpreter (a Hart executing the
 * loop's bytes from RAM), translated to JavaScript (`new Function`, registers as int32
 * pairs) and translated to WebAssembly (a hand-written emitter, registers as i64 locals).
 * The translations must agree with the interpreter (registers, FP registers, memory, exit
 * pc, instruction count) before anything is timed. See docs/binary-translation.md.
 */
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { readSection } from "./backends/elf.ts";
import { RAM } from "./backends/engines.ts";
import {
  compileMicros,
  crossCheck,
  differences,
  makeEngines,
  measure,
  measureCold,
  median,
  mips,
  runOnce,
  setupMs,
} from "./backends/harness.ts";
import { jsSource } from "./backends/js.ts";
import { decodeProgram, KERNELS, kernelRegion } from "./backends/kernels.ts";
import { listRegion } from "./backends/region.ts";
import { paths } from "./context.ts";

const HELP = `usage: pnpm bench:backends [options]

  --quick         shorter trials (3 of 120 ms instead of 5 of 250 ms)
  --kernel NAME   only this kernel (repeatable, or a comma list): ${KERNELS.map((k) => k.name).join(", ")}
  --show          print each loop's instructions and its generated JavaScript, then stop
  --help          this text

Runs each hot loop of the cpu benchmark (apps/bench/fixtures/src/cpu.c) on the interpreter
and translated to JavaScript and to WebAssembly, checks that all three agree, and prints
MIPS (warm, and over the first ${(1e6).toLocaleString("en")} instructions after translation) and
the time to translate one region with each backend.`;

class UsageError extends Error {}

interface Args {
  quick: boolean;
  kernels: string[];
  show: boolean;
  help: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, kernels: [], show: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--quick") a.quick = true;
    else if (arg === "--show") a.show = true;
    else if (arg === "--help" || arg === "-h") a.help = true;
    else if (arg === "--kernel" || arg.startsWith("--kernel=")) {
      const v = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[++i];
      if (v === undefined || v === "") throw new UsageError("--kernel needs a name");
      for (const n of v.split(",")) {
        if (!KERNELS.some((k) => k.name === n))
          throw new UsageError(`unknown kernel '${n}' (one of ${KERNELS.map((k) => k.name).join(", ")})`);
        a.kernels.push(n);
      }
    } else throw new UsageError(`unknown argument '${arg}' (see --help)`);
  }
  return a;
}

const fmt = (v: number, digits = 0): string => v.toLocaleString("en", { maximumFractionDigits: digits });

function main(argv: string[]): number {
  const args = parseArgs(argv);
  if (args.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const program = decodeProgram(readSection(join(paths.fixtureBin, "cpu"), ".text"));
  const kernels = KERNELS.filter((k) => args.kernels.length === 0 || args.kernels.includes(k.name));

  if (args.show) {
    for (const k of kernels) {
      const region = kernelRegion(program, k);
      process.stdout.write(`${k.name}: ${k.what}\n${listRegion(region)}\n\n${jsSource(region, RAM)}\n\n`);
    }
    return 0;
  }

  const trials = args.quick ? 3 : 5;
  const trialMs = args.quick ? 120 : 250;
  const coldInstructions = 1e6;
  const compiles = args.quick ? 10 : 30;
  const log = (s: string) => process.stderr.write(`${s}\n`);

  const rows: string[][] = [];
  for (const k of kernels) {
    const region = kernelRegion(program, k);
    const check = crossCheck(program, k, region, 2);
    const budgeted = crossCheck(program, k, region, 1, 7);
    const problems = [...check.problems, ...budgeted.problems];
    if (problems.length > 0)
      throw new Error(`${k.name}: the translations disagree with the interpreter: ${problems[0]}`);
    log(
      `${k.name}: ${region.instructions} instructions in ${region.blocks.length} blocks, translations agree; measuring`,
    );

    const [interp, js, wasm] = makeEngines(program, k, region);
    const jsCold = mips(measureCold(js, k, region, coldInstructions, trials));
    const wasmCold = mips(measureCold(wasm, k, region, coldInstructions, trials));
    // Warm up every engine (V8's optimizing tiers), then alternate trials so load hits all alike.
    const engines = [interp, js, wasm];
    const perSetup = engines.map((e) => setupMs(e, k));
    for (const [i, e] of engines.entries()) measure(e, k, region, trialMs * 2, perSetup[i]!);
    const m: Record<string, number[]> = { interpreter: [], js: [], wasm: [] };
    for (let t = 0; t < trials; t++)
      for (const [i, e] of engines.entries())
        m[e.name]!.push(mips(measure(e, k, region, trialMs, perSetup[i]!, t * 1000)));
    // The optimized translations still compute what the interpreter does.
    for (const e of engines) runOnce(e, k, region, 0);
    for (const e of [js, wasm]) {
      const d = differences(interp, e);
      if (d.length > 0) throw new Error(`${k.name}: the optimized ${e.name} translation disagrees: ${d[0]}`);
    }
    const jsUs = compileMicros(js, compiles);
    const wasmUs = compileMicros(wasm, compiles);
    rows.push([
      k.name,
      `${region.instructions} / ${region.blocks.length}`,
      fmt(median(m.interpreter!)),
      fmt(median(m.js!)),
      fmt(median(m.wasm!)),
      fmt(jsCold),
      fmt(wasmCold),
      fmt(jsUs),
      fmt(wasmUs),
    ]);
  }

  const head = [
    "kernel",
    "instrs / blocks",
    "interpreter MIPS",
    "JS MIPS",
    "wasm MIPS",
    "JS cold MIPS",
    "wasm cold MIPS",
    "JS compile µs",
    "wasm compile µs",
  ];
  const lines = [head, head.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`);
  process.stdout.write(`${lines.join("\n")}\n\n`);
  for (const k of kernels) process.stdout.write(`- ${k.name}: ${k.what}\n`);
  process.stdout.write(
    [
      "",
      `MIPS: median of ${trials} trials of ${trialMs} ms of this thread's CPU time after a warm-up (the machine is shared, so not wall-clock time; V8's background compiler and GC threads are not counted), register setup between runs taken out.`,
      `Cold MIPS: the first ${fmt(coldInstructions)} instructions after a fresh translation, wall clock, best of ${trials} translations.`,
      `Compile: median wall-clock time of ${compiles} fresh translations of the region: emit, new Function or WebAssembly.Module + Instance, and the first call (when V8 compiles the function body).`,
      "Both backends: guest registers in locals for the region, memory as physical RAM with a bounds check per access (no TLB, no store-to-code check), the instruction count kept per block and the budget checked on back edges.",
      "FP: fld/fsd/fmul.d/fadd.d as plain f64 loads, stores and operations in both backends (round to nearest, fflags not updated, NaNs not canonicalized).",
      `Machine: ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} CPUs, load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}; Node ${process.versions.node}, V8 ${process.versions.v8}.`,
      "",
    ].join("\n"),
  );
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`bench:backends: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = e instanceof UsageError ? 2 : 1;
}
