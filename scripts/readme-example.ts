/**
 * Runs the usage examples of a package README, so that the README cannot rot.
 *
 *   await runReadmeExample("packages/io-bus/README.md")   // from a vitest test
 *   node scripts/readme-example.ts packages/io-bus/README.md
 *
 * Every fenced block whose info string is `ts` or `typescript` runs as its own ES module,
 * in README order; a block whose info string also says `no-run` (```ts no-run) is
 * skipped. A block checks itself with `node:assert` and fails by throwing (top-level
 * await is fine). Import specifiers are rewritten before running:
 * - `@visor/<pkg>` and `@visor/<pkg>/<sub>` go to that workspace package's TypeScript
 *   source, through the `source` condition of its package.json `exports`, so no build
 *   is needed and a package's README may import the package itself;
 * - `./x` and `../x` are taken relative to the README's folder.
 * Each block is written to `<repo>/tmp/readme-examples/` (git-ignored, inside the repo so
 * that vitest transforms it like any test file), imported, and deleted.
 *
 * Node-only: it lives outside the packages, which must not import `node:` modules.
 */

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The repository root: this file lives in `<root>/scripts/`. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TMP_DIR = join(ROOT, "tmp", "readme-examples");

/** One runnable fenced block of a README. */
export interface ReadmeBlock {
  /** 1-based line of the opening fence, for error messages. */
  line: number;
  code: string;
}

/**
 * The runnable blocks of a Markdown text: fences of ``` or ~~~ (three or more, indented
 * at most three spaces) whose info string's first word is `ts` or `typescript` and that
 * do not say `no-run`.
 */
export function extractTsBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: ReadmeBlock[] = [];
  let fence: { char: string; length: number; run: boolean; line: number; body: string[] } | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (fence === null) {
      const open = /^ {0,3}(`{3,}|~{3,})\s*([^`]*)$/.exec(line);
      if (open === null) continue;
      const words = open[2]!.trim().split(/\s+/);
      const lang = words[0]?.toLowerCase() ?? "";
      const run = (lang === "ts" || lang === "typescript") && !words.includes("no-run");
      fence = { char: open[1]![0]!, length: open[1]!.length, run, line: i + 1, body: [] };
    } else {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
      if (close !== null && close[1]![0] === fence.char && close[1]!.length >= fence.length) {
        if (fence.run) blocks.push({ line: fence.line, code: fence.body.join("\n") });
        fence = null;
      } else {
        fence.body.push(line);
      }
    }
  }
  if (fence !== null) throw new Error(`unclosed code fence opened at line ${fence.line}`);
  return blocks;
}

let workspace: Map<string, string> | undefined;

/** Workspace package name -> package folder, read from packages/* and apps/*. */
function workspacePackages(): Map<string, string> {
  if (workspace !== undefined) return workspace;
  workspace = new Map();
  for (const group of ["packages", "apps"]) {
    const groupDir = join(ROOT, group);
    if (!existsSync(groupDir)) continue;
    for (const entry of readdirSync(groupDir, { withFileTypes: true })) {
      const manifest = join(groupDir, entry.name, "package.json");
      if (!entry.isDirectory() || !existsSync(manifest)) continue;
      const name: unknown = JSON.parse(readFileSync(manifest, "utf8")).name;
      if (typeof name === "string") workspace.set(name, join(groupDir, entry.name));
    }
  }
  return workspace;
}

/** The source file a `@visor/...` specifier names, through the `source` export condition. */
function resolveWorkspaceSpecifier(specifier: string): string {
  const m = /^(@visor\/[^/]+)(\/.*)?$/.exec(specifier);
  const dir = m === null ? undefined : workspacePackages().get(m[1]!);
  if (m === null || dir === undefined) throw new Error(`"${specifier}" is not a workspace package`);
  const subpath = m[2] === undefined ? "." : `.${m[2]}`;
  const exports: unknown = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).exports;
  const entry =
    typeof exports === "object" && exports !== null
      ? (exports as Record<string, unknown>)[subpath]
      : undefined;
  const source =
    typeof entry === "object" && entry !== null ? (entry as Record<string, unknown>).source : undefined;
  if (typeof source !== "string") {
    throw new Error(`"${specifier}": ${join(dir, "package.json")} has no exports["${subpath}"].source`);
  }
  return join(dir, source);
}

/** Relative specifier from `fromDir` to `target`, with forward slashes. */
function specifierFrom(fromDir: string, target: string): string {
  const rel = relative(fromDir, target).split("\\").join("/");
  return rel.startsWith(".") ? rel : `./${rel}`;
}

/** Rewrite `@visor/*` and relative import specifiers for a module written to TMP_DIR. */
export function rewriteImports(code: string, readmeDir: string): string {
  // `from "x"`, `import "x"`, `import("x")` and `export ... from "x"`.
  return code.replace(
    /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])([^"'\n]+)\2/g,
    (whole, lead: string, quote: string, specifier: string) => {
      let target: string;
      if (specifier.startsWith("@visor/")) target = resolveWorkspaceSpecifier(specifier);
      else if (specifier.startsWith("./") || specifier.startsWith("../"))
        target = resolve(readmeDir, specifier);
      else return whole;
      return `${lead}${quote}${specifierFrom(TMP_DIR, target)}${quote}`;
    },
  );
}

let serial = 0;

/**
 * Run every runnable block of the README at `readmePath` (absolute, or relative to the
 * repository root). Resolves to the number of blocks run; rejects, naming the README and
 * the block's line, if a block throws, and if the README has no runnable block at all.
 */
export async function runReadmeExample(readmePath: string): Promise<number> {
  const path = isAbsolute(readmePath) ? readmePath : join(ROOT, readmePath);
  const shown = relative(ROOT, path);
  const blocks = extractTsBlocks(readFileSync(path, "utf8"));
  if (blocks.length === 0) throw new Error(`${shown}: no \`\`\`ts block to run`);
  mkdirSync(TMP_DIR, { recursive: true });
  const stem = basename(dirname(path)).replace(/[^A-Za-z0-9_-]/g, "_");
  for (const block of blocks) {
    const file = join(TMP_DIR, `${stem}-${process.pid}-${++serial}-line${block.line}.ts`);
    const header = `// Generated from ${shown} line ${block.line} by scripts/readme-example.ts; deleted after the run.\n`;
    writeFileSync(file, header + rewriteImports(block.code, dirname(path)));
    try {
      await import(pathToFileURL(file).href);
    } catch (error) {
      throw new Error(`${shown}: the example at line ${block.line} failed: ${String(error)}`, {
        cause: error,
      });
    } finally {
      rmSync(file, { force: true });
    }
  }
  return blocks.length;
}

if (import.meta.main) {
  const targets = process.argv.slice(2);
  if (targets.length === 0) {
    console.error("usage: node scripts/readme-example.ts <README.md>...");
    process.exit(2);
  }
  for (const target of targets) {
    const n = await runReadmeExample(target);
    console.log(`${target}: ${n} example block(s) ran`);
  }
}
