import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const main = join(import.meta.dirname, "../src/main.ts");
const bench = (...args: string[]) =>
  spawnSync(process.execPath, ["--conditions=source", main, ...args], { encoding: "utf8", timeout: 30_000 });

describe("bench command line", () => {
  it("prints its usage", () => {
    const r = bench("--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("--quick");
    expect(r.stdout).toContain("cpu, boot, exits, paging, syscalls");
  });

  it("rejects an unknown suite or option with one line and status 2", () => {
    const a = bench("--suite", "nope");
    expect(a.status).toBe(2);
    expect(a.stderr.trim()).toBe(
      "bench: unknown suite 'nope' (one of cpu, boot, exits, paging, syscalls, kvm)",
    );
    const b = bench("--frobnicate");
    expect(b.status).toBe(2);
    expect(b.stderr).toContain("unknown argument '--frobnicate'");
  });

  it("refuses a --compare file that is not a results.json before running anything", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-main-"));
    try {
      writeFileSync(join(dir, "x.json"), '{"hello":1}');
      const r = bench("--compare", join(dir, "x.json"), "--out", join(dir, "out"));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("not a @visor/bench results.json");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
