import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { check, PeakRss, type ProcResult, parseVmHwm } from "../src/proc.ts";

describe("check", () => {
  const r = (stderr: string, code = 2): ProcResult => ({
    code,
    signal: null,
    stdout: "",
    stderr,
    wallMs: 5,
    timedOut: false,
  });
  it("quotes the error line, not the usage line printed after it", () => {
    expect(() =>
      check(r("visor exec: unknown option --jit\nusage: visor exec [--root DIR] PROGRAM\n"), "x"),
    ).toThrow(/^x: exit 2: visor exec: unknown option --jit$/);
    expect(() => check(r("usage: only this\n"), "x")).toThrow(/^x: exit 2: usage: only this$/);
    expect(check(r("", 0), "x").code).toBe(0);
  });
});

describe("peak resident set", () => {
  it("reads VmHWM from a /proc/PID/status text", () => {
    const status = "Name:\tnode\nVmPeak:\t 1234568 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  190000 kB\n";
    expect(parseVmHwm(status)).toBe(204800);
    // A zombie (exited, not yet reaped) has no Vm* lines.
    expect(parseVmHwm("Name:\tnode\nState:\tZ (zombie)\n")).toBeUndefined();
  });

  it("keeps the largest reading and reports nothing for a process it cannot read", () => {
    const gone = new PeakRss(2 ** 30);
    expect(gone.sample()).toBe(false);
    expect(gone.kib).toBeUndefined();
  });

  it.skipIf(!existsSync("/proc/self/status"))(
    "sees a live process's resident memory (it waits for the reading before it exits)",
    async () => {
      // The child touches 64 MiB, says so, and stays until its stdin closes: no timing.
      const child = spawn(
        process.execPath,
        [
          "-e",
          "const b = Buffer.alloc(64 << 20, 1); process.stdout.write('ready\\n'); process.stdin.on('data', () => {}); process.stdin.on('end', () => process.exit(b[123]));",
        ],
        { stdio: ["pipe", "pipe", "inherit"] },
      );
      await once(child.stdout!, "data");
      const rss = new PeakRss(child.pid!);
      expect(rss.sample()).toBe(true);
      expect(rss.kib!).toBeGreaterThanOrEqual(64 * 1024);
      const first = rss.kib!;
      child.stdin!.end();
      const [code] = await once(child, "exit");
      expect(code).toBe(1);
      // After the exit there is nothing to read, and the peak stays what was read.
      expect(rss.sample()).toBe(false);
      expect(rss.kib).toBe(first);
    },
  );
});
