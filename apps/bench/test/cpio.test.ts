import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cpioNewc } from "../src/cpio.ts";

function hasCpio(): boolean {
  try {
    execFileSync("cpio", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("cpioNewc", () => {
  it("lays out header, name and data on 4-byte boundaries and ends with the trailer", () => {
    const a = cpioNewc([
      { name: "d", mode: 0o040755 },
      { name: "d/f", mode: 0o100644, data: Uint8Array.of(1, 2, 3) },
    ]);
    const text = new TextDecoder("latin1").decode(a);
    expect(text.startsWith("070701")).toBe(true);
    expect(a.length % 4).toBe(0);
    // second entry: 110-byte header + "d\0" padded to 112, then next header
    expect(text.slice(112, 118)).toBe("070701");
    const fileHeader = text.slice(112, 222);
    expect(Number.parseInt(fileHeader.slice(6 + 8, 6 + 16), 16)).toBe(0o100644); // mode
    expect(Number.parseInt(fileHeader.slice(6 + 6 * 8, 6 + 7 * 8), 16)).toBe(3); // filesize
    expect(text).toContain("TRAILER!!!\0");
  });

  it("rejects names and types it cannot represent", () => {
    expect(() => cpioNewc([{ name: "/abs", mode: 0o100644 }])).toThrow(/bad entry name/);
    expect(() => cpioNewc([{ name: "link", mode: 0o120777 }])).toThrow(/only directories and regular files/);
  });

  it.skipIf(!hasCpio())("is read back by GNU cpio with the same files and modes", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-cpio-"));
    try {
      const data = new TextEncoder().encode("hello\n");
      const arc = cpioNewc([
        { name: "bench", mode: 0o040755 },
        { name: "bench/hello", mode: 0o100755, data },
      ]);
      writeFileSync(join(dir, "a.cpio"), arc);
      execFileSync("cpio", ["-idm", "--quiet", "-F", join(dir, "a.cpio")], { cwd: dir });
      expect(readFileSync(join(dir, "bench/hello"), "utf8")).toBe("hello\n");
      expect(statSync(join(dir, "bench/hello")).mode & 0o777).toBe(0o755);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
