/**
 * exits: the cost of one exit of each kind, kvm-unit-tests vmexit style. The guest is
 * fixtures/src/baremetal/exits.c, a flat Linux-style Image that times loops of one access
 * each with rdtime and prints the results on the UART.
 */
import {
  alternate,
  type Competitor,
  type Context,
  fixture,
  paths,
  qemuVirtArgs,
  runNode,
  tagged,
} from "../context.ts";
import { barOf, makeFigure, ratio } from "../figures.ts";
import { check, run } from "../proc.ts";
import { fmt } from "../stats.ts";
import type { ChartSpec, Figure, SuiteResult } from "../types.ts";

const TESTS = [
  { name: "ram-load", what: "a plain RAM load (ld), for reference: never an exit" },
  { name: "mmio-read", what: "1-byte MMIO read of the UART scratch register" },
  { name: "mmio-write", what: "1-byte MMIO write of the UART scratch register" },
  { name: "sbi", what: "SBI hypercall: ecall BASE get_spec_version" },
  { name: "pio", what: "1-byte port read (port 0x80) through the PCI I/O window at 0x03000000" },
  { name: "virtio-notify", what: "32-bit QueueNotify write to an idle virtio-rng queue" },
] as const;

interface Sample {
  hz: number;
  /** ns per loop iteration, raw */
  perIter: Record<string, number>;
  /** ns per access: perIter minus the empty loop */
  net: Record<string, number>;
  skipped: Record<string, string>;
  pioWired?: boolean;
}

export function parseExitsConsole(text: string): Sample {
  const s: Sample = { hz: 0, perIter: {}, net: {}, skipped: {} };
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith("exits: ")) continue;
    const kv: Record<string, string> = {};
    for (const p of line.slice(7).trim().split(/\s+/)) {
      const eq = p.indexOf("=");
      if (eq > 0) kv[p.slice(0, eq)] = p.slice(eq + 1);
    }
    if (kv.timebase !== undefined) s.hz = Number(kv.timebase);
    if (kv.test !== undefined) s.perIter[kv.test] = Number(kv.ticks) / Number(kv.iters);
    if (kv.skip !== undefined) s.skipped[kv.skip] = (kv.reason ?? "").replace(/-/g, " ");
  }
  if (!text.includes("exits: done"))
    throw new Error("the exits guest did not finish (no 'exits: done' line)");
  if (!(s.hz > 0)) throw new Error("the exits guest printed no timebase");
  for (const k of Object.keys(s.perIter)) s.perIter[k] = (s.perIter[k]! * 1e9) / s.hz;
  // The empty loop runs first and last; the faster of the two is the loop's own cost.
  const empty = Math.min(s.perIter.empty ?? 0, s.perIter["empty-again"] ?? s.perIter.empty ?? 0);
  for (const [k, v] of Object.entries(s.perIter)) if (!k.startsWith("empty")) s.net[k] = v - empty;
  s.net.loop = empty;
  return s;
}

export async function exitsSuite(ctx: Context): Promise<SuiteResult> {
  const reps = ctx.reps ?? (ctx.quick ? 3 : 5);
  const targetMs = ctx.quick ? 60 : 250;
  const image = fixture("exits.Image");
  const notes: string[] = [];
  const qemuWhy =
    ctx.tools.qemuSystem === undefined
      ? "qemu-system-riscv64 is not installed"
      : ctx.tools.fwJump === undefined
        ? "OpenSBI fw_jump.elf is not installed"
        : undefined;
  const visor = (name: string, virt: string, path: "fast" | "slow"): Competitor<Sample> => ({
    name,
    run: async () => {
      const opts = {
        kernel: image,
        virt,
        append: `target=${targetMs}`,
        benchRng: path,
        pioProbe: true,
        timeoutMs: 240_000,
      };
      const r = check(await runNode(ctx, paths.vmRunner, [JSON.stringify(opts)], 300_000), name);
      const o = tagged<{ console: string; error?: string; pioWired: boolean }>(r.stdout, "@@visor-vm");
      if (o.error !== undefined) throw new Error(`guest error: ${o.error}`);
      return { ...parseExitsConsole(o.console), pioWired: o.pioWired };
    },
  });
  const competitors: Competitor<Sample>[] = [
    visor("visor off", "off", "fast"),
    visor("visor nested", "nested", "fast"),
    visor("visor shadow", "shadow", "fast"),
    visor("visor nested, no fast path", "nested", "slow"),
    {
      name: "qemu-system-riscv64",
      ...(qemuWhy !== undefined ? { unavailable: qemuWhy } : {}),
      run: async () => {
        const r = check(
          await run(
            ctx.tools.qemuSystem!,
            qemuVirtArgs(ctx, {
              memory: "256M",
              kernel: image,
              append: `target=${targetMs} pio=0x3000080`,
              extra: ["-device", "virtio-rng-device", "-global", "virtio-mmio.force-legacy=false"],
            }),
            { timeoutMs: 120_000 },
          ),
          "qemu-system-riscv64",
        );
        return parseExitsConsole(r.stdout);
      },
    },
  ];
  const res = await alternate(ctx, "exits", reps, competitors, (s) =>
    Object.entries(s.net)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(", "),
  );

  const figures: Figure[] = [];
  const byRunner = new Map<string, Map<string, Figure>>();
  for (const c of competitors) {
    if (c.unavailable !== undefined) {
      notes.push(`${c.name} skipped: ${c.unavailable} (not faked).`);
      continue;
    }
    const o = res.get(c.name)!;
    for (const e of [...new Set(o.errors)]) notes.push(`${c.name} failed: ${e}`);
    if (o.samples.length === 0) continue;
    const m = new Map<string, Figure>();
    const key = c.name.replace(/[ ,]+/g, "-");
    for (const t of [...TESTS.map((x) => x.name), "loop"]) {
      const xs = o.samples.map((s) => s.net[t]).filter((x): x is number => x !== undefined);
      if (xs.length === 0) continue;
      const f = makeFigure(`exits/${t}/${key}/ns`, `${t}, ${c.name}`, "ns per access", "lower", xs);
      m.set(t, f);
      figures.push(f);
    }
    byRunner.set(c.name, m);
    const sk = o.samples[0]!.skipped;
    for (const [t, why] of Object.entries(sk)) {
      if (t === "pio" && c.name.startsWith("visor") && o.samples[0]!.pioWired === false) continue;
      notes.push(`${c.name}: ${t} skipped by the guest (${why}).`);
    }
  }
  const visorPio = [...res].filter(([n]) => n.startsWith("visor")).flatMap(([, o]) => o.samples);
  if (visorPio.length > 0 && visorPio.every((s) => s.pioWired === false))
    notes.push(
      `pio skipped on visor: the virt machine maps nothing at the PCI I/O window (0x03000000) yet, so there is no port-I/O path to time${byRunner.get("qemu-system-riscv64")?.has("pio") ? "; QEMU's figure is shown alone" : ""}.`,
    );
  notes.push(
    "With --virt off the kernel runs in S-mode on the hart and the host is M-mode: MMIO goes straight to the bus (no exit), and an SBI ecall traps to the built-in SBI. QEMU (TCG) has no VM exits at all: its figures are the cost of the same instruction in a translator (the softmmu slow path into a device model, or a trap into OpenSBI), for scale.",
  );

  const runners = [...byRunner.keys()];
  const rows: string[][] = [];
  for (const t of [
    { name: "loop", what: "the empty loop itself (addi + bnez), subtracted from the others" },
    ...TESTS,
  ]) {
    const row = [t.name];
    for (const r of runners) {
      const f = byRunner.get(r)!.get(t.name);
      row.push(f ? fmt(f.median) : "-");
    }
    row.push(t.what);
    rows.push(row);
  }
  const groups: ChartSpec["groups"] = [];
  for (const t of TESTS) {
    const bars = runners
      .filter((r) => !r.includes("no fast path") || t.name === "virtio-notify")
      .map((r) => [r, byRunner.get(r)!.get(t.name)] as const)
      .filter((x): x is readonly [string, Figure] => x[1] !== undefined && x[1].median > 0)
      .map(([r, f]) => barOf(r, { ...f, min: Math.max(f.min, f.median / 1000) }));
    if (bars.length > 0) groups.push({ label: t.name, bars });
  }
  const nf = byRunner.get("visor nested")?.get("virtio-notify");
  const ns = byRunner.get("visor nested, no fast path")?.get("virtio-notify");
  const nr = byRunner.get("visor nested")?.get("mmio-read");
  const q = byRunner.get("qemu-system-riscv64")?.get("mmio-read");
  const parts: string[] = [];
  if (nr)
    parts.push(
      `An MMIO read exit costs ${fmt(nr.median)} ns under visor --virt nested${q ? ` (${ratio(nr.median, q.median)} QEMU's ${fmt(q.median)} ns)` : ""}`,
    );
  if (nf && ns)
    parts.push(
      `${parts.length > 0 ? "the" : "The"} ioeventfd-style fast path takes a virtio notify from ${fmt(ns.median)} to ${fmt(nf.median)} ns`,
    );
  const tables = [
    {
      caption: `ns per access: the fastest of five timed runs of each loop (${targetMs / 5} ms each, after a warm-up pass) minus the fastest empty loop; median of ${reps} alternating boots.`,
      head: ["access", ...runners, "what"],
      rows,
    },
  ];
  if (nf && ns)
    tables.push({
      caption: "virtio notify with and without the ioeventfd-style fast path (visor --virt nested).",
      head: ["path", "ns per notify (median)", "min..max"],
      rows: [
        ["write listener on QueueNotify (fast path)", fmt(nf.median), `${fmt(nf.min)}..${fmt(nf.max)}`],
        ["transport register decode (no listener)", fmt(ns.median), `${fmt(ns.min)}..${fmt(ns.max)}`],
      ],
    });
  return {
    name: "exits",
    title: "exits: cost of one exit of each kind",
    about:
      "A bare-metal guest (apps/bench/fixtures/src/baremetal/exits.c) booted the way a Linux kernel is: a flat Image with the RISC-V Linux header, entered at 0x80200000 in S-mode (VS-mode under --virt nested|shadow) with the device tree in a1. It times, with rdtime, loops of one access each: an empty loop, a RAM load, an MMIO read and write (UART scratch register), an SBI call, a port read through the PCI I/O window, and a virtio-rng QueueNotify, and reports, per loop, the fastest of five runs after a warm-up pass (the run least disturbed by other work on the host); the bench subtracts the empty loop. visor runs it in a child process through @visor/hypervisor's Machine with a virtio-rng transport installed by the bench in slot 0 with the QueueNotify write listener (as Machine does) or without it. QEMU runs the same Image on -M virt with OpenSBI fw_jump and a virtio-rng-device.",
    status: figures.length === 0 ? "failed" : notes.some((n) => /failed|skipped/.test(n)) ? "partial" : "ok",
    notes,
    figures,
    tables,
    charts:
      groups.length > 0
        ? [
            {
              file: "bench-exits.svg",
              title: "exits: cost of one access, empty loop subtracted (lower is better)",
              unit: "nanoseconds per access",
              log: true,
              groups,
              caption:
                parts.length > 0
                  ? `${parts.join("; ")} (log scale).`
                  : "Cost of one access of each kind (log scale).",
            },
          ]
        : [],
    durationMs: 0,
    raw: Object.fromEntries(res),
  };
}
