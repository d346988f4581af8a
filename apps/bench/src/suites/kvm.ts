/**
 * kvm: hardware-assisted virtualization through /dev/kvm (`visor run --accel kvm`).
 *
 * 1. The exit round trip: one guest port write (`out dx, al`) against one MMIO write
 *    (`mov [mem], al` past the end of RAM), each a real KVM exit to user space and back,
 *    from a C VMM (fixtures/src/kvm-exits.c, compiled with the host's gcc now) and from
 *    TypeScript (runners/kvm-exits.ts): the same tiny guest and counts, the TS loop on one
 *    thread, and the worker-thread handoff visor's x86 machine uses for every device access.
 * 2. Boot to power-off of the bundled x86-64 guest (guests/x86_64) under visor and under
 *    qemu-system-x86_64 -accel kvm (microvm), same kernel, initrd and command line.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { kvmStatus } from "@visor/kvm";
import { kvmIsPvm } from "@visor/kvm/node";
import {
  alternate,
  BENCH_ROOT,
  type Competitor,
  type Context,
  nativeBinary,
  paths,
  REPO_ROOT,
  runNode,
} from "../context.ts";
import { barOf, makeFigure, ratio } from "../figures.ts";
import { check, run, which } from "../proc.ts";
import { fmt } from "../stats.ts";
import type { ChartSpec, Figure, SuiteResult, Table } from "../types.ts";

const RUNNER = join(BENCH_ROOT, "src/runners/kvm-exits.ts");
const KERNEL = join(REPO_ROOT, "guests/x86_64/bzImage");
const INITRD = join(REPO_ROOT, "guests/x86_64/initramfs.cpio.gz");

function nsPerExit(text: string): number {
  const m = /kvm-exits: kind=\S+ (?:mode=\S+ )?exits=(\d+) ns=(\d+)/.exec(text);
  if (!m) throw new Error(`no kvm-exits line in: ${text.slice(0, 200)}`);
  return Number(m[2]) / Number(m[1]);
}

export async function kvmSuite(ctx: Context): Promise<SuiteResult> {
  const t0 = performance.now();
  const title = "kvm: KVM exits and x86-64 boot against QEMU-KVM";
  const about =
    "The round trip of one KVM exit for a port write and for an MMIO write, from a C VMM, from TypeScript on one thread (the TS loop), and through visor's worker-thread handoff (vCPU thread to the device thread and back); then boot to power-off of the bundled x86-64 Linux guest under `visor run --accel kvm` and `qemu-system-x86_64 -accel kvm -M microvm`.";
  const notes: string[] = [];
  const figures: Figure[] = [];
  const tables: Table[] = [];
  const charts: ChartSpec[] = [];
  const status = kvmStatus();
  if (!status.ok) {
    return {
      name: "kvm",
      title,
      about,
      status: "skipped",
      notes: [status.reason],
      figures,
      tables,
      charts,
      durationMs: 0,
    };
  }
  if (kvmIsPvm()) {
    notes.push(
      "This host's /dev/kvm is kvm-pvm (/sys/module/kvm_pvm exists): a software hypervisor for nested clouds, not VT-x/AMD-V. Guest code that is not built for PVM runs through KVM's instruction emulator, so every figure here is far above what the same code costs on hardware virtualization; the boot below may not finish at all.",
    );
  }
  const reps = ctx.reps ?? (ctx.quick ? 3 : 5);
  const n = ctx.quick ? 5_000 : 20_000;

  // 1. exits
  const cWhy = ctx.tools.gcc === undefined ? "gcc is not installed" : undefined;
  const comps: Competitor<number>[] = [];
  for (const kind of ["pio", "mmio"] as const) {
    comps.push({
      name: `C ${kind}`,
      ...(cWhy !== undefined ? { unavailable: cWhy } : {}),
      run: async () =>
        nsPerExit(
          check(
            await run(await nativeBinary(ctx, "kvm-exits"), [kind, String(n)], { timeoutMs: 300_000 }),
            "kvm-exits",
          ).stdout,
        ),
    });
    for (const mode of ["sync", "thread"] as const) {
      comps.push({
        name: `TS ${mode} ${kind}`,
        run: async () =>
          nsPerExit(
            check(
              await runNode(ctx, RUNNER, [mode, kind, String(n)], 300_000),
              `kvm-exits.ts ${mode} ${kind}`,
            ).stdout,
          ),
      });
    }
  }
  const res = await alternate(ctx, "kvm exits", reps, comps, (x) => `${fmt(x)} ns/exit`);
  const fig = new Map<string, Figure>();
  for (const c of comps) {
    if (c.unavailable !== undefined) {
      notes.push(`${c.name} skipped: ${c.unavailable}.`);
      continue;
    }
    const o = res.get(c.name)!;
    for (const e of new Set(o.errors)) notes.push(`${c.name} failed: ${e}`);
    if (o.samples.length === 0) continue;
    const f = makeFigure(
      `kvm/exit/${c.name.replace(/ /g, "-")}/ns`,
      `${c.name} exit round trip`,
      "ns per exit",
      "lower",
      o.samples,
    );
    fig.set(c.name, f);
    figures.push(f);
  }
  const cell = (k: string) => (fig.get(k) ? fmt(fig.get(k)!.median) : "-");
  tables.push({
    caption: `ns per exit round trip: median of ${reps} alternating runs of ${n} exits each (the guest's first entry untimed).`,
    head: ["VMM", "port write (out dx, al)", "MMIO write (mov [mem], al)", "MMIO / port"],
    rows: [
      ["C (ioctl loop)", "C pio", "C mmio"],
      ["TypeScript, one thread (TS loop)", "TS sync pio", "TS sync mmio"],
      ["TypeScript, vCPU thread + handoff (visor --accel kvm)", "TS thread pio", "TS thread mmio"],
    ].map(([label, p, m]) => [
      label!,
      cell(p!),
      cell(m!),
      fig.get(p!) && fig.get(m!) ? ratio(fig.get(m!)!.median, fig.get(p!)!.median) : "-",
    ]),
  });
  const groups = (["pio", "mmio"] as const)
    .map((k) => ({
      label: k === "pio" ? "port write" : "MMIO write",
      bars: [`C ${k}`, `TS sync ${k}`, `TS thread ${k}`]
        .filter((c) => fig.has(c))
        .map((c) => barOf(c.replace(` ${k}`, ""), fig.get(c)!)),
    }))
    .filter((g) => g.bars.length > 0);
  const cp = fig.get("C pio");
  const tp = fig.get("TS sync pio");
  const hp = fig.get("TS thread pio");
  if (groups.length > 0) {
    charts.push({
      file: "bench-kvm-exits.svg",
      title: "KVM exit round trip",
      unit: "ns per exit",
      groups,
      caption:
        cp && tp && hp
          ? `A port-write exit costs ${fmt(cp.median)} ns from C, ${fmt(tp.median)} ns from the TypeScript loop (${ratio(tp.median, cp.median)}) and ${fmt(hp.median)} ns through the worker-thread handoff (${ratio(hp.median, cp.median)}).`
          : "Exit round trips of the VMMs that ran.",
    });
  }

  // 2. boot
  const haveGuest = existsSync(KERNEL) && existsSync(INITRD);
  const qemu = which("qemu-system-x86_64");
  const bootMs = ctx.quick ? 60_000 : 180_000;
  const append = "console=ttyS0 quiet visor.run=true";
  if (!haveGuest)
    notes.push("boot skipped: no bundled x86-64 guest (guests/x86_64/bzImage and initramfs.cpio.gz).");
  else {
    const boot: Competitor<number>[] = [
      {
        name: "visor --accel kvm",
        run: async () => {
          const r = await runNode(
            ctx,
            paths.visorMain,
            ["run", "--accel", "kvm", "--kernel", KERNEL, "--initrd", INITRD, "--append", append],
            bootMs,
          );
          if (r.timedOut) throw new Error(`did not power off within ${bootMs / 1000} s`);
          check(r, "visor run --accel kvm");
          return r.wallMs;
        },
      },
      {
        name: "qemu-system-x86_64 -accel kvm",
        ...(qemu === undefined ? { unavailable: "qemu-system-x86_64 is not installed" } : {}),
        run: async () => {
          const r = await run(
            qemu!,
            [
              "-accel",
              "kvm",
              "-M",
              "microvm",
              "-m",
              "256M",
              "-smp",
              "1",
              "-nographic",
              "-nodefaults",
              "-serial",
              "stdio",
              "-no-reboot",
              "-kernel",
              KERNEL,
              "-initrd",
              INITRD,
              "-append",
              `${append} reboot=k panic=-1`,
            ],
            { timeoutMs: bootMs },
          );
          if (r.timedOut) throw new Error(`did not power off within ${bootMs / 1000} s`);
          check(r, "qemu-system-x86_64");
          return r.wallMs;
        },
      },
    ];
    const br = await alternate(ctx, "kvm boot", ctx.quick ? 1 : 3, boot, (ms) => `${fmt(ms)} ms`);
    const rows: string[][] = [];
    for (const c of boot) {
      if (c.unavailable !== undefined) {
        notes.push(`${c.name} skipped: ${c.unavailable}.`);
        continue;
      }
      const o = br.get(c.name)!;
      for (const e of new Set(o.errors)) notes.push(`boot, ${c.name}: ${e}`);
      if (o.samples.length === 0) {
        rows.push([c.name, "-", o.errors[0] ?? ""]);
        continue;
      }
      const f = makeFigure(
        `kvm/boot/${c.name.replace(/[ -]+/g, "-")}/ms`,
        `${c.name} boot to power-off`,
        "ms",
        "lower",
        o.samples,
      );
      figures.push(f);
      rows.push([c.name, fmt(f.median), ""]);
    }
    tables.push({
      caption: `Boot to power-off (ms, wall clock from spawn), command line "${append}".`,
      head: ["VMM", "ms", "note"],
      rows,
    });
  }

  const ok = figures.length > 0;
  return {
    name: "kvm",
    title,
    about,
    status: ok
      ? notes.some((x) => x.includes("failed") || x.includes("did not"))
        ? "partial"
        : "ok"
      : "failed",
    notes,
    figures,
    tables,
    charts,
    durationMs: performance.now() - t0,
  };
}
