/**
 * cpu: MIPS on integer, memory and floating-point kernels (fixtures/src/cpu.c), visor
 * (the hart in U-mode under @visor/syscall) vs qemu-riscv64 (TCG) vs the same C source
 * compiled for the host.
 */
import {
  alternate,
  type Competitor,
  type Context,
  fixture,
  keyValues,
  nativeBinary,
  paths,
  runNode,
  tagged,
} from "../context.ts";
import { barOf, makeFigure, ratio } from "../figures.ts";
import { check, run } from "../proc.ts";
import { fmt } from "../stats.ts";
import type { ChartSpec, Figure, SuiteResult, Table } from "../types.ts";

const KERNELS = [
  { name: "int", what: "64-bit integer ALU: xorshift, multiply, divide, a bitwise CRC-32" },
  { name: "mem", what: "a triad over 3 x 256 KiB arrays and a pointer chase through a 1 MiB random cycle" },
  { name: "fp", what: "double precision: a 24x24 matrix multiply, Newton square roots, divides" },
] as const;

interface Sample {
  iters: number;
  ns: number;
  instret: number;
  check: string;
  /** visor only: instructions over the whole process (KernelStats) */
  totalInstructions?: number;
}

export function parseCpuLine(out: string): Sample {
  const kv = keyValues(out, "cpu ");
  if (kv === undefined) throw new Error("no 'cpu' result line in the program's output");
  return { iters: Number(kv.iters), ns: Number(kv.ns), instret: Number(kv.instret), check: kv.check ?? "" };
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
  const checks = new Map<string, Set<string>>();
  for (const k of KERNELS) {
    const competitors: Competitor<Sample>[] = [
      {
        name: "visor",
        run: async () => {
          const r = check(
            await runNode(
              ctx,
              paths.execRunner,
              [paths.fixtureBin, "/cpu", k.name, String(targetMs)],
              300_000,
            ),
            "visor cpu",
          );
          const s = parseCpuLine(r.stdout);
          s.totalInstructions = tagged<{ stats: { instructions: number } }>(
            r.stderr,
            "@@visor-exec",
          ).stats.instructions;
          return s;
        },
      },
      {
        name: "qemu-riscv64",
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
        name: "native",
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
    const fig = new Map<string, Figure>();
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
        `cpu/${k.name}/${c.name}/us-per-iter`,
        `${k.name} kernel, ${c.name}`,
        "us/iteration",
        "lower",
        o.samples.map((s) => s.ns / s.iters / 1000),
      );
      fig.set(c.name, f);
      figures.push(f);
    }
    // Instructions per iteration come from visor's instret (the same binary retires the
    // same instructions under any riscv64 emulator), so MIPS for qemu uses visor's count.
    const visor = res.get("visor")!.samples;
    const ipi =
      visor.length > 0
        ? visor.map((s) => s.instret / s.iters).sort((a, b) => a - b)[visor.length >> 1]!
        : undefined;
    let mipsV: Figure | undefined;
    let mipsQ: Figure | undefined;
    if (ipi !== undefined) {
      mipsV = makeFigure(
        `cpu/${k.name}/visor/mips`,
        `${k.name} kernel, visor`,
        "MIPS",
        "higher",
        visor.map((s) => (s.instret / s.ns) * 1000),
      );
      figures.push(mipsV);
      const q = res.get("qemu-riscv64")!.samples;
      if (q.length > 0) {
        mipsQ = makeFigure(
          `cpu/${k.name}/qemu-riscv64/mips`,
          `${k.name} kernel, qemu-riscv64`,
          "MIPS",
          "higher",
          q.map((s) => ((ipi * s.iters) / s.ns) * 1000),
        );
        figures.push(mipsQ);
      }
    }
    const v = fig.get("visor");
    const q = fig.get("qemu-riscv64");
    const n = fig.get("native");
    rows.push([
      k.name,
      ipi !== undefined ? fmt(ipi) : "-",
      v ? fmt(v.median) : "-",
      q ? fmt(q.median) : "-",
      n ? fmt(n.median) : "-",
      mipsV ? fmt(mipsV.median) : "-",
      mipsQ ? fmt(mipsQ.median) : "-",
      v && q ? ratio(v.median, q.median) : "-",
      v && n ? ratio(v.median, n.median) : "-",
    ]);
    timeGroups.push({ label: k.name, bars: [...fig].map(([name, f]) => barOf(name, f)) });
    const mb = [];
    if (mipsV) mb.push(barOf("visor", mipsV));
    if (mipsQ) mb.push(barOf("qemu-riscv64", mipsQ));
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
    notes.push("qemu-riscv64 is not installed: that column is skipped, not estimated.");
  if (native === undefined) notes.push(`native column skipped: ${nativeWhy}.`);

  const tables: Table[] = [
    {
      caption: `Median of ${reps} alternating runs; each run times at least ${targetMs} ms of kernel iterations after an untimed warm-up.`,
      head: [
        "kernel",
        "instr/iter",
        "visor us/iter",
        "qemu us/iter",
        "native us/iter",
        "visor MIPS",
        "qemu MIPS",
        "visor/qemu time",
        "visor/native time",
      ],
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
    const slow = rows.filter((r) => r[7] !== "-").map((r) => `${r[0]} ${r[7]}`);
    charts.push({
      file: "bench-cpu-time.svg",
      title: "cpu: time per kernel iteration (lower is better)",
      unit: "microseconds per iteration",
      log: true,
      groups: timeGroups,
      caption:
        slow.length > 0
          ? `Time per iteration of each kernel: visor takes ${slow.join(", ")} the time of qemu-riscv64 (log scale; whiskers are min..max of the runs).`
          : "Time per iteration of each kernel on each runner (log scale; whiskers are min..max of the runs).",
    });
  }
  if (mipsGroups.length > 0) {
    const mv = rows.map((r) => `${r[0]} ${r[5]}`).join(", ");
    charts.push({
      file: "bench-cpu-mips.svg",
      title: "cpu: guest instructions per second (higher is better)",
      unit: "MIPS (million riscv64 instructions per second)",
      log: true,
      groups: mipsGroups,
      caption: `Guest instruction throughput, from visor's instret count per iteration: visor runs at ${mv} MIPS on the int, mem and fp kernels.`,
    });
  }
  const anyRun = figures.length > 0;
  return {
    name: "cpu",
    title: "cpu: interpreter speed on compute kernels",
    about:
      "Three kernels from apps/bench/fixtures/src/cpu.c, built as one static riscv64 Linux program, run under visor (the hart in U-mode, system calls served by @visor/syscall, the calls `visor exec` makes), under qemu-riscv64 (TCG user mode), and compiled for the host with gcc -O2. Each run times at least a target number of milliseconds of iterations with CLOCK_MONOTONIC inside the program. Instructions per iteration are visor's rdinstret count; QEMU's MIPS reuse that count, since the same binary retires the same instructions. Native times are x86-64 code, so no MIPS for them. Every runner must compute the same check value.",
    status: !anyRun ? "failed" : notes.some((n) => /failed|skipped/.test(n)) ? "partial" : "ok",
    notes,
    figures,
    tables,
    charts,
    durationMs: 0,
    raw,
  };
}
