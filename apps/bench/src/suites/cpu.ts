/**
 * cpu: MIPS on integer, memory and floating-point kernels (fixtures/src/cpu.c), visor
 * (the hart in U-mode under @visor/syscall, `visor exec`) with its interpreter alone and
 * with the translator, vs qemu-riscv64 (TCG) vs the same C source compiled for the host.
 */
import type { JitMode } from "@visor/cpu";
import {
  alternate,
  type Competitor,
  type Context,
  fixture,
  keyValues,
  nativeBinary,
  paths,
  REPO_ROOT,
} from "../context.ts";
import { barOf, makeFigure, ratio } from "../figures.ts";
import { check, run } from "../proc.ts";
import { fmt, median } from "../stats.ts";
import type { ChartSpec, Figure, SuiteResult, Table } from "../types.ts";
import {
  type ExecStats,
  figureKey,
  INTERPRETER,
  parseExecStats,
  shareText,
  TRANSLATOR,
  translatorNote,
  VISOR_MODES,
  visorExecArgv,
} from "../visor.ts";

const KERNELS = [
  { name: "int", what: "64-bit integer ALU: xorshift, multiply, divide, a bitwise CRC-32" },
  { name: "mem", what: "a triad over 3 x 256 KiB arrays and a pointer chase through a 1 MiB random cycle" },
  { name: "fp", what: "double precision: a 24x24 matrix multiply, Newton square roots, divides" },
] as const;

const QEMU = "qemu-riscv64";
const NATIVE = "native";

interface Sample {
  iters: number;
  ns: number;
  instret: number;
  check: string;
  /** visor: its `--stats` report */
  stats?: ExecStats;
}

export function parseCpuLine(out: string): Sample {
  const kv = keyValues(out, "cpu ");
  if (kv === undefined) throw new Error("no 'cpu' result line in the program's output");
  return { iters: Number(kv.iters), ns: Number(kv.ns), instret: Number(kv.instret), check: kv.check ?? "" };
}

/** The argv of one visor run of a kernel (`visor exec --jit MODE`, the program times itself). */
export function cpuVisorArgv(jit: JitMode, kernel: string, targetMs: number): string[] {
  return visorExecArgv({
    jit,
    root: paths.fixtureBin,
    program: "/cpu",
    args: [kernel, String(targetMs)],
    memoryMiB: 512,
    // The kernels make a system call per batch of iterations, so --stats (which times
    // each call) costs nothing measurable; it says whether the translator ran.
    stats: true,
  });
}

/** One kernel's figures, keyed by runner name. */
export interface CpuKernelResult {
  kernel: string;
  /** us per iteration */
  time: Map<string, Figure>;
  mips: Map<string, Figure>;
  /** Instructions per iteration (visor's rdinstret), per visor runner. */
  ipi: Map<string, number>;
  /** Share of instructions that ran translated (median), per visor runner, when reported. */
  translated?: Map<string, number>;
}

export const CPU_TABLE_HEAD = [
  "kernel",
  "runner",
  "instr/iter",
  "us/iter",
  "MIPS",
  "time vs qemu-riscv64",
  "time vs native",
  "jit speed-up",
  "ran translated",
];

/**
 * The cpu table's rows for one kernel: one row per runner that has a result, in `runners`
 * order. Ratios are this runner's time over the peer's (33x: 33 times as long; native
 * code is the baseline of both, QEMU's row has its own against native); the jit speed-up
 * is the interpreter's time over the translator's.
 */
export function cpuRows(k: CpuKernelResult, runners: readonly string[]): string[][] {
  const q = k.time.get(QEMU);
  const n = k.time.get(NATIVE);
  const interp = k.time.get(INTERPRETER.name);
  const rows: string[][] = [];
  for (const r of runners) {
    const t = k.time.get(r);
    if (t === undefined) continue;
    const ipi = k.ipi.get(r);
    const mips = k.mips.get(r);
    rows.push([
      k.kernel,
      r,
      ipi !== undefined ? fmt(ipi) : "-",
      fmt(t.median),
      mips ? fmt(mips.median) : "-",
      q && r !== QEMU && r !== NATIVE ? ratio(t.median, q.median) : "-",
      n && r !== NATIVE ? ratio(t.median, n.median) : "-",
      r === TRANSLATOR.name && interp ? ratio(interp.median, t.median) : "-",
      shareText(k.translated?.get(r)),
    ]);
  }
  return rows;
}

/** The median of instructions per iteration over a runner's samples. */
function medianIpi(samples: readonly Sample[]): number | undefined {
  if (samples.length === 0) return undefined;
  return samples.map((s) => s.instret / s.iters).sort((a, b) => a - b)[samples.length >> 1]!;
}

export async function cpuSuite(ctx: Context): Promise<SuiteResult> {
  const notes: string[] = [];
  const figures: Figure[] = [];
  const targetMs = ctx.quick ? 200 : 1000;
  const reps = ctx.reps ?? (ctx.quick ? 3 : 5);
  const bin = fixture("cpu");
  let native: string | undefined;
  let nativeWhy: string | undefined;
  try {
    native = await nativeBinary(ctx, "cpu");
  } catch (e) {
    nativeWhy = (e as Error).message;
  }

  const raw: Record<string, unknown> = {};
  const rows: string[][] = [];
  const timeGroups: ChartSpec["groups"] = [];
  const mipsGroups: ChartSpec["groups"] = [];
  const results: CpuKernelResult[] = [];
  const checks = new Map<string, Set<string>>();
  const runners = [...VISOR_MODES.map((m) => m.name), QEMU, NATIVE];
  for (const k of KERNELS) {
    const competitors: Competitor<Sample>[] = [
      ...VISOR_MODES.map(
        (m): Competitor<Sample> => ({
          name: m.name,
          run: async () => {
            const r = check(
              await run(ctx.node, cpuVisorArgv(m.jit, k.name, targetMs), {
                cwd: REPO_ROOT,
                timeoutMs: 300_000,
              }),
              `visor exec --jit ${m.jit} cpu`,
            );
            return { ...parseCpuLine(r.stdout), stats: parseExecStats(r.stderr) };
          },
        }),
      ),
      {
        name: QEMU,
        ...(ctx.tools.qemuUser === undefined ? { unavailable: "qemu-riscv64 is not installed" } : {}),
        run: async () =>
          parseCpuLine(
            check(
              await run(ctx.tools.qemuUser!, [bin, k.name, String(targetMs)], { timeoutMs: 120_000 }),
              "qemu-riscv64 cpu",
            ).stdout,
          ),
      },
      {
        name: NATIVE,
        ...(native === undefined ? { unavailable: `native build: ${nativeWhy}` } : {}),
        run: async () =>
          parseCpuLine(
            check(await run(native!, [k.name, String(targetMs)], { timeoutMs: 120_000 }), "native cpu")
              .stdout,
          ),
      },
    ];
    const res = await alternate(
      ctx,
      `cpu ${k.name}`,
      reps,
      competitors,
      (s) => `${fmt(s.ns / s.iters / 1000)} us/iter`,
    );
    raw[k.name] = Object.fromEntries(res);
    const kr: CpuKernelResult = {
      kernel: k.name,
      time: new Map(),
      mips: new Map(),
      ipi: new Map(),
      translated: new Map(),
    };
    for (const c of competitors) {
      const o = res.get(c.name)!;
      if (c.unavailable !== undefined) continue;
      for (const e of [...new Set(o.errors)]) notes.push(`cpu ${k.name} on ${c.name} failed: ${e}`);
      if (o.samples.length === 0) continue;
      for (const s of o.samples) {
        let set = checks.get(k.name);
        if (set === undefined) checks.set(k.name, (set = new Set()));
        set.add(`${c.name}:${s.check}`);
      }
      const f = makeFigure(
        `cpu/${k.name}/${figureKey(c.name)}/us-per-iter`,
        `${k.name} kernel, ${c.name}`,
        "us/iteration",
        "lower",
        o.samples.map((s) => s.ns / s.iters / 1000),
      );
      kr.time.set(c.name, f);
      figures.push(f);
    }
    // Instructions per iteration come from visor's instret (the same binary retires the
    // same instructions under any riscv64 emulator). The interpreter's count is the
    // reference: qemu's MIPS and the translator's use it, and a translator whose instret
    // disagrees is noted (rdinstret must count every retired instruction in either tier).
    for (const m of VISOR_MODES) {
      const samples = res.get(m.name)!.samples;
      const ipi = medianIpi(samples);
      if (ipi !== undefined) kr.ipi.set(m.name, ipi);
      const shares = samples.map((x) => x.stats?.translatedShare).filter((x): x is number => x !== undefined);
      if (shares.length > 0) kr.translated!.set(m.name, median(shares));
      for (const x of samples) {
        const n = x.stats !== undefined ? translatorNote(`cpu ${k.name} on ${m.name}`, x.stats) : undefined;
        if (n !== undefined && !notes.includes(n)) notes.push(n);
      }
    }
    const ref = kr.ipi.get(INTERPRETER.name) ?? kr.ipi.get(TRANSLATOR.name);
    const jitIpi = kr.ipi.get(TRANSLATOR.name);
    const interpIpi = kr.ipi.get(INTERPRETER.name);
    if (jitIpi !== undefined && interpIpi !== undefined && Math.abs(jitIpi - interpIpi) > interpIpi * 0.01)
      notes.push(
        `cpu ${k.name}: visor's instret counts ${fmt(jitIpi)} instructions per iteration with the translator and ${fmt(interpIpi)} with the interpreter alone; MIPS use the interpreter's count.`,
      );
    if (ref !== undefined) {
      for (const c of competitors) {
        const samples = res.get(c.name)!.samples;
        if (c.name === NATIVE || samples.length === 0) continue;
        // The interpreter's own samples use their own instret, as before the translator.
        const perSample = (s: Sample) =>
          c.name === INTERPRETER.name ? (s.instret / s.ns) * 1000 : ((ref * s.iters) / s.ns) * 1000;
        const f = makeFigure(
          `cpu/${k.name}/${figureKey(c.name)}/mips`,
          `${k.name} kernel, ${c.name}`,
          "MIPS",
          "higher",
          samples.map(perSample),
        );
        kr.mips.set(c.name, f);
        figures.push(f);
      }
    }
    results.push(kr);
    rows.push(...cpuRows(kr, runners));
    timeGroups.push({ label: k.name, bars: [...kr.time].map(([name, f]) => barOf(name, f)) });
    const mb = [...kr.mips].map(([name, f]) => barOf(name, f));
    if (mb.length > 0) mipsGroups.push({ label: k.name, bars: mb });
  }
  for (const [k, set] of checks) {
    const values = new Set([...set].map((x) => x.slice(x.indexOf(":") + 1)));
    if (values.size > 1)
      notes.push(
        `cpu ${k}: the runners computed different check values (${[...set].join(", ")}): a correctness bug in one of them`,
      );
  }
  if (ctx.tools.qemuUser === undefined)
    notes.push("qemu-riscv64 is not installed: its rows are skipped, not estimated.");
  if (native === undefined) notes.push(`native rows skipped: ${nativeWhy}.`);

  const tables: Table[] = [
    {
      caption: `Median of ${reps} alternating runs; each run times at least ${targetMs} ms of kernel iterations after an untimed warm-up. Time ratios are this runner's time over the peer's; the jit speed-up is the interpreter's time over the translator's.`,
      head: CPU_TABLE_HEAD,
      rows,
    },
    {
      caption: "What each kernel does",
      head: ["kernel", "work"],
      rows: KERNELS.map((k) => [k.name, k.what]),
    },
  ];
  const charts: ChartSpec[] = [];
  if (timeGroups.some((g) => g.bars.length > 0)) {
    charts.push({
      file: "bench-cpu-time.svg",
      title: "cpu: time per kernel iteration (lower is better)",
      unit: "microseconds per iteration",
      log: true,
      groups: timeGroups,
      caption: `${cpuTimeCaption(results)} (log scale; whiskers are min..max of the runs).`,
    });
  }
  if (mipsGroups.length > 0) {
    const per = (name: string) =>
      results
        .filter((r) => r.mips.has(name))
        .map((r) => `${r.kernel} ${fmt(r.mips.get(name)!.median)}`)
        .join(", ");
    const parts = VISOR_MODES.filter((m) => per(m.name) !== "").map((m) => `${m.name} ${per(m.name)}`);
    charts.push({
      file: "bench-cpu-mips.svg",
      title: "cpu: guest instructions per second (higher is better)",
      unit: "MIPS (million riscv64 instructions per second)",
      log: true,
      groups: mipsGroups,
      caption: `Guest instruction throughput, from visor's instret count per iteration: ${parts.join("; ")} MIPS.`,
    });
  }
  const anyRun = figures.length > 0;
  return {
    name: "cpu",
    title: "cpu: interpreter and translator speed on compute kernels",
    about:
      "Three kernels from apps/bench/fixtures/src/cpu.c, built as one static riscv64 Linux program, run under visor (`visor exec`: the hart in U-mode, system calls served by @visor/syscall) twice, with `--jit off` (the interpreter alone) and `--jit on` (hot code translated to WebAssembly), under qemu-riscv64 (TCG user mode), and compiled for the host with gcc -O2. Each run times at least a target number of milliseconds of iterations with CLOCK_MONOTONIC inside the program, after an untimed warm-up (which is also when the translator translates the hot loops). Instructions per iteration are visor's rdinstret count; the translator's and QEMU's MIPS reuse the interpreter's count, since the same binary retires the same instructions. Native times are x86-64 code, so no MIPS for them. Every runner must compute the same check value.",
    status: !anyRun
      ? "failed"
      : notes.some((n) => /failed|skipped|not the translator's/.test(n))
        ? "partial"
        : "ok",
    notes,
    figures,
    tables,
    charts,
    durationMs: 0,
    raw,
  };
}

/** The time chart's sentence: per kernel, visor's time against qemu-riscv64's in each mode. */
export function cpuTimeCaption(results: readonly CpuKernelResult[]): string {
  const parts: string[] = [];
  for (const r of results) {
    const q = r.time.get(QEMU);
    const i = r.time.get(INTERPRETER.name);
    const j = r.time.get(TRANSLATOR.name);
    const vs = (f: Figure) => (q ? ` (${ratio(f.median, q.median)} qemu-riscv64's time)` : "");
    if (i && j)
      parts.push(
        `${r.kernel} ${fmt(i.median)} -> ${fmt(j.median)} us${vs(j)}, ${ratio(i.median, j.median)} faster`,
      );
    else if (i) parts.push(`${r.kernel} ${fmt(i.median)} us with the interpreter${vs(i)}`);
    else if (j) parts.push(`${r.kernel} ${fmt(j.median)} us with the translator${vs(j)}`);
  }
  return parts.length > 0
    ? `Time per iteration, visor's interpreter -> translator: ${parts.join("; ")}`
    : "Time per iteration of each kernel on each runner";
}
