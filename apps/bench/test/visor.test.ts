import type { JitStats } from "@visor/cpu";
import type { KernelStats } from "@visor/syscall";
import { formatStats, parseExecArgs } from "@visor/syscall/node/cli";
import { describe, expect, it } from "vitest";
import { paths } from "../src/context.ts";
import { BOOT_RUNNERS, bootVisorArgv } from "../src/suites/boot.ts";
import { cpuVisorArgv } from "../src/suites/cpu.ts";
import { sha256VisorArgv, syscallsVisorArgv } from "../src/suites/syscalls.ts";
import {
  figureKey,
  INTERPRETER,
  parseExecStats,
  TRANSLATOR,
  translatorNote,
  VISOR_MODES,
  visorExecArgv,
  visorRunArgv,
} from "../src/visor.ts";

/** The `--jit VALUE` pair of a visor command line (the rest is what exec/run parsed before). */
function splitJit(argv: string[], command: string): { jit: string | undefined; rest: string[] } {
  const at = argv.indexOf(command);
  const opts = argv.slice(at + 1);
  const i = opts.indexOf("--jit");
  if (i < 0) return { jit: undefined, rest: opts };
  return { jit: opts[i + 1], rest: [...opts.slice(0, i), ...opts.slice(i + 2)] };
}

describe("visor command lines", () => {
  it("compares the interpreter alone with the translator, labelled as such", () => {
    expect(VISOR_MODES.map((m) => [m.jit, m.name])).toEqual([
      ["off", "visor (interpreter)"],
      ["on", "visor (jit)"],
    ]);
    expect(INTERPRETER.suffix).toBe("");
    expect(TRANSLATOR.suffix).toBe("-jit");
    // The interpreter keeps the ids of the runs before the translator; peers keep theirs.
    expect(["visor (interpreter)", "visor (jit)", "qemu-riscv64"].map(figureKey)).toEqual([
      "visor",
      "visor-jit",
      "qemu-riscv64",
    ]);
  });

  it("runs the workspace's visor exec with --jit and every option before PROGRAM", () => {
    const argv = visorExecArgv({
      jit: "on",
      root: "/r",
      program: "/p",
      args: ["a", "--b"],
      stats: true,
      memoryMiB: 512,
    });
    expect(argv.slice(0, 3)).toEqual(["--conditions=source", paths.visorMain, "exec"]);
    const { jit, rest } = splitJit(argv, "exec");
    expect(jit).toBe("on");
    // What is left is a command line today's exec parser reads back exactly.
    expect(parseExecArgs(rest)).toMatchObject({
      root: "/r",
      env: [],
      stats: true,
      memoryMiB: 512,
      program: "/p",
      args: ["a", "--b"],
    });
    expect(visorExecArgv({ jit: "off", root: "/r", program: "/p" })).not.toContain("--stats");
  });

  it("passes each mode's --jit to the cpu, syscalls and sha256sum runs", () => {
    for (const m of VISOR_MODES) {
      const cpu = splitJit(cpuVisorArgv(m.jit, "fp", 200), "exec");
      expect(cpu.jit).toBe(m.jit);
      expect(parseExecArgs(cpu.rest)).toMatchObject({
        root: paths.fixtureBin,
        program: "/cpu",
        args: ["fp", "200"],
        // The kernels make a call per batch: --stats costs nothing and reports the translator.
        stats: true,
      });
      const timed = splitJit(syscallsVisorArgv(m.jit, "writev", 150), "exec");
      expect(timed.jit).toBe(m.jit);
      // The timed runs go without --stats (it times every system call).
      expect(parseExecArgs(timed.rest)).toMatchObject({
        program: "/syscalls",
        args: ["writev", "150"],
        stats: false,
      });
      const counting = splitJit(syscallsVisorArgv(m.jit, "writev", 150, true), "exec");
      expect(parseExecArgs(counting.rest).stats).toBe(true);
      const hash = splitJit(sha256VisorArgv(m.jit, "/root", "/data/16m.bin"), "exec");
      expect(hash.jit).toBe(m.jit);
      expect(parseExecArgs(hash.rest)).toMatchObject({
        root: "/root",
        program: "/bin/busybox",
        args: ["sha256sum", "/data/16m.bin"],
        stats: true,
      });
    }
  });

  it("boots with visor run --jit MODE --virt VIRT for every --virt mode in both translation modes", () => {
    expect(visorRunArgv({ jit: "off", virt: "shadow", memory: "256M", append: "console=ttyS0" })).toEqual([
      "--conditions=source",
      paths.visorMain,
      "run",
      "--jit",
      "off",
      "--virt",
      "shadow",
      "--memory",
      "256M",
      "--append",
      "console=ttyS0",
    ]);
    const visor = BOOT_RUNNERS.filter((r) => r.mode !== undefined);
    expect(visor.map((r) => [r.name, r.key])).toEqual([
      ["visor --virt off (interpreter)", "visor-off"],
      ["visor --virt off (jit)", "visor-off-jit"],
      ["visor --virt nested (interpreter)", "visor-nested"],
      ["visor --virt nested (jit)", "visor-nested-jit"],
      ["visor --virt shadow (interpreter)", "visor-shadow"],
      ["visor --virt shadow (jit)", "visor-shadow-jit"],
    ]);
    for (const r of visor) {
      const argv = bootVisorArgv(r);
      const { jit, rest } = splitJit(argv, "run");
      expect(jit).toBe(r.mode!.jit);
      expect(rest.slice(0, 2)).toEqual(["--virt", r.virt]);
    }
    expect(() => bootVisorArgv(BOOT_RUNNERS.at(-1)!)).toThrow(/not a visor runner/);
  });
});

describe("visor exec --stats report", () => {
  // With the translator's counters (what exec reports once it has them); without, too.
  const stats: KernelStats & { jit: JitStats } = {
    traps: 2097229,
    syscalls: 2097177,
    pageFaults: 57,
    cowCopies: 5,
    zeroFills: 7,
    signals: 0,
    processes: 1,
    instructions: 33563795,
    slices: 1,
    perSyscall: [{ nr: 172, name: "getpid", count: 2097152, errors: 0, ms: 12.5 }],
    peakMemoryBytes: 1 << 20,
    pageCacheHits: 3,
    pageCacheMisses: 4,
    jit: {
      mode: "on",
      unavailable: "",
      regions: 12,
      translatedInstructions: 300,
      modules: 3,
      translateMs: 4.5,
      executedTranslated: 33000000,
      entries: 40,
      invalidations: 0,
      evictions: 0,
      liveRegions: 12,
      liveBytes: 9000,
    },
  };

  it("reads wall time, instructions, traps and calls from what exec prints", () => {
    const text = `program output\n${formatStats(stats, 910.04)}`;
    const s = parseExecStats(text);
    expect(s).toMatchObject({
      wallMs: 910,
      instructions: 33563795,
      traps: 2097229,
      syscalls: 2097177,
    });
    // An exec that reports the translator prints the counters above: mode on, 98.3% translated.
    if (/^\s*translator\s/m.test(text)) {
      expect(s).toMatchObject({ translator: "on", translatedShare: 0.983 });
      expect(s.translatorAsked).toBeUndefined();
    } else expect(s.translator).toBeUndefined();
  });

  it("reads the translator's mode and share when the report has them, and notes a fallback", () => {
    const text = [
      "visor exec --stats",
      "  wall time            10.0 ms",
      "  instructions         1000 (0.1 MIPS)",
      "  traps to the kernel  5 (4 system calls, 1 page faults, 0 signals)",
      "  translator           off (asked for on); unavailable: no WebAssembly",
      "  ran translated       0.0% of instructions (0)",
    ].join("\n");
    const s = parseExecStats(text);
    expect(s).toMatchObject({ translator: "off", translatorAsked: "on", translatedShare: 0 });
    expect(translatorNote("cpu int on visor (jit)", s)).toBe(
      "cpu int on visor (jit): asked for --jit on, ran with off (translation unavailable): its figures are not the translator's.",
    );
    const on = parseExecStats(
      text.replace("off (asked for on); unavailable: no WebAssembly", "on").replace("0.0%", "97.5%"),
    );
    expect(on).toMatchObject({ translator: "on", translatedShare: 0.975 });
    expect(on.translatorAsked).toBeUndefined();
    expect(translatorNote("x", on)).toBeUndefined();
    // Today's report has no translator lines: nothing is made up.
    const plain = parseExecStats(text.split("\n").slice(0, 4).join("\n"));
    expect(plain.translator).toBeUndefined();
    expect(plain.translatedShare).toBeUndefined();
    expect(translatorNote("x", plain)).toBeUndefined();
  });

  it("says so when the report is missing or incomplete", () => {
    expect(() => parseExecStats("visor exec: unknown option --jit\n")).toThrow(
      /no 'visor exec --stats' report/,
    );
    expect(() => parseExecStats("visor exec --stats\n  wall time 3.0 ms\n")).toThrow(/lacks a line/);
  });
});
