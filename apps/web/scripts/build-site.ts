/** Build the site into a fresh temporary folder (for the test and the scripts). */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const APP_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");

export async function buildSite(): Promise<string> {
  const out = mkdtempSync(join(tmpdir(), "visor-web-"));
  const { build } = await import("vite");
  await build({ configFile: join(APP_DIR, "vite.config.ts"), logLevel: "warn", build: { outDir: out } });
  return out;
}
