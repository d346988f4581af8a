/**
 * The bundled guest's end as `visor run`'s status (docs/exit-status.md): /init reports a
 * failing `visor.run=` command's status through the test finisher, and a kernel panic
 * without `panic=` (after which the kernel would spin forever) reaches visor through
 * pvpanic. With `panic=1` the same notifier runs before the kernel would reset, so the
 * end is the same; docs/exit-status.md shows it, this file boots once less.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const MAIN = join(import.meta.dirname, "../src/main.ts");
const BOOT_TIMEOUT_MS = 240_000;

function boot(append: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.INIT_CWD;
  const args = ["--conditions=source", MAIN, "run", "--append", `console=ttyS0 ${append}`];
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      args,
      { env, timeout: BOOT_TIMEOUT_MS, maxBuffer: 16 << 20 },
      (e, stdout, stderr) => {
        resolve({ status: e === null ? 0 : typeof e.code === "number" ? e.code : null, stdout, stderr });
      },
    );
    child.stdin?.end();
  });
}

// Each boot is its own process: they run side by side.
describe.concurrent("the bundled guest's exit status", () => {
  it(
    "a failing visor.run= command: its status",
    async () => {
      const r = await boot("visor.run=echo+failing;exit+3");
      expect(r.stdout).toContain("failing");
      expect(r.stderr).toBe("visor: guest reported failure (code 3)\n");
      expect(r.status).toBe(3);
    },
    BOOT_TIMEOUT_MS,
  );

  it(
    "a kernel panic, without panic=: status 1, not a hang",
    async () => {
      const r = await boot("visor.run=echo+c+>/proc/sysrq-trigger");
      expect(r.stdout).toContain("Kernel panic - not syncing: sysrq triggered crash");
      expect(r.stderr).toBe("visor: guest kernel panicked\n");
      expect(r.status).toBe(1);
    },
    BOOT_TIMEOUT_MS,
  );
});
