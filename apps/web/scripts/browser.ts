/**
 * Headless Chromium from Debian's chromium package, driven by playwright-core (Playwright's
 * own browser download cannot work here). Shared by the browser test and the screenshot
 * script.
 */
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const hasChromium = existsSync(CHROMIUM);

/** A headless Chromium; Playwright gives each launch a fresh, empty profile folder. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root (no sandbox), and quiet: this machine has no network beyond the loopback,
    // and Chromium's background connections would only fail.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
