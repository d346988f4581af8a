/**
 * What `visor` does before its guest runs (docs/architecture.md, "Start-up and exit"): it
 * loads only what a plain run needs (node:http, node:tls, the disk image and socket code
 * are loaded by --api-sock, TLS migration, --disk and --net, when asked for), and Node's
 * compile cache is on, from the sources and from the built dist/, and never an error when
 * its directory cannot be made.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import module from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const MAIN = join(import.meta.dirname, "../src/main.ts");
const DIST = join(import.meta.dirname, "../dist/main.js");
const ISA = join(import.meta.dirname, "../../../packages/cpu/fixtures/isa/bin");
const dir = mkdtempSync(join(tmpdir(), "visor-startup-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Records every module the process imports, printed on stderr at exit. */
const HOOK = join(dir, "builtins-hook.mjs");
writeFileSync(
  HOOK,
  `import { registerHooks } from "node:module";
const seen = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const r = next(specifier, context);
    seen.add(r.url);
    return r;
  },
});
process.on("exit", () => process.stderr.write("modules: " + [...seen].join(" ") + "\\n"));
`,
);

/** The environment without a compile cache setting of its own, plus `extra`. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e = { ...process.env };
  delete e.NODE_COMPILE_CACHE;
  delete e.NODE_DISABLE_COMPILE_CACHE;
  delete e.INIT_CWD;
  return { ...e, ...extra };
}

function visor(entry: readonly string[], args: string[], extraEnv: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [...entry, ...args], {
    env: env(extraEnv),
    encoding: "utf8",
    input: "",
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SOURCE = ["--conditions=source", MAIN];

/** The modules the child imported: node: modules by name, files by their path below packages/ or apps/. */
function modules(stderr: string): string[] {
  const line = stderr.split("\n").find((l) => l.startsWith("modules: "));
  if (line === undefined) throw new Error(`no modules line in: ${stderr}`);
  return line
    .slice("modules: ".length)
    .split(" ")
    .map((u) => u.replace(/^file:.*\/((packages|apps)\/)/, "$1"));
}

/** Loaded only when an option asks for them. */
const ON_DEMAND = [
  "node:http",
  "node:tls",
  "apps/vmm/src/api/server.ts",
  "apps/vmm/src/drives.ts",
  "packages/devices/src/node/index.ts",
  "packages/cpu/src/node/index.ts",
];

describe.skipIf(typeof module.registerHooks !== "function")(
  "modules a run loads (needs module.registerHooks: Node 22.15 or later)",
  () => {
    it("a plain run imports none of what --api-sock, --disk, --net, --gdb and migration need", () => {
      const r = visor(["--import", HOOK, ...SOURCE], ["run", "--bios", join(ISA, "rv64m.elf")]);
      expect(r.status, r.stderr).toBe(0);
      const loaded = modules(r.stderr);
      // the hook sees builtins and files
      expect(loaded).toContain("node:zlib");
      expect(loaded).toContain("packages/hypervisor/src/machine.ts");
      for (const m of ON_DEMAND) expect(loaded).not.toContain(m);
    });

    it("--api-sock loads node:http when it opens the socket", () => {
      const sock = join(dir, "api.sock");
      const r = visor(
        ["--import", HOOK, ...SOURCE],
        ["run", "--bios", join(ISA, "rv64m.elf"), "--api-sock", sock],
      );
      expect(r.status, r.stderr).toBe(0);
      const loaded = modules(r.stderr);
      expect(loaded).toContain("node:http");
      expect(loaded).toContain("apps/vmm/src/api/server.ts");
      expect(existsSync(sock)).toBe(false); // closed and removed at exit
    });
  },
);

describe("--stats", () => {
  it("prints how long each start-up phase took (a bare-metal program has no warm-up)", () => {
    const r = visor(SOURCE, ["run", "--bios", join(ISA, "rv64m.elf"), "--stats"]);
    expect(r.status, r.stderr).toBe(0);
    const m =
      /^start-up: (\d+) ms before the guest's first instruction \(Node and main\.ts (\d+), modules (\d+), kernel and disks (\d+), machine (\d+)\)$/m.exec(
        r.stderr,
      );
    expect(m, r.stderr).not.toBeNull();
    const [total, ...phases] = m!.slice(1).map(Number);
    // each phase rounded on its own: the sum is within a millisecond per phase
    const sum = phases.reduce((a, b) => a + b, 0);
    expect(Math.abs(sum - total!)).toBeLessThanOrEqual(phases.length);
  });
});

describe.each([
  ["the sources", SOURCE, true],
  ["dist/main.js", [DIST], existsSync(DIST)],
] as const)("the compile cache, from %s (dist/ is made by pnpm build)", (_what, entry, present) => {
  it.skipIf(!present)("is filled in the temporary directory", () => {
    const tmp = join(dir, `tmp-${entry.length}`);
    mkdirSync(tmp);
    const r = visor(entry, ["--version"], { TMPDIR: tmp });
    expect(r.status, r.stderr).toBe(0);
    const cache = join(tmp, "node-compile-cache");
    expect(existsSync(cache)).toBe(true);
    const files = readdirSync(cache).flatMap((v) => readdirSync(join(cache, v)));
    expect(files.length).toBeGreaterThan(0);
  });

  it.skipIf(!present)("an unusable cache directory is not an error", () => {
    const file = join(dir, "not-a-directory");
    writeFileSync(file, "");
    for (const e of [{ TMPDIR: file }, { NODE_COMPILE_CACHE: file }] as Record<string, string>[]) {
      const r = visor(entry, ["--version"], e);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^visor /);
      expect(r.stderr).toBe("");
    }
  });
});
