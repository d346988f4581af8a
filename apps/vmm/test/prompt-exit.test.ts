/**
 * prompt-exit.ts: `visor run` ends with process.exit once stdout and stderr are flushed.
 * Everything written before reaches the reader, through a pipe and into a file, and the
 * status is the one asked for.
 */
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const dir = mkdtempSync(join(tmpdir(), "visor-prompt-exit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MODULE = join(import.meta.dirname, "../src/prompt-exit.ts");
/** Writes `n` lines of 1 KiB to stdout, one line to stderr, then exits with status 3. */
const CHILD = join(dir, "child.mjs");
writeFileSync(
  CHILD,
  `const { exitOnceFlushed } = await import(${JSON.stringify(MODULE)});
const n = Number(process.argv[2]);
for (let i = 0; i < n; i++) process.stdout.write(String(i).padStart(1023, ".") + "\\n");
process.stderr.write("last words\\n");
// A timer that would keep a natural exit waiting: exitOnceFlushed must not.
setTimeout(() => {}, 60_000);
await exitOnceFlushed(3);
`,
);

const LINES = 4096; // 4 MiB: far more than a pipe holds, so writes wait for the reader

describe("exitOnceFlushed", () => {
  it("exits with the status once all output has reached a pipe", () => {
    const r = spawnSync(process.execPath, [CHILD, String(LINES)], {
      encoding: "utf8",
      maxBuffer: 64 << 20,
      timeout: 30_000,
    });
    expect(r.status).toBe(3);
    const lines = r.stdout.split("\n");
    expect(lines.length).toBe(LINES + 1);
    expect(lines[LINES - 1]).toMatch(/\.4095$/);
    expect(r.stderr).toBe("last words\n");
  });

  it("exits with the status once all output is in a file", () => {
    const out = join(dir, "out.txt");
    const fd = openSync(out, "w");
    const r = spawnSync(process.execPath, [CHILD, String(LINES)], {
      stdio: ["ignore", fd, "pipe"],
      timeout: 30_000,
    });
    closeSync(fd);
    expect(r.status).toBe(3);
    expect(readFileSync(out).length).toBe(LINES * 1024);
  });
});
