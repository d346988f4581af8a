/**
 * Saving a snapshot replaces the old file only with a complete new one: a write that
 * fails part-way (a full disk, a crash) leaves the old file as it was and no temporary
 * file behind.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { writeFileAtomic } from "../src/atomic-write.ts";

const dir = mkdtempSync(join(tmpdir(), "visor-atomic-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("writeFileAtomic", () => {
  it("replaces the file whole, owner-readable only", () => {
    const p = join(dir, "vm.snap");
    writeFileSync(p, "old");
    writeFileAtomic(p, new TextEncoder().encode("new contents"));
    expect(readFileSync(p, "utf8")).toBe("new contents");
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["vm.snap"]);
  });

  it("leaves the old file intact when a write fails part-way", () => {
    const p = join(dir, "keep.snap");
    writeFileSync(p, "the previous snapshot");
    let calls = 0;
    const failing = {
      writeSync: (_fd: number, _d: Uint8Array, _o: number, length: number) => {
        if (++calls > 1)
          throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
        return Math.min(length, 3); // a short write first, then the disk is full
      },
    };
    expect(() => writeFileAtomic(p, new Uint8Array(1000).fill(1), failing)).toThrow(/ENOSPC/);
    expect(readFileSync(p, "utf8")).toBe("the previous snapshot");
    expect(readdirSync(dir).filter((f) => f.includes("keep"))).toEqual(["keep.snap"]);
  });
});
