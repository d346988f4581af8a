/// <reference types="node" />
/**
 * The binary translation mode (KernelOptions.jit, RunProgramOptions.jit) reaches every
 * hart the kernel creates: the first process's, forked children's and threads'. Until the
 * translator is merged a hart reports mode "off" with the reason; the checks accept that
 * and nothing else, so they tighten by themselves once hart.jitStats reports the real mode.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { JIT_MODES, type JitMode, type JitStats } from "@visor/cpu";
import { afterAll, describe, expect, it } from "vitest";
import {
  createKernel,
  exitStatusOf,
  type KernelStats,
  MemoryConsole,
  runProgram,
  spawnInit,
} from "../src/index.ts";
import { createNodeHost } from "../src/node/index.ts";
import { FIXTURES } from "./root.ts";

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** A root holding fixtures/guests/threads (threads, and fork and exec from threads). */
function threadsRoot(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "visor-jit-"));
  roots.push(dir);
  fs.copyFileSync(path.join(FIXTURES, "guests", "threads"), path.join(dir, "threads"));
  fs.chmodSync(path.join(dir, "threads"), 0o755);
  return dir;
}

/** The mode in effect is `mode`, or "off" with the reason translation is unavailable. */
function expectMode(s: JitStats, mode: JitMode): void {
  if (s.mode === mode) return;
  expect(s.mode).toBe("off");
  expect(s.unavailable).not.toBe("");
}

describe("KernelOptions.jit", () => {
  for (const mode of JIT_MODES) {
    it(`jit ${mode}: every hart (processes, forked children, threads) is created with it`, async () => {
      const console = new MemoryConsole("");
      const host = createNodeHost({ root: threadsRoot(), console });
      try {
        const k = createKernel({ host, jit: mode, memoryBytes: 256 << 20 });
        expect(k.jit).toBe(mode);
        spawnInit(k, "/threads", ["/threads"], []);
        expect(exitStatusOf(await k.run())).toBe(0);
        expect(console.text(1)).not.toContain("not ok");
        // The main thread, its threads and the children forked from them.
        expect(k.harts.length).toBeGreaterThan(2);
        for (const h of k.harts) expectMode(h.jitStats, mode);
        const stats = k.stats();
        expectMode(stats.jit, mode);
        expect(stats.jit.executedTranslated).toBeLessThanOrEqual(stats.instructions);
        if (mode === "off") expect(stats.jit.executedTranslated).toBe(0);
      } finally {
        host.close();
      }
    });
  }

  it("defaults to on, through runProgram too, and reports the sum in the statistics", async () => {
    const host = createNodeHost({ root: threadsRoot(), console: new MemoryConsole("") });
    try {
      expect(createKernel({ host }).jit).toBe("on");
      let stats: KernelStats | undefined;
      const status = await runProgram({
        host,
        program: "/threads",
        jit: "always",
        memoryBytes: 256 << 20,
        onStats: (s) => {
          stats = s;
        },
      });
      expect(status).toBe(0);
      expectMode(stats!.jit, "always");
    } finally {
      host.close();
    }
  });

  it("refuses a mode that is not one of off, on, always in one line", () => {
    const host = createNodeHost({ root: os.tmpdir(), console: new MemoryConsole("") });
    try {
      expect(() => createKernel({ host, jit: "fast" as JitMode })).toThrow(
        /^jit: 'fast' is not one of off, on, always$/,
      );
    } finally {
      host.close();
    }
  });
});
