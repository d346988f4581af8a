/// <reference types="node" />
/**
 * visor exec side by side with qemu-riscv64 (and the host, natively, where a host build
 * exists) on the same inputs:
 *   - sha256sum of a 16 MiB file, and a 20 000-iteration shell loop (busybox);
 *   - the system-call cost ladder of fixtures/guests/syscost.c: one call per byte, stdio
 *     buffering, writev, io_uring batches, small reads versus mmap.
 *
 *   node --conditions=source packages/syscall/bench/compare.ts [--quick] [--runs N]
 *
 * Each cell is the best of N runs (default 3): the machine is shared, and the minimum is
 * the least disturbed measurement.
 *
 * qemu-riscv64 and a host C compiler are optional: missing peers are reported as such.
 * Prints a Markdown table (used in docs/syscalls.md).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { makeRoot } from "../test/root.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, "..", "src", "node", "cli.ts");
const guests = path.join(here, "..", "fixtures", "guests");
const quick = process.argv.includes("--quick");
const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg >= 0 ? Math.max(1, Number(process.argv[runsArg + 1])) : 3;

function best<T extends { ms: number }>(f: () => T): T {
  let b = f();
  for (let i = 1; i < RUNS; i++) {
    const r = f();
    if (r.ms < b.ms) b = r;
  }
  return b;
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), "visor-bench-"));
makeRoot(root);
fs.copyFileSync(path.join(guests, "syscost"), path.join(root, "syscost"));
fs.chmodSync(path.join(root, "syscost"), 0o755);
const big = Buffer.alloc(16 * 1024 * 1024);
for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
fs.writeFileSync(path.join(root, "data", "16m.bin"), big);

const have = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const hasQemu = have("qemu-riscv64");
let native: string | undefined;
if (have("cc")) {
  native = path.join(root, "syscost-native");
  if (spawnSync("cc", ["-O2", "-o", native, path.join(guests, "syscost.c")]).status !== 0) native = undefined;
}

interface Run {
  ms: number;
  out: string;
  err: string;
  status: number;
}

function timed(cmd: string, args: string[], cwd?: string): Run {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd, maxBuffer: 1 << 26 });
  return { ms: performance.now() - t0, out: r.stdout, err: r.stderr, status: r.status ?? -1 };
}

function visor(args: string[]): Run & { traps: number; calls: number; insns: number } {
  const code = `import(${JSON.stringify(cli)}).then((m) => m.execMain(process.argv.slice(1))).then((c) => process.exit(c));`;
  const r = timed(process.execPath, [
    "--conditions=source",
    "--input-type=module",
    "-e",
    code,
    "--",
    "--root",
    root,
    "--stats",
    ...args,
  ]);
  const m = /traps to the kernel\s+(\d+) \((\d+) system calls/.exec(r.err);
  const i = /instructions\s+(\d+)/.exec(r.err);
  // The run's own wall time (from --stats): Node's start-up and module loading excluded.
  const w = /wall time\s+([\d.]+) ms/.exec(r.err);
  return {
    ...r,
    ms: Number(w?.[1] ?? r.ms),
    traps: Number(m?.[1] ?? -1),
    calls: Number(m?.[2] ?? -1),
    insns: Number(i?.[1] ?? -1),
  };
}

function qemu(args: string[]): Run | undefined {
  if (!hasQemu) return undefined;
  // Paths are given relative to the root, run from the root: qemu-user sees the host's files.
  return timed("qemu-riscv64", args, root);
}

const fmt = (ms: number | undefined) =>
  ms === undefined ? "n/a" : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
const rows: string[] = [];
rows.push("| workload | visor exec | traps (syscalls) | guest instructions | qemu-riscv64 | native |");
rows.push("|---|---|---|---|---|---|");

function row(name: string, vargs: string[], qargs: string[] | undefined, nargs: string[] | undefined): void {
  const v = best(() => visor(vargs));
  if (v.status !== 0) throw new Error(`visor ${vargs.join(" ")} failed: ${v.err}`);
  const q = qargs === undefined || !hasQemu ? undefined : best(() => qemu(qargs)!);
  if (q !== undefined && q.status !== 0) throw new Error(`qemu ${qargs!.join(" ")} failed: ${q.err}`);
  if (q !== undefined && q.out.split(/\s/)[0] !== v.out.split(/\s/)[0])
    throw new Error(`${name}: visor and qemu disagree:\n${v.out}\n${q.out}`);
  const n = nargs !== undefined && native !== undefined ? best(() => timed(native!, nargs, root)) : undefined;
  rows.push(
    `| ${name} | ${fmt(v.ms)} | ${v.traps} (${v.calls}) | ${(v.insns / 1e6).toFixed(1)} M | ${fmt(q?.ms)} | ${fmt(n?.ms)} |`,
  );
  process.stderr.write(`${name}: done\n`);
}

const loop = quick ? 2000 : 20000;
const n = quick ? 20000 : 200000;
row(
  "busybox sha256sum, 16 MiB file",
  ["/bin/busybox", "sha256sum", "/data/16m.bin"],
  ["bin/busybox", "sha256sum", "data/16m.bin"],
  undefined,
);
row(
  `busybox sh, ${loop}-iteration loop`,
  ["/bin/sh", "-c", `i=0; while [ $i -lt ${loop} ]; do i=$((i+1)); done; echo $i`],
  ["bin/busybox", "sh", "-c", `i=0; while [ $i -lt ${loop} ]; do i=$((i+1)); done; echo $i`],
  undefined,
);
for (const mode of ["getpid", "write1", "stdio", "writev", "uring", "sqpoll"]) {
  const noQemu = mode === "uring" || mode === "sqpoll"; // qemu-user 7.2 has no io_uring
  row(
    `syscost ${mode} ${n}`,
    ["/syscost", mode, String(n)],
    noQemu ? undefined : ["syscost", mode, String(n)],
    [mode, String(n)],
  );
}
row(
  "syscost read 16 MiB, 64 B reads",
  ["/syscost", "read", "/data/16m.bin", "64"],
  ["syscost", "read", "data/16m.bin", "64"],
  ["read", "data/16m.bin", "64"],
);
row(
  "syscost read 16 MiB, 64 KiB reads",
  ["/syscost", "read", "/data/16m.bin", "65536"],
  ["syscost", "read", "data/16m.bin", "65536"],
  ["read", "data/16m.bin", "65536"],
);
row(
  "syscost mmap 16 MiB",
  ["/syscost", "mmap", "/data/16m.bin"],
  ["syscost", "mmap", "data/16m.bin"],
  ["mmap", "data/16m.bin"],
);

fs.rmSync(root, { recursive: true, force: true });
console.log(rows.join("\n"));
console.log(
  `\nBest of ${RUNS} runs. ${os.cpus()[0]?.model ?? "cpu"}, ${os.cpus().length} cores, Node ${process.version}` +
    (hasQemu
      ? `, ${spawnSync("qemu-riscv64", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0]}`
      : ", no qemu-riscv64"),
);
