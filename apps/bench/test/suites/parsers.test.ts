import { describe, expect, it } from "vitest";
import type { Counters } from "../../src/runners/vm.ts";
import { parseCpuLine } from "../../src/suites/cpu.ts";
import { parseExitsConsole } from "../../src/suites/exits.ts";
import { deltas, parseEnds } from "../../src/suites/paging.ts";
import { parseSyscallsLine } from "../../src/suites/syscalls.ts";

describe("guest output parsers", () => {
  it("reads the cpu program's result line", () => {
    const s = parseCpuLine("noise\ncpu kernel=int iters=64 ns=200000000 instret=123 check=0x00ff sink=3\n");
    expect(s).toEqual({ iters: 64, ns: 200000000, instret: 123, check: "0x00ff" });
    expect(() => parseCpuLine("nothing here")).toThrow(/no 'cpu' result line/);
  });

  it("reads the syscalls program's line and its unsupported form", () => {
    expect(parseSyscallsLine("syscalls test=writev ops=2048 bytes=2048 calls=2 ns=5000\n")).toEqual({
      ops: 2048,
      bytes: 2048,
      calls: 2,
      ns: 5000,
    });
    expect(parseSyscallsLine("syscalls test=uring unsupported errno=38\n").unsupported).toBe("errno 38");
  });

  it("turns the exits guest's ticks into ns per access minus the faster empty loop", () => {
    const text = [
      "exits: timebase=10000000",
      "exits: virtio-rng=0x0000000010001000",
      "exits: test=empty iters=1000 ticks=2000 median_ticks=2100", // 200 ns per iteration
      "exits: test=mmio-read iters=100 ticks=1000 median_ticks=1100", // 1000 ns
      "exits: skip=pio reason=no-pio-address-given",
      "exits: test=empty-again iters=1000 ticks=1000 median_ticks=1000", // 100 ns
      "exits: done",
    ].join("\r\n");
    const s = parseExitsConsole(text);
    expect(s.hz).toBe(10_000_000);
    expect(s.perIter["mmio-read"]).toBeCloseTo(1000);
    expect(s.net["mmio-read"]).toBeCloseTo(900);
    expect(s.net.loop).toBeCloseTo(100);
    expect(s.skipped).toEqual({ pio: "no pio address given" });
    expect(() => parseExitsConsole("exits: timebase=10000000\n")).toThrow(/did not finish/);
  });

  it("reads the paging guest's end lines and differences counters between its marks", () => {
    const s = parseEnds(
      "@@bench end forkexec ns=5000000 ops=10 check=10\r\n@@bench end tlb ns=800 ops=4 check=1\r\n",
    );
    expect(s).toEqual({ forkexec: { ns: 5000000, ops: 10 }, tlb: { ns: 800, ops: 4 } });
    const c = (walks: number): Counters =>
      ({
        t: 0,
        instret: 0,
        tlbMisses: 0,
        walks,
        walkRefs: 0,
        traps: 0,
        interrupts: 0,
        gWalks: 0,
        gRefs: 0,
        shadowFills: 0,
        shadowSyncs: 0,
        shadowFlushes: 0,
        shadowSatpSwitches: 0,
        shadowInjectedFaults: 0,
        shadowPoolResets: 0,
      }) as Counters;
    const marks = [
      { line: "@@bench begin tlb", counters: c(10) },
      { line: "@@bench end tlb ns=800 ops=4 check=1", counters: c(50) },
    ];
    expect(deltas(marks, "tlb")?.walks).toBe(40);
    expect(deltas(marks, "forkexec")).toBeUndefined();
  });
});
