/**
 * docs/img/web.png: the page after the guest booted and ran a few commands, taken by
 * headless Chromium. Run: pnpm --filter @visor/web screenshot
 */
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { hasChromium, launchChromium } from "./browser.ts";
import { APP_DIR, buildSite } from "./build-site.ts";
import { serveStatic } from "./static-server.ts";

if (!hasChromium) {
  process.stderr.write("screenshot: needs /usr/bin/chromium (apt-get install chromium)\n");
  process.exit(1);
}
const out = await buildSite();
const server = await serveStatic(out);
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  await page.goto(server.url);
  await page.click("#boot");
  await page.locator("#boot-time[data-ms]").waitFor({ timeout: 180_000 });
  await page.click("#terminal");
  for (const cmd of ["uname -a", "cat /proc/cpuinfo | head -6", "ls /sys/bus/virtio/devices"]) {
    await page.keyboard.type(cmd);
    await page.keyboard.press("Enter");
    await page.waitForTimeout(800);
  }
  // Two more stats samples, so the chart and the tables show the commands' exits.
  await page.waitForTimeout(1200);
  const file = join(APP_DIR, "../../docs/img/web.png");
  await page.screenshot({ path: file, fullPage: true });
  // Smaller in the repository: a 256-colour palette (pngquant, when installed).
  const q = spawnSync("pngquant", ["--force", "--skip-if-larger", "--output", file, "256", file]);
  process.stdout.write(`screenshot: ${file}${q.status === 0 ? " (pngquant)" : ""}\n`);
} finally {
  await browser.close();
  await server.close();
  rmSync(out, { recursive: true, force: true });
}
