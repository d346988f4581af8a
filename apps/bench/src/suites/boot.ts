/**
 * boot: start to power-off of the bundled guest (guests/riscv64) running one command,
 * `visor run` in each --virt mode vs qemu-system-riscv64 on the same kernel and initramfs.
 */
import {
  alternate,
  type Competitor,
  type Context,
  paths,
  qemuVirtArgs,
  uncompressedInitramfs,
  uncompressedKernel,
} from "../context.ts";
import { barOf, makeFigure, ratio } from "../figures.ts";
import { check, type ProcResult, run } from "../proc.ts";
import { fmt } from "../stats.ts";
import type { ChartSpec, Figure, SuiteResult } from "../types.ts";

const APPEND = "console=ttyS0 quiet visor.run=uname+-a";
const MEMORY = "256M";

interface Sample {
  /** process start to exit */
  wallS: number;
  /** the guest's own clock at "reboot: Power down" */
  guestS: number | undefined;
}

function sampleOf(r: ProcResult, what: string): Sample {
  check(r, what);
  const out = r.stdout + r.stderr;
  if (!/Linux \S+ 6\.1\.\d+ .*riscv64 GNU\/Linux/.test(out))
    throw new Error(`${what}: the guest did not print its uname -a line`);
  const m = /\[\s*([\d.]+)\] reboot: Power down/.exec(out);
  return { wallS: r.wallMs / 1000, guestS: m ? Number(m[1]) : undefined };
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
  const visor = (mode: string): Competitor<Sample> => ({
    name: `visor --virt ${mode}`,
    run: async () =>
      sampleOf(
        await run(
          ctx.node,
          [
            "--conditions=source",
            paths.visorMain,
            "run",
            "--virt",
            mode,
            "--memory",
            MEMORY,
            "--append",
            APPEND,
          ],
          { timeoutMs: 300_000 },
        ),
        `visor run --virt ${mode}`,
      ),
  });
  const competitors: Competitor<Sample>[] = [
    visor("off"),
    visor("nested"),
    visor("shadow"),
    {
      name: "qemu-system-riscv64",
      ...(qemuWhy !== undefined ? { unavailable: qemuWhy } : {}),
      run: async () => {
        const kernel = uncompressedKernel(ctx);
        const initramfs = uncompressedInitramfs(ctx);
        return sampleOf(
          await run(
            ctx.tools.qemuSystem!,
            qemuVirtArgs(ctx, { memory: MEMORY, kernel, initrd: initramfs, append: APPEND }),
            { timeoutMs: 120_000 },
          ),
          "qemu-system-riscv64",
        );
      },
    },
  ];
  const res = await alternate(ctx, "boot", reps, competitors, (s) => `${s.wallS.toFixed(2)} s`);
  const figures: Figure[] = [];
  const rows: string[][] = [];
  const bars: ChartSpec["groups"] = [];
  const wall = new Map<string, Figure>();
  for (const c of competitors) {
    if (c.unavailable !== undefined) {
      notes.push(`${c.name} skipped: ${c.unavailable} (not faked).`);
      continue;
    }
    const o = res.get(c.name)!;
    for (const e of [...new Set(o.errors)]) notes.push(`${c.name} failed: ${e}`);
    if (o.samples.length === 0) continue;
    const key = c.name.replace(/^visor --virt /, "visor-").replace(/\s+/g, "-");
    const w = makeFigure(
      `boot/${key}/wall-s`,
      `${c.name}: start to power-off`,
      "s",
      "lower",
      o.samples.map((s) => s.wallS),
    );
    figures.push(w);
    wall.set(c.name, w);
    const g = o.samples.map((s) => s.guestS).filter((x): x is number => x !== undefined);
    const gf =
      g.length > 0
        ? makeFigure(`boot/${key}/guest-clock-s`, `${c.name}: guest clock at power-off`, "s", "lower", g)
        : undefined;
    if (gf) figures.push(gf);
    rows.push([
      c.name,
      fmt(w.median),
      `${fmt(w.min)}..${fmt(w.max)}`,
      gf ? fmt(gf.median) : "-",
      String(w.n),
    ]);
    bars.push({
      label: c.name.replace("visor --virt ", "visor "),
      bars: [barOf("process start to exit", w), ...(gf ? [barOf("guest clock at power-off", gf)] : [])],
    });
  }
  const q = wall.get("qemu-system-riscv64");
  const vs = [...wall].filter(([n]) => n.startsWith("visor"));
  const fastest = vs.sort((a, b) => a[1].median - b[1].median)[0];
  const caption =
    q && fastest
      ? `Start to power-off: the fastest visor mode (${fastest[0].replace("visor --virt ", "")}) takes ${fmt(fastest[1].median)} s, ${ratio(fastest[1].median, q.median)} QEMU's ${fmt(q.median)} s.`
      : "Start to power-off of the bundled guest in each mode.";
  return {
    name: "boot",
    title: "boot: start to power-off of the bundled guest",
    about: `The bundled Linux 6.1 + busybox guest boots, runs \`uname -a\` (kernel command line \`${APPEND}\`) and powers off. visor is the real command, \`node --conditions=source apps/vmm/src/main.ts run --virt MODE --memory ${MEMORY}\`, so its time includes Node's start-up and gunzipping Image.gz; firmware is visor's built-in SBI. visor decompresses the gzip initramfs on the host before the guest sees it, so QEMU gets the same plain cpio. QEMU boots the same kernel (uncompressed beforehand, outside the timing: QEMU 7.2 cannot boot Image.gz) and initramfs (likewise uncompressed beforehand) on \`-M virt -m ${MEMORY}\` with OpenSBI fw_jump. Wall time is process start to exit; the guest clock column is the kernel's timestamp on its "reboot: Power down" line.`,
    status: figures.length === 0 ? "failed" : notes.length > 0 ? "partial" : "ok",
    notes,
    figures,
    tables: [
      {
        caption: `Median of ${reps} alternating runs.`,
        head: ["runner", "wall s (median)", "wall s (min..max)", "guest clock s", "runs"],
        rows,
      },
    ],
    charts:
      bars.length > 0
        ? [
            {
              file: "bench-boot.svg",
              title: "boot: start to power-off (lower is better)",
              unit: "seconds",
              groups: bars,
              caption,
            },
          ]
        : [],
    durationMs: 0,
    raw: Object.fromEntries(res),
  };
}
