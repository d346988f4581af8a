/**
 * Checks the published packages as a new user gets them (run by .ci/run after publint):
 *
 *   pnpm build && node scripts/check-packages.ts [--node PATH]...
 *
 * 1. `pnpm pack`s every public package of packages/* (the tarball npm would publish);
 * 2. checks each tarball: a LICENSE, a README, only dist/ files, and a package.json with
 *    no workspace-only `source` export condition and no `workspace:` version;
 * 3. `npm install`s all the tarballs into an empty project in a temporary folder (their
 *    third-party dependencies, such as koffi, come from the npm cache or the registry, as
 *    for a user);
 * 4. runs every README example block (scripts/readme-example.ts's rules: ```ts blocks, not
 *    `no-run`), unchanged, in that project: under this script's Node, with and without
 *    `--conditions=source`, and under each extra `--node PATH` given;
 * 5. typechecks those examples against the installed packages' declarations (strict,
 *    `moduleResolution: nodenext`, the workspace's TypeScript and @types/node), as a
 *    TypeScript user of the packages would.
 *
 * Exits 1 naming the first thing that failed.
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
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { extractTsBlocks } from "./readme-example.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The longest an example may run; a hang fails the check instead of stalling CI. */
const EXAMPLE_TIMEOUT_MS = 120_000;

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  exports?: Record<string, unknown>;
  dependencies?: Record<string, string>;
}

class CheckError extends Error {}

function fail(msg: string): never {
  throw new CheckError(msg);
}

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8" });
  if (r.status !== 0) fail(`${cmd} ${args.join(" ")} (in ${cwd}) failed:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** Every string key anywhere in an `exports` value (conditions are keys). */
function conditionKeys(value: unknown, out: string[] = []): string[] {
  if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      out.push(k);
      conditionKeys(v, out);
    }
  }
  return out;
}

function parseArgs(argv: string[]): string[] {
  const nodes: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--node" && argv[i + 1] !== undefined) nodes.push(argv[++i]!);
    else fail(`unknown argument ${JSON.stringify(argv[i])} (usage: check-packages.ts [--node PATH]...)`);
  }
  return nodes;
}

function main(): void {
  const extraNodes = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const packages = readdirSync(join(ROOT, "packages"))
    .map((d) => join(ROOT, "packages", d))
    .filter((d) => existsSync(join(d, "package.json")))
    .map((dir) => ({
      dir,
      manifest: JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest,
    }))
    .filter((p) => p.manifest.private !== true);
  if (packages.length === 0) fail("no public package under packages/");

  const work = mkdtempSync(join(tmpdir(), "visor-check-packages-"));
  try {
    const tarballs = join(work, "tarballs");
    mkdirSync(tarballs);
    for (const { dir, manifest } of packages) {
      if (!existsSync(join(dir, "dist"))) fail(`${manifest.name}: no dist/ (run pnpm build first)`);
      run("pnpm", ["pack", "--pack-destination", tarballs], dir);
    }

    // What is inside each tarball.
    for (const file of readdirSync(tarballs)) {
      const tgz = join(tarballs, file);
      const entries = run("tar", ["tzf", tgz], work).trim().split("\n");
      for (const must of ["package/LICENSE", "package/README.md", "package/package.json"])
        if (!entries.includes(must)) fail(`${file}: no ${must.slice("package/".length)}`);
      const stray = entries.filter(
        (e) => !/^package\/(dist\/.*|LICENSE|README\.md|package\.json)$/.test(e) && !e.endsWith("/"),
      );
      if (stray.length > 0) fail(`${file}: files outside dist/: ${stray.join(", ")}`);
      const packed = JSON.parse(
        execFileSync("tar", ["xzOf", tgz, "package/package.json"], { encoding: "utf8" }),
      );
      if (conditionKeys(packed.exports).includes("source"))
        fail(`${file}: the published exports keep the workspace-only "source" condition`);
      for (const [dep, range] of Object.entries((packed.dependencies ?? {}) as Record<string, string>))
        if (range.startsWith("workspace:")) fail(`${file}: dependency ${dep} is still ${range}`);
    }

    // A new user's project.
    const project = join(work, "project");
    mkdirSync(project);
    writeFileSync(
      join(project, "package.json"),
      `${JSON.stringify({ name: "visor-user", private: true, type: "module" }, null, 2)}\n`,
    );
    const tgzs = readdirSync(tarballs).map((f) => join(tarballs, f));
    run(
      "npm",
      ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", ...tgzs],
      project,
    );

    const nodes: { label: string; argv: string[] }[] = [
      { label: `node ${process.version}`, argv: [process.execPath] },
      {
        label: `node ${process.version} --conditions=source`,
        argv: [process.execPath, "--conditions=source"],
      },
      ...extraNodes.map((n) => ({
        label: `node ${execFileSync(n, ["--version"], { encoding: "utf8" }).trim()}`,
        argv: [n],
      })),
    ];
    let examples = 0;
    for (const { dir, manifest } of packages) {
      const readme = join(dir, "README.md");
      const blocks = extractTsBlocks(readFileSync(readme, "utf8"));
      if (blocks.length === 0) fail(`${manifest.name}: README.md has no example to run`);
      for (const block of blocks) {
        const file = join(project, `${manifest.name.replace(/[@/]/g, "_")}-line${block.line}.ts`);
        writeFileSync(file, block.code);
        for (const node of nodes) {
          const r = spawnSync(node.argv[0]!, [...node.argv.slice(1), file], {
            cwd: project,
            encoding: "utf8",
            timeout: EXAMPLE_TIMEOUT_MS,
          });
          if (r.status !== 0) {
            const why = r.error !== undefined ? String(r.error) : `exit ${r.status ?? r.signal}`;
            fail(
              `${manifest.name} README.md line ${block.line} under ${node.label}: ${why}\n${r.stdout}${r.stderr}`,
            );
          }
          examples++;
        }
      }
    }
    // The examples against the published type declarations.
    writeFileSync(
      join(project, "tsconfig.json"),
      `${JSON.stringify(
        {
          compilerOptions: {
            target: "ES2023",
            lib: ["ES2023"],
            module: "NodeNext",
            moduleResolution: "NodeNext",
            strict: true,
            noEmit: true,
            allowImportingTsExtensions: true,
            types: ["node"],
            typeRoots: [join(ROOT, "node_modules", "@types")],
          },
          include: ["*.ts"],
        },
        null,
        2,
      )}\n`,
    );
    run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", project], project);

    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `check-packages: ${packages.length} packages packed and installed; ${examples} README example runs passed (${nodes
        .map((n) => n.label)
        .join("; ")}) and typecheck against the published declarations, in ${seconds}s`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  main();
} catch (e) {
  if (!(e instanceof CheckError)) throw e;
  console.error(`check-packages: ${e.message}`);
  process.exit(1);
}
