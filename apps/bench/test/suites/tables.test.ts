import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { makeFigure } from "../../src/figures.ts";
import type { ProcResult } from "../../src/proc.ts";
import { markdownTable } from "../../src/report.ts";
import {
  BOOT_TABLE_HEAD,
  type BootFigures,
  bootCaption,
  bootRows,
  bootRssCaption,
  sampleOf,
} from "../../src/suites/boot.ts";
import { CPU_TABLE_HEAD, type CpuKernelResult, cpuRows, cpuTimeCaption } from "../../src/suites/cpu.ts";
import {
  COUNTS_HEAD,
  countsRow,
  type HashFigures,
  hashOf,
  SHA256_HEAD,
  SYSCALL_RUNNERS,
  sha256Data,
  sha256MiB,
  sha256Rows,
  syscallCell,
} from "../../src/suites/syscalls.ts";
import { shareText } from "../../src/visor.ts";

/** A figure whose samples are given (median of an odd count is the middle one). */
const fig = (id: string, ...samples: number[]) => makeFigure(id, id, "u", "lower", samples);

describe("cpu table", () => {
  const kr: CpuKernelResult = {
    kernel: "int",
    time: new Map([
      ["visor (interpreter)", fig("i", 1000, 900, 1100)],
      ["visor (jit)", fig("j", 100)],
      ["qemu-riscv64", fig("q", 20)],
      ["native", fig("n", 10)],
    ]),
    mips: new Map([
      ["visor (interpreter)", fig("im", 170)],
      ["visor (jit)", fig("jm", 1700)],
      ["qemu-riscv64", fig("qm", 8500)],
    ]),
    ipi: new Map([
      ["visor (interpreter)", 170000],
      ["visor (jit)", 170000],
    ]),
    translated: new Map([
      ["visor (interpreter)", 0],
      ["visor (jit)", 0.998],
    ]),
  };
  const runners = ["visor (interpreter)", "visor (jit)", "qemu-riscv64", "native"];

  it("has one row per runner, the visor modes labelled, ratios against both peers", () => {
    expect(CPU_TABLE_HEAD).toHaveLength(9);
    expect(cpuRows(kr, runners)).toEqual([
      ["int", "visor (interpreter)", "170000", "1000", "170", "50x", "100x", "-", "0.0%"],
      ["int", "visor (jit)", "170000", "100", "1700", "5.0x", "10x", "10x", "99.8%"],
      ["int", "qemu-riscv64", "-", "20.0", "8500", "-", "2.0x", "-", "-"],
      ["int", "native", "-", "10.0", "-", "-", "-", "-", "-"],
    ]);
  });

  it("leaves out a runner with no result and the ratios that need it", () => {
    const noInterp: CpuKernelResult = {
      ...kr,
      time: new Map([...kr.time].filter(([n]) => n !== "visor (interpreter)")),
    };
    const rows = cpuRows(noInterp, runners);
    expect(rows.map((r) => r[1])).toEqual(["visor (jit)", "qemu-riscv64", "native"]);
    expect(rows[0]![7]).toBe("-");
    const noPeers: CpuKernelResult = {
      ...kr,
      time: new Map([...kr.time].filter(([n]) => n.startsWith("visor"))),
    };
    expect(cpuRows(noPeers, runners).map((r) => [r[5], r[6]])).toEqual([
      ["-", "-"],
      ["-", "-"],
    ]);
  });

  it("says what the translator changed in the chart's caption", () => {
    expect(cpuTimeCaption([kr])).toBe(
      "Time per iteration, visor's interpreter -> translator: int 1000 -> 100 us (5.0x qemu-riscv64's time), 10x faster",
    );
    const only = { ...kr, time: new Map([["visor (interpreter)", fig("i", 1000)]]) };
    expect(cpuTimeCaption([only])).toBe(
      "Time per iteration, visor's interpreter -> translator: int 1000 us with the interpreter",
    );
  });

  it("renders as a Markdown table with numeric columns right-aligned", () => {
    const md = markdownTable({ head: CPU_TABLE_HEAD, rows: cpuRows(kr, runners) });
    expect(md.split("\n")[1]).toBe("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    expect(md).toContain("| int | visor (jit) | 170000 | 100 | 1700 | 5.0x | 10x | 10x | 99.8% |");
  });
});

describe("boot table", () => {
  const b = (wall: number, rss?: number, guest?: number): BootFigures => ({
    wall: fig("w", wall),
    ...(rss !== undefined ? { rss: fig("r", rss) } : {}),
    ...(guest !== undefined ? { guest: fig("g", guest) } : {}),
  });
  const figs = new Map<string, BootFigures>([
    ["visor --virt off (interpreter)", b(1.4, 300, 1.03)],
    ["visor --virt off (jit)", b(0.7, 340, 0.5)],
    ["visor --virt nested (interpreter)", b(1.6, 310)],
    ["qemu-system-riscv64", b(0.55, 120, 0.43)],
  ]);

  it("puts each translator row after its interpreter row, with speed-up and RSS change", () => {
    expect(BOOT_TABLE_HEAD).toHaveLength(9);
    expect(bootRows(figs)).toEqual([
      ["visor --virt off (interpreter)", "1.40", "1.40..1.40", "1.03", "300", "2.5x", "-", "-", "1"],
      ["visor --virt off (jit)", "0.700", "0.700..0.700", "0.500", "340", "1.3x", "2.0x", "+40.0", "1"],
      ["visor --virt nested (interpreter)", "1.60", "1.60..1.60", "-", "310", "2.9x", "-", "-", "1"],
      ["qemu-system-riscv64", "0.550", "0.550..0.550", "0.430", "120", "-", "-", "-", "1"],
    ]);
  });

  it("shows a smaller translator RSS with its sign and no RSS when /proc gave none", () => {
    const f = new Map<string, BootFigures>([
      ["visor --virt shadow (interpreter)", b(1.5, 300)],
      ["visor --virt shadow (jit)", b(0.8, 290)],
      ["visor --virt nested (jit)", b(0.9)],
    ]);
    const rows = bootRows(f);
    expect(rows.map((r) => [r[0], r[4], r[7]])).toEqual([
      ["visor --virt nested (jit)", "-", "-"],
      ["visor --virt shadow (interpreter)", "300", "-"],
      ["visor --virt shadow (jit)", "290", "-10.0"],
    ]);
  });

  it("writes captions from the numbers", () => {
    expect(bootCaption(figs)).toBe(
      "Start to power-off, visor's interpreter -> translator: --virt off 1.40 -> 0.700 s, --virt nested 1.60 s (interpreter); QEMU 0.550 s.",
    );
    expect(bootRssCaption(figs)).toBe(
      "Peak resident set (VmHWM) of a boot to power-off: visor --virt off (interpreter) 300 MiB, visor --virt off (jit) 340 MiB, visor --virt nested (interpreter) 310 MiB, qemu-system-riscv64 120 MiB.",
    );
  });

  it("takes the wall time, guest clock and peak RSS from one run", () => {
    const r: ProcResult = {
      code: 0,
      signal: null,
      stdout: "Linux visor 6.1.158 #1 SMP riscv64 GNU/Linux\n[    1.031234] reboot: Power down\n",
      stderr: "",
      wallMs: 1370,
      timedOut: false,
      peakRssKiB: 307200,
    };
    expect(sampleOf(r, "x")).toEqual({ wallS: 1.37, guestS: 1.031234, peakRssMiB: 300 });
    const { peakRssKiB: _, ...noRss } = r;
    expect(sampleOf(noRss, "x").peakRssMiB).toBeUndefined();
    expect(() => sampleOf({ ...r, stdout: "" }, "x")).toThrow(/did not print its uname -a line/);
  });
});

describe("syscalls tables", () => {
  it("has a column per visor mode beside the peers", () => {
    expect(SYSCALL_RUNNERS).toEqual(["visor (interpreter)", "visor (jit)", "qemu-riscv64", "native"]);
    expect(syscallCell("getpid", { figure: fig("g", 156) })).toBe("156");
    expect(syscallCell("write1", { figure: fig("w", 400) })).toBe("400 (2.50 MB/s)");
    expect(syscallCell("uring", { unsupported: "errno 38" })).toBe("unsupported");
    expect(syscallCell("uring", undefined)).toBe("-");
  });

  it("turns a counting run into per-1024-op rates", () => {
    expect(COUNTS_HEAD).toHaveLength(9);
    expect(
      countsRow("writev", {
        runner: "visor (jit)",
        sample: { ops: 8192, bytes: 8192, calls: 8, ns: 1 },
        stats: { wallMs: 1, instructions: 81920, traps: 100, syscalls: 90, translatedShare: 0.9712 },
      }),
    ).toEqual(["writev", "visor (jit)", "8192", "8", "100", "1.00", "12.5", "10.0", "97.1%"]);
    expect(shareText(undefined)).toBe("-");
  });

  it("tabulates sha256sum with ratios against qemu-riscv64 and the translator's speed-up", () => {
    const h = (s: number, mips?: number): HashFigures => ({
      s: fig("s", s),
      processS: fig("p", s + 0.1),
      mbs: fig("m", 16.777216 / s),
      ...(mips !== undefined ? { mips: fig("i", mips) } : {}),
      ...(mips === 1440 ? { translatedShare: 0.995 } : {}),
    });
    expect(SHA256_HEAD).toHaveLength(9);
    expect(
      sha256Rows(
        new Map([
          ["qemu-riscv64", h(0.2)],
          ["visor (jit)", h(1, 1440)],
          ["visor (interpreter)", h(8, 180)],
        ]),
      ),
    ).toEqual([
      ["visor (interpreter)", "8.00", "8.00..8.00", "8.10", "2.10", "180", "40x", "-", "-"],
      ["visor (jit)", "1.00", "1.00..1.00", "1.10", "16.8", "1440", "5.0x", "8.0x", "99.5%"],
      ["qemu-riscv64", "0.200", "0.200..0.200", "0.300", "83.9", "-", "-", "-", "-"],
    ]);
  });

  it("hashes 16 MiB in full runs and 2 MiB with --quick, of compare.ts's pattern", () => {
    expect(sha256MiB(false)).toBe(16);
    expect(sha256MiB(true)).toBe(2);
    const d = sha256Data(1);
    expect(d.length).toBe(1 << 20);
    expect([...d.subarray(0, 4)]).toEqual([0, 158, 60, 218]);
    const want = createHash("sha256").update(d).digest("hex");
    expect(hashOf(`${want}  /data/1m.bin\n`)).toBe(want);
    expect(() => hashOf("sha256sum: /data/1m.bin: No such file or directory\n")).toThrow(/no hash/);
  });
});
