/**
 * The browser app end to end, in headless Chromium: build the site, serve it, boot the
 * bundled guest in the page's Web Worker, type a command in the xterm.js terminal, read
 * the answer from the page's DOM, and watch the exit counters move. Then the snapshot
 * round trip (save = a download, restore = an upload) and a corrupt snapshot upload.
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasChromium, launchChromium } from "../scripts/browser.ts";
import { buildSite } from "../scripts/build-site.ts";
import { type StaticServer, serveStatic } from "../scripts/static-server.ts";

// In CI a missing chromium is a failure (.ci/run installs it), not a skip.
const skip = !hasChromium && process.env.CI === undefined;

/** The terminal's screen as text, as assistive technology reads it (screen-reader mode). */
const screen = async (page: Page) =>
  (await page.locator("#terminal .xterm-accessibility-tree > div").allTextContents()).join("\n");
/** A table's rows as "cell | cell | ..." lines. */
const rows = (page: Page, id: string) =>
  page.$$eval(`#${id} tr`, (trs) =>
    trs.map((tr) => Array.from(tr.children, (td) => td.textContent).join(" | ")).join("\n"),
  );
const exitTotal = async (page: Page) => Number(await page.locator("#exits-total").getAttribute("data-total"));

describe.skipIf(skip)(
  `the web app in headless Chromium${skip ? " (skipped: no /usr/bin/chromium)" : ""}`,
  () => {
    let out: string;
    let server: StaticServer;
    let browser: Browser;
    let page: Page;
    /** Uncaught exceptions in the page or its worker. */
    const errors: string[] = [];

    beforeAll(async () => {
      out = await buildSite();
      server = await serveStatic(out);
      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
      page.on("pageerror", (e) => errors.push(e.message));
      page.on("worker", (w) => w.on("console", (m) => m.type() === "error" && errors.push(m.text())));
      await page.goto(server.url);
    });

    afterAll(async () => {
      await browser?.close();
      await server?.close();
      if (out !== undefined) rmSync(out, { recursive: true, force: true });
    });

    it("boots Linux to a shell prompt, runs uname -a, and the exit counters move", async () => {
      await page.selectOption("#virt", "nested");
      await page.click("#boot");
      await page.locator("#boot-time[data-ms]").waitFor({ timeout: 150_000 });
      const ms = Number(await page.locator("#boot-time").getAttribute("data-ms"));
      console.log(`headless Chromium: shell prompt ${ms} ms after Boot`);
      // The accessibility tree follows the screen at the next animation frame: poll.
      await expect.poll(() => screen(page), { timeout: 30_000 }).toMatch(/visor guest: Linux \S+ up/);

      await page.locator("#exits-total").waitFor();
      const before = await exitTotal(page);
      expect(before).toBeGreaterThan(0);
      await page.click("#terminal");
      await page.keyboard.type("uname -a");
      await page.keyboard.press("Enter");
      await expect.poll(() => screen(page), { timeout: 30_000 }).toMatch(/Linux \(none\) \S+ .*riscv64/);
      await expect.poll(() => exitTotal(page), { timeout: 30_000 }).toBeGreaterThan(before);

      // The panels are filled from the machine's own counters.
      expect(await rows(page, "mmio-table")).toMatch(/uart/i);
      expect(await rows(page, "sbi-table")).toMatch(/TIME|time/);
      // The WebAssembly translator runs in Chromium too: in effect "on", and regions translated.
      expect(await page.locator("#jit-mode").getAttribute("data-mode")).toBe("on");
      expect(await rows(page, "jit-table")).toMatch(/regions translated \| [1-9]/);
      expect(errors).toEqual([]);
    }, 300_000);

    it("a terminal that falls behind holds the guest until it catches up", async () => {
      const held = async () =>
        Number(
          /held ([\d,]+) times/
            .exec((await page.locator("#exits-total").textContent()) ?? "")?.[1]
            ?.replace(/,/g, ""),
        );
      const before = await held();
      // A terminal that falls behind (a background tab, a slow machine) acknowledges late:
      // here the page's acknowledgements are kept back until released.
      await page.evaluate(() => {
        const w = window as unknown as { releaseAcks: () => void };
        const send = Worker.prototype.postMessage;
        const kept: [Worker, unknown][] = [];
        let keep = true;
        Worker.prototype.postMessage = function (this: Worker, m: { type?: string }, t?: Transferable[]) {
          if (keep && m?.type === "ack") kept.push([this, m]);
          else send.call(this, m, { transfer: t ?? [] });
        } as typeof send;
        w.releaseAcks = () => {
          keep = false;
          for (const [worker, m] of kept) send.call(worker, m);
        };
      });
      await page.click("#terminal");
      await page.keyboard.type("yes flood");
      await page.keyboard.press("Enter");
      // The worker refuses more output and the machine holds the guest: the exits
      // panel's "held for console output" counter.
      await expect.poll(held, { timeout: 90_000 }).toBeGreaterThan(before);
      await page.evaluate(() => (window as unknown as { releaseAcks: () => void }).releaseAcks());
      await page.keyboard.press("Control+C");
      await page.keyboard.type("echo after-$((40+2))");
      await page.keyboard.press("Enter");
      await expect.poll(() => screen(page), { timeout: 60_000 }).toMatch(/after-42/);
    }, 240_000);

    it("saves a snapshot as a download and continues it from an upload", async () => {
      const download = page.waitForEvent("download", { timeout: 60_000 });
      await page.click("#save");
      const file = join(out, "vm.snap");
      await (await download).saveAs(file);
      await page.setInputFiles("#restore", file);
      await expect
        .poll(() => page.locator("#status").textContent(), { timeout: 60_000 })
        .toMatch(/restored VM/);
      await page.click("#terminal");
      await page.keyboard.type("echo restored-$((6*7))");
      await page.keyboard.press("Enter");
      await expect.poll(() => screen(page), { timeout: 30_000 }).toMatch(/restored-42/);
    }, 180_000);

    it("a corrupt snapshot upload is one line of error, not a hang", async () => {
      const bad = join(out, "bad.snap");
      writeFileSync(bad, Buffer.from("not a visor snapshot at all"));
      await page.setInputFiles("#restore", bad);
      await expect
        .poll(
          () =>
            page
              .locator("#status.error")
              .textContent()
              .catch(() => ""),
          { timeout: 30_000 },
        )
        .toMatch(/^snapshot: /);
    });
  },
);
