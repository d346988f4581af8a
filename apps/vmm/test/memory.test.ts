/**
 * `visor run --memory` at and beyond its limits, as a user runs it (child processes): a
 * size above the supported maximum, below the minimum, or not whole pages is one line on
 * stderr naming the limit and a non-zero exit, before any kernel is read.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const MAIN = join(import.meta.dirname, "../src/main.ts");

function visor(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ["--conditions=source", MAIN, ...args], {
    encoding: "utf8",
    input: "",
    timeout: 60_000,
  });
  return { status: r.status, stderr: r.stderr };
}

describe("visor run --memory", () => {
  it("refuses sizes outside what it supports in one line that names the limit", () => {
    const cases: [string, string][] = [
      ["64G", "visor: --memory 64G is above the supported maximum of 16G"],
      ["16385M", "visor: --memory 16385M is above the supported maximum of 16G"],
      ["1M", "visor: --memory 1M is below the minimum of 16M"],
      ["67108865", "visor: --memory 67108865 is not a whole number of 4 KiB pages"],
    ];
    for (const [size, message] of cases) {
      const r = visor(["run", "--memory", size]);
      expect(r.stderr, size).toBe(`${message}\n`);
      expect(r.status, size).toBe(1);
    }
  });
});
