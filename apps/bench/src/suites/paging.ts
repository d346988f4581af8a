/**
 * paging: shadow vs nested page tables on a page-table-heavy guest workload (a fork/exec
 * loop) and a TLB-miss-heavy one (random reads over a large array), inside the bundled
 * Linux guest. The workloads are fixtures/src/paging.c, added to the bundled initramfs as
 * a second cpio archive (/bench/paging).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  alternate,
  type Competitor,
  type Context,
  fixture,
  paths,
  qemuVirtArgs,
  runNode,
  tagged,
  uncompressedKernel,
} from "../context.ts";
import { cpioNewc } from "../cpio.ts";
import { barOf, makeFigure, ratio } from "../figures.ts";
import { check, run } from "../proc.ts";
import type { Counters } from "../runners/vm.ts";
import { fmt } from "../stats.ts";
import type { ChartSpec, Figure, SuiteResult, Table } from "../types.ts";

const WORKLOADS = ["forkexec", "tlb"] as const;
type Workload = (typeof WORKLOADS)[number];

export interface Mark {
  line: string;
  counters: Counters;
}

interface WorkloadSample {
  /** guest CLOCK_MONOTONIC, ns */
  ns: number;
  ops: number;
  /** host-side counter differences over the workload (visor only) */
  delta?: Record<string, number>;
}

type Sample = Partial<Record<Workload, WorkloadSample>>;

/** The bundled initramfs followed by a gzipped newc archive holding /bench/paging. */
function benchInitrd(ctx: Context): string {
  const out = join(ctx.workDir, "initramfs-bench.cpio.gz");
  if (existsSync(out)) return out;
  const base = readFileSync(paths.initramfs);
  const extra = gzipSync(
    cpioNewc([
      { name: "bench", mode: 0o040755 },
      { name: "bench/paging", mode: 0o100755, data: readFileSync(fixture("paging")) },
    ]),
  );
  // Archives after the first start on a 4-byte boundary (zero padding is skipped).
  const pad = Buffer.alloc((4 - (base.length % 4)) % 4);
  writeFileSync(out, Buffer.concat([base, pad, extra]));
  return out;
}

export function parseEnds(text: string): Sample {
  const s: Sample = {};
  for (const m of text.matchAll(/@@bench end (\w+) ns=(\d+) ops=(\d+)/g)) {
    const w = m[1] as Workload;
    if (WORKLOADS.includes(w)) s[w] = { ns: Number(m[2]), ops: Number(m[3]) };
  }
  return s;
}

export function deltas(marks: Mark[], w: Workload): Record<string, number> | undefined {
  const b = marks.find((m) => m.line === `@@bench begin ${w}`);
  const e = marks.find((m) => m.line.startsWith(`@@bench end ${w} `));
  if (!b || !e) return undefined;
  const d: Record<string, number> = {};
  for (const k of Object.keys(e.counters) as (keyof Counters)[]) d[k] = e.counters[k] - b.counters[k];
  return d;
}

const COUNTERS: { key: string; label: string }[] = [
  { key: "tlbMisses", label: "TLB misses" },
  { key: "walks", label: "page walks" },
  { key: "walkRefs", label: "PTE refs" },
  { key: "gWalks", label: "G-stage walks" },
  { key: "gRefs", label: "G-stage PTE refs" },
  { key: "shadowFills", label: "shadow fills" },
  { key: "shadowSyncs", label: "shadow syncs" },
  { key: "shadowFlushes", label: "shadow full flushes" },
  { key: "shadowInjectedFaults", label: "page faults injected" },
  { key: "traps", label: "traps" },
  { key: "instret", label: "instructions" },
];

/** "shadow is 1.8x faster", or "within 10% of each other" when the difference is small. */
function compareModes(nested: number, shadow: number): string {
  if (nested >= shadow * 1.1) return `shadow is ${ratio(nested, shadow)} faster`;
  if (shadow >= nested * 1.1) return `shadow is ${ratio(shadow, nested)} slower`;
  return "the two are within 10% of each other";
}

export async function pagingSuite(ctx: Context): Promise<SuiteResult> {
  const reps = ctx.reps ?? (ctx.quick ? 2 : 3);
  const forks = ctx.quick ? 10 : 50;
  const mib = ctx.quick ? 16 : 64;
  const reads = ctx.quick ? 50_000 : 300_000;
  const initrd = benchInitrd(ctx);
  const cmd = `/bench/paging+all+${forks}+${mib}+${reads}`;
  const append = `console=ttyS0 quiet visor.run=${cmd}`;
  const notes: string[] = [];
  const qemuWhy =
    ctx.tools.qemuSystem === undefined
      ? "qemu-system-riscv64 is not installed"
      : ctx.tools.fwJump === undefined
        ? "OpenSBI fw_jump.elf is not installed"
        : undefined;
  const visor = (virt: string): Competitor<Sample> => ({
    name: `visor ${virt}`,
    run: async () => {
      const opts = {
        kernel: paths.kernelGz,
        initrd: [initrd],
        virt,
        append,
        memoryMiB: 256,
        timeoutMs: 600_000,
      };
      const r = check(await runNode(ctx, paths.vmRunner, [JSON.stringify(opts)], 700_000), `visor ${virt}`);
      const o = tagged<{ console: string; error?: string; marks: Mark[] }>(r.stdout, "@@visor-vm");
      if (o.error !== undefined) throw new Error(`guest error: ${o.error}`);
      const s = parseEnds(o.console);
      for (const w of WORKLOADS) {
        const d = deltas(o.marks, w);
        if (s[w] !== undefined && d !== undefined) s[w].delta = d;
      }
      if (s.forkexec === undefined || s.tlb === undefined)
        throw new Error("the guest did not finish both workloads");
      return s;
    },
  });
  const competitors: Competitor<Sample>[] = [
    visor("nested"),
    visor("shadow"),
    ...(ctx.quick ? [] : [visor("off")]),
    {
      name: "qemu-system-riscv64",
      ...(qemuWhy !== undefined ? { unavailable: qemuWhy } : {}),
      run: async () => {
        const r = check(
          await run(
            ctx.tools.qemuSystem!,
            qemuVirtArgs(ctx, { memory: "256M", kernel: uncompressedKernel(ctx), initrd, append }),
            { timeoutMs: 300_000 },
          ),
          "qemu-system-riscv64",
        );
        const s = parseEnds(r.stdout);
        if (s.forkexec === undefined || s.tlb === undefined)
          throw new Error("the guest did not finish both workloads");
        return s;
      },
    },
  ];
  const res = await alternate(
    ctx,
    "paging",
    reps,
    competitors,
    (s) =>
      `fork+exec ${fmt((s.forkexec?.ns ?? 0) / (s.forkexec?.ops ?? 1) / 1e6)} ms, tlb read ${fmt((s.tlb?.ns ?? 0) / (s.tlb?.ops ?? 1))} ns`,
  );

  const figures: Figure[] = [];
  const time = new Map<string, Map<Workload, Figure>>();
  const counterRows: string[][] = [];
  const refGroups: ChartSpec["groups"] = [];
  for (const c of competitors) {
    if (c.unavailable !== undefined) {
      notes.push(`${c.name} skipped: ${c.unavailable} (not faked).`);
      continue;
    }
    const o = res.get(c.name)!;
    for (const e of [...new Set(o.errors)]) notes.push(`${c.name} failed: ${e}`);
    if (o.samples.length === 0) continue;
    const key = c.name.replace(/\s+/g, "-");
    const m = new Map<Workload, Figure>();
    for (const w of WORKLOADS) {
      const xs = o.samples.map((s) => s[w]!);
      const f =
        w === "forkexec"
          ? makeFigure(
              `paging/forkexec/${key}/ms-per-op`,
              `fork+exec+wait, ${c.name}`,
              "ms per fork+exec",
              "lower",
              xs.map((x) => x.ns / x.ops / 1e6),
            )
          : makeFigure(
              `paging/tlb/${key}/ns-per-read`,
              `random read, ${c.name}`,
              "ns per read",
              "lower",
              xs.map((x) => x.ns / x.ops),
            );
      figures.push(f);
      m.set(w, f);
      const withDelta = xs.filter((x) => x.delta !== undefined);
      if (withDelta.length === 0) continue;
      const row = [w, c.name];
      for (const ct of COUNTERS) {
        const per = withDelta.map((x) => x.delta![ct.key]! / x.ops);
        const cf = makeFigure(
          `paging/${w}/${key}/${ct.key}-per-op`,
          `${ct.label} per op, ${w}, ${c.name}`,
          "per op",
          "lower",
          per,
        );
        if (ct.key !== "instret" && ct.key !== "traps") figures.push(cf);
        row.push(cf.median === 0 ? "0" : fmt(cf.median));
      }
      counterRows.push(row);
      const refs = withDelta.map((x) => (x.delta!.walkRefs! + x.delta!.gRefs!) / x.ops);
      const rf = makeFigure(
        `paging/${w}/${key}/pte-refs-per-op`,
        `all PTE refs per op, ${w}, ${c.name}`,
        "per op",
        "lower",
        refs,
      );
      figures.push(rf);
      const label = w === "forkexec" ? "fork+exec" : "tlb read";
      let g = refGroups.find((x) => x.label === label);
      if (g === undefined) refGroups.push((g = { label, bars: [] }));
      g.bars.push(barOf(c.name, rf));
    }
    time.set(c.name, m);
  }

  const runners = [...time.keys()];
  const timeTable: Table = {
    caption: `Guest-clock time per operation, median of ${reps} alternating boots (${forks} fork+exec+wait of /bin/true; ${reads} random 8-byte reads over ${mib} MiB).`,
    head: ["workload", ...runners],
    rows: WORKLOADS.map((w) => [
      w === "forkexec" ? "fork+exec+wait (ms)" : "random read (ns)",
      ...runners.map((r) => {
        const f = time.get(r)!.get(w)!;
        return `${fmt(f.median)} (±${(f.spread * 50).toFixed(0)}%)`;
      }),
    ]),
  };
  const counterTable: Table = {
    caption:
      "Hypervisor counters per operation over the workload only (snapshots when the guest's begin/end lines reach the UART; medians). Page walks and PTE refs are the hart's walks of the table satp/vsatp points at: the guest's own tables under nested and off, the shadow tables under shadow; G-stage walks are the second stage under nested. Traps count every trap the hart took, the guest kernel's own included.",
    head: ["workload", "runner", ...COUNTERS.map((c) => c.label)],
    rows: counterRows,
  };
  const charts: ChartSpec[] = [];
  for (const w of WORKLOADS) {
    const bars = runners.map((r) => barOf(r, time.get(r)!.get(w)!));
    const n = time.get("visor nested")?.get(w);
    const s = time.get("visor shadow")?.get(w);
    const what = w === "forkexec" ? "a fork+exec+wait" : "a random read";
    charts.push({
      file: `bench-paging-${w}.svg`,
      title:
        w === "forkexec"
          ? "paging: fork + exec + wait of /bin/true (lower is better)"
          : `paging: random 8-byte reads over ${mib} MiB (lower is better)`,
      unit: w === "forkexec" ? "milliseconds per fork+exec+wait" : "nanoseconds per read",
      log: false,
      groups: [{ label: w === "forkexec" ? "fork+exec" : "random read", bars }],
      caption:
        n && s
          ? `${what[0]!.toUpperCase()}${what.slice(1)} takes ${fmt(n.median)} ${w === "forkexec" ? "ms" : "ns"} with nested paging and ${fmt(s.median)} with shadow paging: ${compareModes(n.median, s.median)}.`
          : `Time for ${what} on each runner.`,
    });
  }
  if (refGroups.length > 0)
    charts.push({
      file: "bench-paging-pte-refs.svg",
      title: "paging: page-table entries read per operation (guest + G-stage walks)",
      unit: "PTE references per operation",
      log: true,
      groups: refGroups,
      caption:
        "Page-table memory references per operation, counting both the guest's walks and, under nested paging, the G-stage walks each guest walk needs; shadow paging replaces those with fills and syncs (table above).",
    });
  return {
    name: "paging",
    title: "paging: shadow vs nested page tables",
    about: `Inside the bundled Linux guest, /bench/paging (apps/bench/fixtures/src/paging.c, added to the initramfs as a second archive) runs a fork/exec loop (page-table-heavy: address spaces built and torn down) and random 8-byte reads over a ${mib} MiB array touched beforehand (TLB-miss-heavy), each timed by the guest's CLOCK_MONOTONIC (a system call, not the vDSO). visor boots it in a child process through @visor/hypervisor's Machine; the hypervisor's counters (hart TLB misses and page walks, G-stage walks, shadow fills and syncs) are read when the guest's begin and end lines reach the UART, so they cover the workload alone. --virt off (full runs only) is the reference with one stage of translation and no hypervisor; QEMU boots the same kernel and initramfs.`,
    status: figures.length === 0 ? "failed" : notes.some((n) => /failed|skipped/.test(n)) ? "partial" : "ok",
    notes,
    figures,
    tables: [timeTable, counterTable],
    charts,
    durationMs: 0,
    raw: Object.fromEntries(res),
  };
}
