/**
 * syscalls: ns per system call (a getpid loop) and the ways to get bytes out of a program:
 * one-byte write()s vs stdio-buffered writes vs writev vs io_uring batches
 * (fixtures/src/syscalls.c), visor (@visor/syscall, as `visor exec`) vs qemu-riscv64 vs
 * native.
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
  /** visor only: the whole process */
  traps?: number;
  syscalls?: number;
  instructions?: number;
}

export function parseSyscallsLine(out: string): Sample {
  const kv = keyValues(out, "syscalls ");
  if (kv === undefined) throw new Error("no 'syscalls' result line in the program's output");
  if ("unsupported" in kv || out.includes(" unsupported ")) {
    return { ops: 0, bytes: 0, calls: 0, ns: 0, unsupported: `errno ${kv.errno ?? "?"}` };
  }
  return { ops: Number(kv.ops), bytes: Number(kv.bytes), calls: Number(kv.calls), ns: Number(kv.ns) };
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
  const visorRows: string[][] = [];
  const groups: ChartSpec["groups"] = [];
  const raw: Record<string, unknown> = {};
  const perOp = new Map<string, Map<string, Figure>>();
  for (const t of TESTS) {
    const competitors: Competitor<Sample>[] = [
      {
        name: "visor",
        run: async () => {
          const r = check(
            await runNode(
              ctx,
              paths.execRunner,
              [paths.fixtureBin, "/syscalls", t.name, String(targetMs)],
              300_000,
            ),
            "visor syscalls",
          );
          const s = parseSyscallsLine(r.stdout);
          const st = tagged<{ stats: { traps: number; syscalls: number; instructions: number } }>(
            r.stderr,
            "@@visor-exec",
          ).stats;
          s.traps = st.traps;
          s.syscalls = st.syscalls;
          s.instructions = st.instructions;
          return s;
        },
      },
      {
        name: "qemu-riscv64",
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
        name: "native",
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
    raw[t.name] = Object.fromEntries(res);
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
        row.push("unsupported");
        continue;
      }
      if (ok.length === 0) {
        row.push("-");
        continue;
      }
      const unit = t.name === "getpid" ? "ns per call" : "ns per byte";
      const f = makeFigure(
        `syscalls/${t.name}/${c.name}/ns-per-op`,
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
            `syscalls/${t.name}/${c.name}/mb-per-s`,
            `${t.name}, ${c.name}`,
            "MB/s",
            "higher",
            ok.map((s) => (s.bytes / s.ns) * 1000),
          ),
        );
      }
      row.push(`${fmt(f.median)}${t.name === "getpid" ? "" : ` (${fmt(1000 / f.median)} MB/s)`}`);
      if (c.name === "visor") {
        const s0 = ok[0]!;
        const traps = makeFigure(
          `syscalls/${t.name}/visor/traps-per-kib`,
          `${t.name}, visor traps per KiB`,
          "traps per 1024 ops",
          "lower",
          ok.map((s) => ((s.traps ?? 0) / s.ops) * 1024),
        );
        if (t.name !== "getpid") figures.push(traps);
        visorRows.push([
          t.name,
          String(s0.ops),
          String(s0.calls),
          String(s0.traps ?? "-"),
          fmt((s0.calls / s0.ops) * 1024),
          fmt(traps.median),
          s0.instructions !== undefined ? fmt(s0.instructions / s0.ops) : "-",
        ]);
      }
    }
    rows.push([...row, t.what]);
    perOp.set(t.name, m);
    if (m.size > 0) groups.push({ label: t.name, bars: [...m].map(([n, f]) => barOf(n, f)) });
  }
  if (ctx.tools.qemuUser === undefined)
    notes.push("qemu-riscv64 is not installed: that column is skipped, not estimated.");
  if (native === undefined) notes.push(`native column skipped: ${nativeWhy}.`);

  const tables: Table[] = [
    {
      caption: `ns per operation (one call for getpid, one byte for the others; MB/s in brackets), median of ${reps} alternating runs of at least ${targetMs} ms each. Output goes to /dev/null.`,
      head: ["test", "visor", "qemu-riscv64", "native", "what"],
      rows,
    },
    {
      caption:
        "visor: system calls and traps. Calls are those the timed region made; traps are every exit from the hart to @visor/syscall over the whole process (start-up, page faults and the untimed warm-up round included).",
      head: [
        "test",
        "ops timed",
        "calls timed",
        "traps (process)",
        "calls per 1024 ops",
        "traps per 1024 ops",
        "guest instructions per op (process)",
      ],
      rows: visorRows,
    },
  ];
  const g = perOp.get("getpid")?.get("visor");
  const gq = perOp.get("getpid")?.get("qemu-riscv64");
  const w1 = perOp.get("write1")?.get("visor");
  const best = ["buffered", "writev", "uring"]
    .map((n) => [n, perOp.get(n)?.get("visor")] as const)
    .filter((x): x is readonly [string, Figure] => x[1] !== undefined)
    .sort((a, b) => a[1].median - b[1].median)[0];
  const parts: string[] = [];
  if (g)
    parts.push(
      `A getpid system call costs ${fmt(g.median)} ns on visor${gq ? ` against ${fmt(gq.median)} ns on qemu-riscv64` : ""}`,
    );
  if (w1 && best)
    parts.push(`${best[0]} moves a byte ${ratio(w1.median, best[1].median)} faster than one-byte writes`);
  return {
    name: "syscalls",
    title: "syscalls: system-call cost and batching",
    about:
      "apps/bench/fixtures/src/syscalls.c, a static riscv64 Linux program, under visor (run in a child process with @visor/syscall's runProgram and the Node host: the calls `visor exec --stats` makes, with the kernel statistics kept), qemu-riscv64 and natively. Each test runs an untimed warm-up round, then doubling rounds until the target time has passed, timed inside the program. The io_uring test drives the rings by hand: io_uring_setup, mmap of the SQ/CQ rings and the SQE array, SQEs written and CQEs reaped in shared memory, one io_uring_enter per batch of 256.",
    status: figures.length === 0 ? "failed" : notes.some((n) => /failed|skipped/.test(n)) ? "partial" : "ok",
    notes,
    figures,
    tables,
    charts:
      groups.length > 0
        ? [
            {
              file: "bench-syscalls.svg",
              title: "syscalls: ns per call (getpid) or per byte written (lower is better)",
              unit: "nanoseconds per operation",
              log: true,
              groups,
              caption:
                parts.length > 0 ? `${parts.join("; ")} (log scale).` : "Cost per operation (log scale).",
            },
          ]
        : [],
    durationMs: 0,
    raw,
  };
}
