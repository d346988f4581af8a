/**
 * `visor` as a user installs it: the @visor/* packages and this app packed (`pnpm pack`,
 * as for publishing), installed with `npm install -g --prefix TMP` from the tarballs, and
 * the installed `TMP/bin/visor` run from another directory: --version, and a boot of the
 * bundled guest (shipped in the app's tarball) with a disk given by a relative path.
 *
 * Needs the built packages (dist/, from `pnpm build`, which CI runs first) and npm;
 * koffi, @visor/devices' one third-party dependency, comes from npm's cache or registry.
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../../..");
const APP = resolve(import.meta.dirname, "..");
const VERSION = JSON.parse(readFileSync(join(APP, "package.json"), "utf8")).version;
/** This app and every package it needs, directly or not: the public packages/*. */
const PACKAGES = [
  APP,
  ...readdirSync(join(ROOT, "packages"))
    .map((d) => join(ROOT, "packages", d))
    .filter((d) => existsSync(join(d, "package.json"))),
];
const unbuilt = PACKAGES.filter((d) => !existsSync(join(d, "dist")));
const hasNpm = spawnSync("npm", ["--version"]).status === 0;

const work = mkdtempSync(join(tmpdir(), "visor-install-"));
const prefix = join(work, "prefix");
/** Where the user runs visor: neither the repository nor the install prefix. */
const home = join(work, "home");
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * The environment of a user's shell: no package manager's script variables (vitest may
 * run under pnpm), and this Node (the workspace's, 22 or later) first on PATH for the
 * installed bin's `#!/usr/bin/env node`.
 */
function userEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k === "INIT_CWD" || k.startsWith("npm_")) delete env[k];
  env.PATH = `${dirname(process.execPath)}${delimiter}${env.PATH ?? ""}`;
  return env;
}

function visor(args: string[]) {
  return spawnSync(join(prefix, "bin", "visor"), args, {
    cwd: home,
    env: userEnv(),
    encoding: "utf8",
    input: "",
    timeout: 180_000,
  });
}

const why = !hasNpm ? "no npm" : unbuilt.length > 0 ? `not built (pnpm build): ${unbuilt.join(", ")}` : "";

describe.skipIf(why !== "")(`npm install -g of the packed visor${why ? ` (skipped: ${why})` : ""}`, () => {
  beforeAll(() => {
    const tarballs = join(work, "tarballs");
    mkdirSync(tarballs);
    mkdirSync(home);
    for (const d of PACKAGES)
      execFileSync("pnpm", ["pack", "--pack-destination", tarballs], { cwd: d, stdio: "pipe" });
    execFileSync(
      "npm",
      [
        "install",
        "--global",
        "--prefix",
        prefix,
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        ...readdirSync(tarballs).map((f) => join(tarballs, f)),
      ],
      { cwd: work, stdio: "pipe", env: userEnv() },
    );
  }, 240_000);

  it("prints its version from another directory", () => {
    const r = visor(["--version"]);
    expect(r.stdout).toBe(`visor ${VERSION}\n`);
    expect(r.status).toBe(0);
  });

  it("resolves a relative --disk against the user's directory", () => {
    const r = visor(["run", "--disk", "missing.img"]);
    expect(r.stderr.startsWith(`visor: --disk ${join(home, "missing.img")}: `), r.stderr).toBe(true);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.status).toBe(1);
  });

  it("boots the bundled guest, which reads the disk given by a relative path", () => {
    const disk = new Uint8Array(64 * 1024);
    disk.set(new TextEncoder().encode("visor-disk-marker"));
    writeFileSync(join(home, "rel.img"), disk);
    const r = visor(["run", "--disk", "rel.img", "--append", "console=ttyS0 visor.run=head+-c+17+/dev/vda"]);
    expect(r.stdout).toContain("visor-disk-marker");
    expect(r.status, r.stderr).toBe(0);
  }, 200_000);
});
