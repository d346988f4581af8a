#!/usr/bin/env node
/**
 * visor-bench: run the benchmark suites, write results.json and report.md (with SVG charts).
 *
 *   pnpm bench [--quick] [--suite NAME]... [--out DIR] [--compare OLD.json] [--reps N]
 */
import { mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative, resolve } from "node:path";
import { compare, loadResults } from "./compare.ts";
import { type Context, findTools, REPO_ROOT } from "./context.ts";
import { environment } from "./env.ts";
import { markdownTable, writeReport } from "./report.ts";
import { bootSuite } from "./suites/boot.ts";
import { cpuSuite } from "./suites/cpu.ts";
import { exitsSuite } from "./suites/exits.ts";
import { kvmSuite } from "./suites/kvm.ts";
import { pagingSuite } from "./suites/paging.ts";
import { syscallsSuite } from "./suites/syscalls.ts";
import type { RunResults, SuiteResult } from "./types.ts";

// visor's children start as `pnpm -s visor` starts them (root package.json): with Node's
// compile cache on from the first file, so type-stripping the entry point (about 40 ms)
// is not part of what is measured. The directory is the one main.ts would turn on anyway.
process.env.NODE_COMPILE_CACHE ??= join(tmpdir(), "node-compile-cache");

const SUITES: { name: string; title: string; run: (ctx: Context) => Promise<SuiteResult> }[] = [
  { name: "cpu", title: "cpu: interpreter and translator speed on compute kernels", run: cpuSuite },
  { name: "boot", title: "boot: start to power-off of the bundled guest", run: bootSuite },
  { name: "exits", title: "exits: cost of one exit of each kind", run: exitsSuite },
  { name: "paging", title: "paging: shadow vs nested page tables", run: pagingSuite },
  { name: "syscalls", title: "syscalls: system-call cost and batching", run: syscallsSuite },
  {
    name: "kvm",
    title: "kvm: KVM exits (port vs MMIO, C vs TypeScript) and x86-64 boot vs QEMU-KVM",
    run: kvmSuite,
  },
];

const HELP = `usage: pnpm bench [options]

  --quick           short runs and fewer repetitions (the whole run in a few minutes)
  --suite NAME      run only this suite (repeatable, or a comma list): ${SUITES.map((s) => s.name).join(", ")}
  --out DIR         where results go (default bench-results/<timestamp>)
  --compare FILE    print the ratio new/old of every figure against an earlier results.json
  --reps N          repetitions per competitor (default: per suite, fewer with --quick)
  --keep-work       keep the scratch directory (native builds, unpacked kernel) in DIR/work
  --help            this text

Writes DIR/results.json (figures with every sample, environment, commit) and DIR/report.md
with charts in DIR/img/. The cpu, boot and syscalls suites run visor twice, with --jit off
(the interpreter alone) and --jit on (the translator), beside the peers. A peer that is
not installed (qemu-riscv64, qemu-system-riscv64, qemu-system-x86_64, gcc) is skipped with a note;
the kvm suite is skipped, saying why, without a usable /dev/kvm.`;

class UsageError extends Error {}

interface Args {
  quick: boolean;
  suites: string[];
  out?: string;
  compare?: string;
  reps?: number;
  keepWork: boolean;
}

function parseArgs(argv: string[]): Args | undefined {
  const a: Args = { quick: false, suites: [], keepWork: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0 && arg.startsWith("--")) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case "--quick":
        a.quick = true;
        break;
      case "--suite":
        for (const s of value().split(",")) {
          if (!SUITES.some((x) => x.name === s))
            throw new UsageError(`unknown suite '${s}' (one of ${SUITES.map((x) => x.name).join(", ")})`);
          if (!a.suites.includes(s)) a.suites.push(s);
        }
        break;
      case "--out":
        a.out = value();
        break;
      case "--compare":
        a.compare = value();
        break;
      case "--reps": {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 100)
          throw new UsageError(`--reps: '${v}' is not a number from 1 to 100`);
        a.reps = n;
        break;
      }
      case "--keep-work":
        a.keepWork = true;
        break;
      case "--help":
      case "-h":
        return undefined;
      default:
        throw new UsageError(`unknown argument '${arg}' (see --help)`);
    }
  }
  return a;
}

function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replace(/:/g, "-");
}

async function main(argv: string[]): Promise<number> {
  let args: Args | undefined;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bench: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (args === undefined) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  // Load the comparison first: a bad file is a usage error, better found before a long run.
  const old = args.compare !== undefined ? loadResults(args.compare) : undefined;

  const started = new Date();
  const outDir = resolve(args.out ?? join(REPO_ROOT, "bench-results", stamp(started)));
  const workDir = join(outDir, "work");
  mkdirSync(workDir, { recursive: true });
  const tools = findTools();
  const ctx: Context = {
    quick: args.quick,
    ...(args.reps !== undefined ? { reps: args.reps } : {}),
    outDir,
    workDir,
    tools,
    node: process.execPath,
    log: (line) => process.stderr.write(`${line}\n`),
  };
  const env = environment(REPO_ROOT, {
    "qemu-riscv64": tools.qemuUser,
    "qemu-system-riscv64": tools.qemuSystem,
    gcc: tools.gcc,
  });
  const show = (p: string) => (isAbsolute(p) ? relative(process.cwd(), p) || "." : p);
  ctx.log(`bench: ${args.quick ? "quick" : "full"} run, results in ${show(outDir)}`);
  ctx.log(
    `bench: commit ${env.commit.slice(0, 12)}${env.commitDirty ? " (dirty)" : ""}, node ${env.node}, ${env.cpuModel}`,
  );

  const t0 = performance.now();
  const results: SuiteResult[] = [];
  const chosen = args.suites.length > 0 ? SUITES.filter((s) => args.suites.includes(s.name)) : SUITES;
  for (const s of chosen) {
    ctx.log(`bench: suite ${s.name}`);
    const st = performance.now();
    let r: SuiteResult;
    try {
      r = await s.run(ctx);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      ctx.log(`bench: suite ${s.name} could not run: ${msg}`);
      r = {
        name: s.name,
        title: s.title,
        about: "",
        status: "skipped",
        notes: [`The suite could not run: ${msg}`],
        figures: [],
        tables: [],
        charts: [],
        durationMs: 0,
      };
    }
    r.durationMs = performance.now() - st;
    results.push(r);
    ctx.log(
      `bench: suite ${s.name}: ${r.status}, ${r.figures.length} figures, ${(r.durationMs / 1000).toFixed(0)} s`,
    );
    for (const n of r.notes) ctx.log(`  note: ${n}`);
  }
  const run: RunResults = {
    schema: 1,
    tool: "@visor/bench",
    quick: args.quick,
    suites: results,
    env,
    durationMs: performance.now() - t0,
  };
  if (!args.keepWork) rmSync(workDir, { recursive: true, force: true });
  const { json, md } = writeReport(outDir, run);
  ctx.log(`bench: wrote ${show(json)} and ${show(md)} in ${(run.durationMs / 1000).toFixed(0)} s`);

  if (old !== undefined) {
    const c = compare(old, run);
    process.stdout.write(`\nCompared with ${args.compare} (commit ${old.env.commit.slice(0, 12)}):\n\n`);
    process.stdout.write(`${markdownTable(c.table)}\n`);
    if (c.onlyNew.length > 0) process.stdout.write(`\nOnly in this run: ${c.onlyNew.join(", ")}\n`);
    if (c.onlyOld.length > 0) process.stdout.write(`\nOnly in ${args.compare}: ${c.onlyOld.join(", ")}\n`);
  }
  // A failed suite is in the report; the run itself succeeded in measuring what it could.
  const failed = results.filter((r) => r.status === "failed").map((r) => r.name);
  if (failed.length > 0)
    ctx.log(`bench: suites with no result: ${failed.join(", ")} (see the notes in the report)`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
