/**
 * syscalls: ns per system call (a getpid loop) and the ways to get bytes out of a program:
 * one-byte write()s vs stdio-buffered writes vs writev vs io_uring batches
 * (fixtures/src/syscalls.c), visor (`visor exec`, with the interpreter alone and with the
 * translator) vs qemu-riscv64 vs native; and busybox sha256sum of a 16 MiB file, visor in
 * both modes vs qemu-riscv64.
 */
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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

const TESTS = [
  { name: "getpid", what: "getpid() in a loop: the round trip of one system call" },
  { name: "write1", what: "write(fd, 1 byte) per byte" },
  { name: "buffered", what: "putc() through a 4 KiB stdio buffer: one write() per 4096 bytes" },
  { name: "writev", what: "writev() of 1024 one-byte iovecs per call" },
  { name: "uring", what: "io_uring: 256 one-byte IORING_OP_WRITE SQEs per io_uring_enter" },
] as const;

interface Sample {
  ops: number;
  bytes: number;
  calls: number;
  ns: number;
  unsupported?: string;
}

export function parseSyscallsLine(out: string): Sample {
  const kv = keyValues(out, "syscalls ");
  if (kv === undefined) throw new Error("no 'syscalls' result line in the program's output");
  if ("unsupported" in kv || out.includes(" unsupported ")) {
    return { ops: 0, bytes: 0, calls: 0, ns: 0, unsupported: `errno ${kv.errno ?? "?"}` };
  }
  return { ops: Number(kv.ops), bytes: Number(kv.bytes), calls: Number(kv.calls), ns: Number(kv.ns) };
}

const QEMU = "qemu-riscv64";
const NATIVE = "native";
/** The runners of the system-call tests, in column order. */
export const SYSCALL_RUNNERS = [...VISOR_MODES.map((m) => m.name), QEMU, NATIVE];

/** The argv of one visor run of a test (`visor exec --jit MODE`, `--stats` for the counting run). */
export function syscallsVisorArgv(jit: JitMode, test: string, targetMs: number, stats = false): string[] {
  return visorExecArgv({
    jit,
    root: paths.fixtureBin,
    program: "/syscalls",
    args: [test, String(targetMs)],
    memoryMiB: 512,
    stats,
  });
}

/** One runner's outcome for one test, as the main table shows it. */
export type SyscallCell = { figure: Figure } | { unsupported: string } | undefined;

/** A main-table cell: ns per op (and MB/s for the byte tests), "unsupported" or "-". */
export function syscallCell(test: string, c: SyscallCell): string {
  if (c === undefined) return "-";
  if ("unsupported" in c) return "unsupported";
  const m = c.figure.median;
  return `${fmt(m)}${test === "getpid" ? "" : ` (${fmt(1000 / m)} MB/s)`}`;
}

/** One `visor exec --stats` counting run of a test: the program's line and the kernel's counts. */
export interface CountingRun {
  runner: string;
  sample: Sample;
  stats: ExecStats;
}

export const COUNTS_HEAD = [
  "test",
  "runner",
  "ops timed",
  "calls timed",
  "traps (process)",
  "calls per 1024 ops",
  "traps per 1024 ops",
  "guest instructions per op (process)",
  "ran translated",
];

/** The counts table's row for one counting run. */
export function countsRow(test: string, r: CountingRun): string[] {
  const s = r.sample;
  return [
    test,
    r.runner,
    String(s.ops),
    String(s.calls),
    String(r.stats.traps),
    fmt((s.calls / s.ops) * 1024),
    fmt((r.stats.traps / s.ops) * 1024),
    fmt(r.stats.instructions / s.ops),
    shareText(r.stats.translatedShare),
  ];
}

/** busybox sha256sum of a file of this many MiB (smaller with --quick). */
export function sha256MiB(quick: boolean): number {
  return quick ? 2 : 16;
}

/** The file's bytes: the pattern packages/syscall/bench/compare.ts hashes. */
export function sha256Data(mib: number): Buffer {
  const b = Buffer.alloc(mib * 1024 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = (i * 2654435761) >>> 24;
  return b;
}

/** The argv of one visor sha256sum run (`--stats`: its wall time excludes Node's start-up). */
export function sha256VisorArgv(jit: JitMode, root: string, file: string): string[] {
  return visorExecArgv({ jit, root, program: "/bin/busybox", args: ["sha256sum", file], stats: true });
}

interface HashSample {
  /** seconds: visor's own run (exec --stats wall time), qemu's process start to exit */
  s: number;
  /** process start to exit */
  processS: number;
  hash: string;
  instructions?: number;
  stats?: ExecStats;
}

/** The hash sha256sum printed (first word of its output). */
export function hashOf(stdout: string): string {
  const h = /^([0-9a-f]{64})\s/.exec(stdout);
  if (!h) throw new Error("sha256sum printed no hash");
  return h[1]!;
}

export const SHA256_HEAD = [
  "runner",
  "s (median)",
  "s (min..max)",
  "process s",
  "MB/s",
  "guest MIPS",
  "time vs qemu-riscv64",
  "jit speed-up",
  "ran translated",
];

export interface HashFigures {
  s: Figure;
  processS: Figure;
  mbs: Figure;
  mips?: Figure;
  /** Median share of instructions that ran translated (visor, when exec reports it). */
  translatedShare?: number;
}

/** The sha256sum table: one row per runner with results; ratios as in the cpu table. */
export function sha256Rows(figs: ReadonlyMap<string, HashFigures>): string[][] {
  const q = figs.get(QEMU);
  const i = figs.get(INTERPRETER.name);
  const rows: string[][] = [];
  for (const r of [...VISOR_MODES.map((m) => m.name), QEMU]) {
    const f = figs.get(r);
    if (f === undefined) continue;
    rows.push([
      r,
      fmt(f.s.median),
      `${fmt(f.s.min)}..${fmt(f.s.max)}`,
      fmt(f.processS.median),
      fmt(f.mbs.median),
      f.mips ? fmt(f.mips.median) : "-",
      q && r !== QEMU ? ratio(f.s.median, q.s.median) : "-",
      r === TRANSLATOR.name && i ? ratio(i.s.median, f.s.median) : "-",
      shareText(f.translatedShare),
    ]);
  }
  return rows;
}

/** A root for busybox: /bin/busybox (packages/syscall's fixture) and /data/NAME. */
function hashRoot(ctx: Context, mib: number): { root: string; file: string; want: string } {
  const root = join(ctx.workDir, "sha256-root");
  const name = `${mib}m.bin`;
  mkdirSync(join(root, "bin"), { recursive: true });
  mkdirSync(join(root, "data"), { recursive: true });
  const busybox = join(REPO_ROOT, "packages/syscall/fixtures/busybox/busybox");
  if (!existsSync(busybox)) throw new Error(`${busybox} is missing`);
  copyFileSync(busybox, join(root, "bin/busybox"));
  chmodSync(join(root, "bin/busybox"), 0o755);
  const data = sha256Data(mib);
  writeFileSync(join(root, "data", name), data);
  return { root, file: `/data/${name}`, want: createHash("sha256").update(data).digest("hex") };
}

export async function syscallsSuite(ctx: Context): Promise<SuiteResult> {
  const reps = ctx.reps ?? (ctx.quick ? 3 : 5);
  const targetMs = ctx.quick ? 150 : 600;
  const bin = fixture("syscalls");
  let native: string | undefined;
  let nativeWhy: string | undefined;
  try {
    native = await nativeBinary(ctx, "syscalls");
  } catch (e) {
    nativeWhy = (e as Error).message;
  }
  const notes: string[] = [];
  const figures: Figure[] = [];
  const rows: string[][] = [];
  const countRows: string[][] = [];
  const groups: ChartSpec["groups"] = [];
  const raw: Record<string, unknown> = {};
  const perOp = new Map<string, Map<string, Figure>>();
  for (const t of TESTS) {
    const competitors: Competitor<Sample>[] = [
      ...VISOR_MODES.map(
        (m): Competitor<Sample> => ({
          name: m.name,
          run: async () =>
            parseSyscallsLine(
              check(
                await run(ctx.node, syscallsVisorArgv(m.jit, t.name, targetMs), {
                  cwd: REPO_ROOT,
                  timeoutMs: 300_000,
                }),
                `visor exec --jit ${m.jit} syscalls`,
              ).stdout,
            ),
        }),
      ),
      {
        name: QEMU,
        ...(ctx.tools.qemuUser === undefined ? { unavailable: "qemu-riscv64 is not installed" } : {}),
        run: async () =>
          parseSyscallsLine(
            check(
              await run(ctx.tools.qemuUser!, [bin, t.name, String(targetMs)], { timeoutMs: 120_000 }),
              "qemu-riscv64",
            ).stdout,
          ),
      },
      {
        name: NATIVE,
        ...(native === undefined ? { unavailable: `native build: ${nativeWhy}` } : {}),
        run: async () =>
          parseSyscallsLine(
            check(await run(native!, [t.name, String(targetMs)], { timeoutMs: 120_000 }), "native").stdout,
          ),
      },
    ];
    const res = await alternate(ctx, `syscalls ${t.name}`, reps, competitors, (s) =>
      s.unsupported !== undefined ? `unsupported (${s.unsupported})` : `${fmt(s.ns / s.ops)} ns/op`,
    );
    const m = new Map<string, Figure>();
    const row: string[] = [t.name];
    for (const c of competitors) {
      if (c.unavailable !== undefined) {
        row.push("-");
        continue;
      }
      const o = res.get(c.name)!;
      for (const e of [...new Set(o.errors)]) notes.push(`syscalls ${t.name} on ${c.name} failed: ${e}`);
      const ok = o.samples.filter((s) => s.unsupported === undefined);
      const unsup = o.samples.find((s) => s.unsupported !== undefined);
      if (unsup !== undefined && ok.length === 0) {
        notes.push(`${t.name} on ${c.name}: io_uring_setup failed (${unsup.unsupported}), skipped.`);
        row.push(syscallCell(t.name, { unsupported: unsup.unsupported! }));
        continue;
      }
      if (ok.length === 0) {
        row.push(syscallCell(t.name, undefined));
        continue;
      }
      const unit = t.name === "getpid" ? "ns per call" : "ns per byte";
      const key = figureKey(c.name);
      const f = makeFigure(
        `syscalls/${t.name}/${key}/ns-per-op`,
        `${t.name}, ${c.name}`,
        unit,
        "lower",
        ok.map((s) => s.ns / s.ops),
      );
      figures.push(f);
      m.set(c.name, f);
      if (t.name !== "getpid") {
        figures.push(
          makeFigure(
            `syscalls/${t.name}/${key}/mb-per-s`,
            `${t.name}, ${c.name}`,
            "MB/s",
            "higher",
            ok.map((s) => (s.bytes / s.ns) * 1000),
          ),
        );
      }
      row.push(syscallCell(t.name, { figure: f }));
    }
    // The kernel's counts come from one more run per mode with --stats, outside the timed
    // runs: --stats times every system call, which would add to the figures above.
    const counting: CountingRun[] = [];
    for (const mode of VISOR_MODES) {
      if (res.get(mode.name)!.samples.length === 0) continue;
      try {
        const r = check(
          await run(ctx.node, syscallsVisorArgv(mode.jit, t.name, targetMs, true), {
            cwd: REPO_ROOT,
            timeoutMs: 300_000,
          }),
          `visor exec --jit ${mode.jit} --stats syscalls`,
        );
        const sample = parseSyscallsLine(r.stdout);
        if (sample.unsupported !== undefined) continue;
        const cr = { runner: mode.name, sample, stats: parseExecStats(r.stderr) };
        const n = translatorNote(`syscalls ${t.name} on ${mode.name}`, cr.stats);
        if (n !== undefined) notes.push(n);
        counting.push(cr);
        countRows.push(countsRow(t.name, cr));
        if (t.name !== "getpid")
          figures.push(
            makeFigure(
              `syscalls/${t.name}/visor${mode.suffix}/traps-per-kib`,
              `${t.name}, ${mode.name} traps per KiB`,
              "traps per 1024 ops",
              "lower",
              [(cr.stats.traps / sample.ops) * 1024],
            ),
          );
      } catch (e) {
        notes.push(`syscalls ${t.name}: the counting run on ${mode.name} failed: ${(e as Error).message}`);
      }
    }
    raw[t.name] = { ...Object.fromEntries(res), counting };
    rows.push([...row, t.what]);
    perOp.set(t.name, m);
    if (m.size > 0) groups.push({ label: t.name, bars: [...m].map(([n, f]) => barOf(n, f)) });
  }
  if (ctx.tools.qemuUser === undefined)
    notes.push("qemu-riscv64 is not installed: that column is skipped, not estimated.");
  if (native === undefined) notes.push(`native column skipped: ${nativeWhy}.`);

  // busybox sha256sum of a file: a compute-bound exec (a few thousand read() calls), the
  // measurement packages/syscall/bench/compare.ts makes, in both translation modes.
  const mib = sha256MiB(ctx.quick);
  const hashFigs = new Map<string, HashFigures>();
  const hashKey = `sha256sum-${mib}m`;
  try {
    const { root, file, want } = hashRoot(ctx, mib);
    const bytes = mib * 1024 * 1024;
    const hashCompetitors: Competitor<HashSample>[] = [
      ...VISOR_MODES.map(
        (m): Competitor<HashSample> => ({
          name: m.name,
          run: async () => {
            const r = check(
              await run(ctx.node, sha256VisorArgv(m.jit, root, file), { cwd: REPO_ROOT, timeoutMs: 600_000 }),
              `visor exec --jit ${m.jit} sha256sum`,
            );
            const st = parseExecStats(r.stderr);
            return {
              s: st.wallMs / 1000,
              processS: r.wallMs / 1000,
              hash: hashOf(r.stdout),
              instructions: st.instructions,
              stats: st,
            };
          },
        }),
      ),
      {
        name: QEMU,
        ...(ctx.tools.qemuUser === undefined ? { unavailable: "qemu-riscv64 is not installed" } : {}),
        run: async () => {
          const r = check(
            await run(ctx.tools.qemuUser!, [join(root, "bin/busybox"), "sha256sum", join(root, file)], {
              timeoutMs: 300_000,
            }),
            "qemu-riscv64 sha256sum",
          );
          return { s: r.wallMs / 1000, processS: r.wallMs / 1000, hash: hashOf(r.stdout) };
        },
      },
    ];
    const hres = await alternate(ctx, `syscalls ${hashKey}`, reps, hashCompetitors, (x) => `${fmt(x.s)} s`);
    raw[hashKey] = Object.fromEntries(hres);
    for (const c of hashCompetitors) {
      if (c.unavailable !== undefined) continue;
      const o = hres.get(c.name)!;
      for (const e of [...new Set(o.errors)]) notes.push(`${hashKey} on ${c.name} failed: ${e}`);
      const wrong = o.samples.find((x) => x.hash !== want);
      if (wrong !== undefined)
        notes.push(
          `${hashKey} on ${c.name}: printed ${wrong.hash}, not the file's hash ${want}: a correctness bug`,
        );
      const ok = o.samples.filter((x) => x.hash === want);
      if (ok.length === 0) continue;
      const key = figureKey(c.name);
      const f: HashFigures = {
        s: makeFigure(
          `syscalls/${hashKey}/${key}/s`,
          `${hashKey}, ${c.name}`,
          "s",
          "lower",
          ok.map((x) => x.s),
        ),
        processS: makeFigure(
          `syscalls/${hashKey}/${key}/process-s`,
          `${hashKey}, ${c.name}, process start to exit`,
          "s",
          "lower",
          ok.map((x) => x.processS),
        ),
        mbs: makeFigure(
          `syscalls/${hashKey}/${key}/mb-per-s`,
          `${hashKey}, ${c.name}`,
          "MB/s",
          "higher",
          ok.map((x) => bytes / 1e6 / x.s),
        ),
      };
      const ins = ok.filter((x) => x.instructions !== undefined);
      if (ins.length > 0)
        f.mips = makeFigure(
          `syscalls/${hashKey}/${key}/mips`,
          `${hashKey}, ${c.name}`,
          "MIPS",
          "higher",
          ins.map((x) => x.instructions! / x.s / 1e6),
        );
      const shares = ok.map((x) => x.stats?.translatedShare).filter((x): x is number => x !== undefined);
      if (shares.length > 0) f.translatedShare = median(shares);
      for (const x of ok) {
        const n = x.stats !== undefined ? translatorNote(`${hashKey} on ${c.name}`, x.stats) : undefined;
        if (n !== undefined && !notes.includes(n)) notes.push(n);
      }
      figures.push(f.s, f.processS, f.mbs, ...(f.mips ? [f.mips] : []));
      hashFigs.set(c.name, f);
    }
  } catch (e) {
    notes.push(`${hashKey} skipped: ${(e as Error).message}`);
  }

  const tables: Table[] = [
    {
      caption: `ns per operation (one call for getpid, one byte for the others; MB/s in brackets), median of ${reps} alternating runs of at least ${targetMs} ms each. Output goes to /dev/null.`,
      head: ["test", ...SYSCALL_RUNNERS, "what"],
      rows,
    },
    {
      caption:
        "visor: system calls and traps, from one more run of each test per mode with `visor exec --stats` (not timed: --stats times every system call). Calls are those the timed region made; traps are every exit from the hart to @visor/syscall over the whole process (start-up, page faults and the untimed warm-up round included).",
      head: COUNTS_HEAD,
      rows: countRows,
    },
  ];
  if (hashFigs.size > 0)
    tables.push({
      caption: `busybox sha256sum of a ${mib} MiB file, median of ${reps} alternating runs. visor's time is the run's own wall time from \`visor exec --stats\` (Node's start-up excluded; "process s" includes it); qemu-riscv64's is process start to exit. Both must print the file's hash.`,
      head: SHA256_HEAD,
      rows: sha256Rows(hashFigs),
    });
  const g = perOp.get("getpid");
  const parts: string[] = [];
  const gi = g?.get(INTERPRETER.name);
  const gj = g?.get(TRANSLATOR.name);
  const gq = g?.get(QEMU);
  if (gi || gj)
    parts.push(
      `A getpid system call costs ${[gi ? `${fmt(gi.median)} ns on visor's interpreter` : "", gj ? `${fmt(gj.median)} ns with the translator` : ""].filter((x) => x !== "").join(" and ")}${gq ? ` against ${fmt(gq.median)} ns on qemu-riscv64` : ""}`,
    );
  const w1 = perOp.get("write1")?.get(INTERPRETER.name);
  const best = ["buffered", "writev", "uring"]
    .map((n) => [n, perOp.get(n)?.get(INTERPRETER.name)] as const)
    .filter((x): x is readonly [string, Figure] => x[1] !== undefined)
    .sort((a, b) => a[1].median - b[1].median)[0];
  if (w1 && best)
    parts.push(`${best[0]} moves a byte ${ratio(w1.median, best[1].median)} faster than one-byte writes`);
  const charts: ChartSpec[] = [];
  if (groups.length > 0)
    charts.push({
      file: "bench-syscalls.svg",
      title: "syscalls: ns per call (getpid) or per byte written (lower is better)",
      unit: "nanoseconds per operation",
      log: true,
      groups,
      caption: parts.length > 0 ? `${parts.join("; ")} (log scale).` : "Cost per operation (log scale).",
    });
  if (hashFigs.size > 0) {
    const hi = hashFigs.get(INTERPRETER.name)?.s;
    const hj = hashFigs.get(TRANSLATOR.name)?.s;
    const hq = hashFigs.get(QEMU)?.s;
    const said = [
      hi ? `${fmt(hi.median)} s with visor's interpreter` : "",
      hj ? `${fmt(hj.median)} s with the translator` : "",
      hq ? `${fmt(hq.median)} s on qemu-riscv64` : "",
    ].filter((x) => x !== "");
    charts.push({
      file: "bench-syscalls-sha256.svg",
      title: `syscalls: busybox sha256sum of a ${mib} MiB file (lower is better)`,
      unit: "seconds",
      log: true,
      groups: [{ label: `sha256sum ${mib} MiB`, bars: [...hashFigs].map(([n, f]) => barOf(n, f.s)) }],
      caption: `busybox sha256sum of ${mib} MiB takes ${said.join(", ")} (log scale).`,
    });
  }
  return {
    name: "syscalls",
    title: "syscalls: system-call cost and batching",
    about:
      "apps/bench/fixtures/src/syscalls.c, a static riscv64 Linux program, under visor (`visor exec`, with `--jit off`, the interpreter alone, and `--jit on`, hot code translated to WebAssembly), qemu-riscv64 and natively. Each test runs an untimed warm-up round, then doubling rounds until the target time has passed, timed inside the program. The io_uring test drives the rings by hand: io_uring_setup, mmap of the SQ/CQ rings and the SQE array, SQEs written and CQEs reaped in shared memory, one io_uring_enter per batch of 256. visor's system-call and trap counts come from one more, untimed, run of each test per mode with `visor exec --stats`. Last, busybox sha256sum of a 16 MiB file (2 MiB with --quick; packages/syscall's busybox fixture) under visor in both modes and under qemu-riscv64: a compute-bound program making a few thousand read() calls, timed by `visor exec --stats` for visor and process start to exit for QEMU.",
    status:
      figures.length === 0
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
