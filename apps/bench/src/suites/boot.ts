/**
 * boot: start to power-off of the bundled guest (guests/riscv64) running one command,
 * `visor run` in each --virt mode, with the interpreter alone and with the translator, vs
 * qemu-system-riscv64 on the same kernel and initramfs; with each run's peak resident set.
 */
import {
  alternate,
  type Competitor,
  type Context,
  qemuVirtArgs,
  REPO_ROOT,
  uncompressedInitramfs,
  uncompressedKernel,
} from "../context.ts";
import { barOf, makeFigure, ratio } from "../figures.ts";
import { check, type ProcResult, run } from "../proc.ts";
import { fmt } from "../stats.ts";
import type { ChartSpec, Figure, SuiteResult } from "../types.ts";
import { INTERPRETER, TRANSLATOR, VISOR_MODES, type VisorMode, visorRunArgv } from "../visor.ts";

const APPEND = "console=ttyS0 quiet visor.run=uname+-a";
const MEMORY = "256M";
const VIRT_MODES = ["off", "nested", "shadow"] as const;
const QEMU = "qemu-system-riscv64";

interface Sample {
  /** process start to exit */
  wallS: number;
  /** the guest's own clock at "reboot: Power down" */
  guestS: number | undefined;
  /** peak resident set of the process, MiB (VmHWM), when /proc could be read */
  peakRssMiB: number | undefined;
}

export function sampleOf(r: ProcResult, what: string): Sample {
  check(r, what);
  const out = r.stdout + r.stderr;
  if (!/Linux \S+ 6\.1\.\d+ .*riscv64 GNU\/Linux/.test(out))
    throw new Error(`${what}: the guest did not print its uname -a line`);
  const m = /\[\s*([\d.]+)\] reboot: Power down/.exec(out);
  return {
    wallS: r.wallMs / 1000,
    guestS: m ? Number(m[1]) : undefined,
    peakRssMiB: r.peakRssKiB !== undefined ? r.peakRssKiB / 1024 : undefined,
  };
}

/** One boot runner: a --virt mode in a translation mode, or the peer. */
export interface BootRunner {
  /** Row label, e.g. "visor --virt off (jit)". */
  name: string;
  /** Figure-id component, e.g. "visor-off-jit" (the interpreter keeps "visor-off"). */
  key: string;
  virt?: (typeof VIRT_MODES)[number];
  mode?: VisorMode;
}

export const BOOT_RUNNERS: readonly BootRunner[] = [
  ...VIRT_MODES.flatMap((virt) =>
    VISOR_MODES.map((mode) => ({
      name: `visor --virt ${virt} ${mode.name.replace(/^visor /, "")}`,
      key: `visor-${virt}${mode.suffix}`,
      virt,
      mode,
    })),
  ),
  { name: QEMU, key: QEMU },
];

/** The argv of one visor boot (`visor run --jit MODE --virt VIRT`). */
export function bootVisorArgv(r: BootRunner): string[] {
  if (r.virt === undefined || r.mode === undefined) throw new Error(`${r.name} is not a visor runner`);
  return visorRunArgv({ jit: r.mode.jit, virt: r.virt, memory: MEMORY, append: APPEND });
}

export interface BootFigures {
  wall: Figure;
  guest?: Figure;
  rss?: Figure;
}

export const BOOT_TABLE_HEAD = [
  "runner",
  "wall s (median)",
  "wall s (min..max)",
  "guest clock s",
  "peak RSS MiB",
  "wall vs qemu-system-riscv64",
  "jit speed-up",
  "jit RSS change",
  "runs",
];

/**
 * The boot table: one row per runner with results, in BOOT_RUNNERS order. The wall ratio
 * is this runner's over QEMU's; the jit columns compare a translator row with the
 * interpreter row of the same --virt mode (speed-up: interpreter wall / jit wall; RSS
 * change: jit peak RSS - interpreter peak RSS).
 */
export function bootRows(figs: ReadonlyMap<string, BootFigures>): string[][] {
  const q = figs.get(QEMU);
  const rows: string[][] = [];
  for (const r of BOOT_RUNNERS) {
    const f = figs.get(r.name);
    if (f === undefined) continue;
    const base =
      r.mode === TRANSLATOR
        ? figs.get(BOOT_RUNNERS.find((x) => x.virt === r.virt && x.mode === INTERPRETER)!.name)
        : undefined;
    const rssDelta =
      base?.rss !== undefined && f.rss !== undefined ? f.rss.median - base.rss.median : undefined;
    rows.push([
      r.name,
      fmt(f.wall.median),
      `${fmt(f.wall.min)}..${fmt(f.wall.max)}`,
      f.guest ? fmt(f.guest.median) : "-",
      f.rss ? fmt(f.rss.median) : "-",
      q && r.name !== QEMU ? ratio(f.wall.median, q.wall.median) : "-",
      base ? ratio(base.wall.median, f.wall.median) : "-",
      rssDelta !== undefined ? `${rssDelta >= 0 ? "+" : ""}${fmt(rssDelta)}` : "-",
      String(f.wall.n),
    ]);
  }
  return rows;
}

export async function bootSuite(ctx: Context): Promise<SuiteResult> {
  const reps = ctx.reps ?? (ctx.quick ? 2 : 5);
  const notes: string[] = [];
  const qemuWhy =
    ctx.tools.qemuSystem === undefined
      ? "qemu-system-riscv64 is not installed"
      : ctx.tools.fwJump === undefined
        ? "OpenSBI fw_jump.elf (Debian package opensbi) is not installed"
        : undefined;
  const competitors: Competitor<Sample>[] = BOOT_RUNNERS.map((r) =>
    r.mode !== undefined
      ? {
          name: r.name,
          run: async () =>
            sampleOf(
              await run(ctx.node, bootVisorArgv(r), { cwd: REPO_ROOT, timeoutMs: 300_000, peakRss: true }),
              `visor run --jit ${r.mode!.jit} --virt ${r.virt}`,
            ),
        }
      : {
          name: r.name,
          ...(qemuWhy !== undefined ? { unavailable: qemuWhy } : {}),
          run: async () => {
            const kernel = uncompressedKernel(ctx);
            const initramfs = uncompressedInitramfs(ctx);
            return sampleOf(
              await run(
                ctx.tools.qemuSystem!,
                qemuVirtArgs(ctx, { memory: MEMORY, kernel, initrd: initramfs, append: APPEND }),
                { timeoutMs: 120_000, peakRss: true },
              ),
              QEMU,
            );
          },
        },
  );
  const res = await alternate(ctx, "boot", reps, competitors, (s) =>
    [
      `${s.wallS.toFixed(2)} s`,
      ...(s.peakRssMiB !== undefined ? [`${s.peakRssMiB.toFixed(0)} MiB peak`] : []),
    ].join(", "),
  );
  const figures: Figure[] = [];
  const figs = new Map<string, BootFigures>();
  const wallBars: ChartSpec["groups"] = [];
  const rssBars: ChartSpec["groups"] = [];
  for (const r of BOOT_RUNNERS) {
    const c = competitors.find((x) => x.name === r.name)!;
    if (c.unavailable !== undefined) {
      notes.push(`${c.name} skipped: ${c.unavailable} (not faked).`);
      continue;
    }
    const o = res.get(c.name)!;
    for (const e of [...new Set(o.errors)]) notes.push(`${c.name} failed: ${e}`);
    if (o.samples.length === 0) continue;
    const w = makeFigure(
      `boot/${r.key}/wall-s`,
      `${c.name}: start to power-off`,
      "s",
      "lower",
      o.samples.map((s) => s.wallS),
    );
    figures.push(w);
    const f: BootFigures = { wall: w };
    const g = o.samples.map((s) => s.guestS).filter((x): x is number => x !== undefined);
    if (g.length > 0) {
      f.guest = makeFigure(
        `boot/${r.key}/guest-clock-s`,
        `${c.name}: guest clock at power-off`,
        "s",
        "lower",
        g,
      );
      figures.push(f.guest);
    }
    const m = o.samples.map((s) => s.peakRssMiB).filter((x): x is number => x !== undefined);
    if (m.length > 0) {
      f.rss = makeFigure(`boot/${r.key}/peak-rss-mib`, `${c.name}: peak resident set`, "MiB", "lower", m);
      figures.push(f.rss);
    }
    figs.set(c.name, f);
  }
  // Charts: one group per --virt mode (bars: interpreter, translator) and one for QEMU.
  for (const virt of [...VIRT_MODES, undefined]) {
    const group = BOOT_RUNNERS.filter((r) => r.virt === virt && figs.has(r.name));
    if (group.length === 0) continue;
    const label = virt !== undefined ? `visor --virt ${virt}` : QEMU;
    const series = (r: BootRunner) => r.mode?.name ?? QEMU;
    wallBars.push({ label, bars: group.map((r) => barOf(series(r), figs.get(r.name)!.wall)) });
    const rb = group.filter((r) => figs.get(r.name)!.rss !== undefined);
    if (rb.length > 0) rssBars.push({ label, bars: rb.map((r) => barOf(series(r), figs.get(r.name)!.rss!)) });
  }
  const rssMissing = [...figs.values()].some((f) => f.rss === undefined);
  if (rssMissing)
    notes.push("Peak RSS could not be read from /proc for some runners (not Linux?): shown as -.");
  const charts: ChartSpec[] = [];
  if (wallBars.length > 0)
    charts.push({
      file: "bench-boot.svg",
      title: "boot: start to power-off (lower is better)",
      unit: "seconds",
      groups: wallBars,
      caption: bootCaption(figs),
    });
  if (rssBars.length > 0)
    charts.push({
      file: "bench-boot-rss.svg",
      title: "boot: peak resident set of the process (lower is better)",
      unit: "MiB (VmHWM)",
      groups: rssBars,
      caption: bootRssCaption(figs),
    });
  return {
    name: "boot",
    title: "boot: start to power-off of the bundled guest",
    about: `The bundled Linux 6.1 + busybox guest boots, runs \`uname -a\` (kernel command line \`${APPEND}\`) and powers off. visor is the real command, \`node --conditions=source apps/vmm/src/main.ts run --jit JIT --virt MODE --memory ${MEMORY}\` with Node's compile cache on from its first file (NODE_COMPILE_CACHE, as \`pnpm -s visor\` starts it), in each --virt mode with \`--jit off\` (the interpreter alone) and \`--jit on\` (hot code translated to WebAssembly), so its time includes Node's start-up, gunzipping Image.gz and, with the translator, translating; firmware is visor's built-in SBI. visor decompresses the gzip initramfs on the host before the guest sees it, so QEMU gets the same plain cpio. QEMU boots the same kernel (uncompressed beforehand, outside the timing: QEMU 7.2 cannot boot Image.gz) and initramfs (likewise uncompressed beforehand) on \`-M virt -m ${MEMORY}\` with OpenSBI fw_jump. Wall time is process start to exit; the guest clock column is the kernel's timestamp on its "reboot: Power down" line. Peak RSS is the process's VmHWM (the kernel's high-water mark of its resident set) from /proc/PID/status, read every 20 ms while it runs, so it covers the boot up to at most 20 ms before the exit; the guest's RAM counts only as far as the guest touched it.`,
    status: figures.length === 0 ? "failed" : notes.length > 0 ? "partial" : "ok",
    notes,
    figures,
    tables: [
      {
        caption: `Median of ${reps} alternating runs. The wall ratio is this runner's time over QEMU's; the jit columns compare each translator row with the interpreter row of its --virt mode (speed-up: interpreter wall time over translator wall time; RSS change in MiB).`,
        head: BOOT_TABLE_HEAD,
        rows: bootRows(figs),
      },
    ],
    charts,
    durationMs: 0,
    raw: Object.fromEntries(res),
  };
}

/** The wall-time chart's sentence: each mode's interpreter -> translator time, and QEMU's. */
export function bootCaption(figs: ReadonlyMap<string, BootFigures>): string {
  const q = figs.get(QEMU)?.wall;
  const parts: string[] = [];
  for (const virt of VIRT_MODES) {
    const i = figs.get(BOOT_RUNNERS.find((r) => r.virt === virt && r.mode === INTERPRETER)!.name)?.wall;
    const j = figs.get(BOOT_RUNNERS.find((r) => r.virt === virt && r.mode === TRANSLATOR)!.name)?.wall;
    if (i && j) parts.push(`--virt ${virt} ${fmt(i.median)} -> ${fmt(j.median)} s`);
    else if (i) parts.push(`--virt ${virt} ${fmt(i.median)} s (interpreter)`);
    else if (j) parts.push(`--virt ${virt} ${fmt(j.median)} s (translator)`);
  }
  const head =
    parts.length > 0
      ? `Start to power-off, visor's interpreter -> translator: ${parts.join(", ")}`
      : "Start to power-off of the bundled guest";
  return `${head}${q ? `; QEMU ${fmt(q.median)} s` : ""}.`;
}

/** The RSS chart's sentence. */
export function bootRssCaption(figs: ReadonlyMap<string, BootFigures>): string {
  const parts: string[] = [];
  for (const r of BOOT_RUNNERS) {
    const f = figs.get(r.name)?.rss;
    if (f) parts.push(`${r.name} ${fmt(f.median)} MiB`);
  }
  return `Peak resident set (VmHWM) of a boot to power-off: ${parts.join(", ")}.`;
}
