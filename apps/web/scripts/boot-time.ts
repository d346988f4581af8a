/**
 * Boot time to the shell prompt, the same guest (the bundled riscv64 Linux, --virt nested,
 * --jit on, 256 MiB) two ways: in headless Chromium (this site, from pressing Boot) and
 * under Node (`visor run`, from starting the process). Both include everything a user
 * waits for: loading the program, reading and inflating the images, the warm-up guest
 * and the Linux boot. Run: pnpm --filter @visor/web boot-time [RUNS]
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { hasChromium, launchChromium } from "./browser.ts";
import { APP_DIR, buildSite } from "./build-site.ts";
import { serveStatic } from "./static-server.ts";

const runs = Number(process.argv[2] ?? "3");
const PROMPT = /visor guest: [^\n]* up[\s\S]*# $/;

/** Milliseconds from spawning `visor run` to its shell prompt on stdout. */
function nodeBoot(): Promise<number> {
  const repo = join(APP_DIR, "../..");
  const t0 = performance.now();
  const child = spawn(process.execPath, ["--conditions=source", "apps/vmm/src/main.ts", "run"], {
    cwd: repo,
    stdio: ["pipe", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error("visor run: no shell prompt within 300 s"));
    }, 300_000);
    child.stdout.on("data", (b: Buffer) => {
      text = (text + b.toString("latin1")).slice(-4096);
      if (PROMPT.test(text)) {
        const ms = performance.now() - t0;
        clearTimeout(timer);
        child.kill();
        resolve(ms);
      }
    });
    child.on("exit", () => {
      clearTimeout(timer);
      reject(new Error("visor run exited before its shell prompt"));
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const secs = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(", ");

if (!hasChromium) {
  process.stderr.write("boot-time: needs /usr/bin/chromium (apt-get install chromium)\n");
  process.exit(1);
}
const out = await buildSite();
const server = await serveStatic(out);
const browser = await launchChromium();
// Alternated, one of each per round: a busy machine's load changes under both alike.
const node: number[] = [];
const total: number[] = [];
const guest: number[] = [];
try {
  for (let i = 0; i < runs; i++) {
    node.push(await nodeBoot());
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.click("#boot");
    const t = page.locator("#boot-time[data-ms]");
    await t.waitFor({ timeout: 300_000 });
    total.push(Number(await t.getAttribute("data-ms")));
    guest.push(Number(await t.getAttribute("data-guest-ms")));
    await page.close();
    process.stdout.write(
      `round ${i + 1}: visor run ${secs([node[i]!])} s, Chromium ${secs([total[i]!])} s\n`,
    );
  }
  process.stdout.write(
    `visor run (Node ${process.version}): ${secs(node)} s; median ${secs([median(node)])} s\n`,
  );
  process.stdout.write(
    `headless Chromium ${browser.version()}: ${secs(total)} s; median ${secs([median(total)])} s (of which Linux from its first instruction: median ${secs([median(guest)])} s)\n`,
  );
} finally {
  await browser.close();
  await server.close();
  rmSync(out, { recursive: true, force: true });
}
