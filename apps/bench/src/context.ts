/**
 * What every suite gets: options, paths, the peers found on this machine, and helpers to
 * build native binaries and to run competitors alternately.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { check, type ProcResult, run, which } from "./proc.ts";

const here = dirname(fileURLToPath(import.meta.url));
export const BENCH_ROOT = resolve(here, "..");
export const REPO_ROOT = resolve(BENCH_ROOT, "../..");

/** Debian's OpenSBI fw_jump for QEMU virt (package opensbi). */
const FW_JUMP = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf";

export interface Tools {
  qemuUser?: string;
  qemuSystem?: string;
  fwJump?: string;
  gcc?: string;
}

export function findTools(): Tools {
  const t: Tools = {};
  const qu = which("qemu-riscv64");
  if (qu) t.qemuUser = qu;
  const qs = which("qemu-system-riscv64");
  if (qs) t.qemuSystem = qs;
  if (existsSync(FW_JUMP)) t.fwJump = FW_JUMP;
  const gcc = which("gcc");
  if (gcc) t.gcc = gcc;
  return t;
}

export interface Context {
  quick: boolean;
  /** Repetitions override (--reps), else each suite's default. */
  reps?: number;
  outDir: string;
  /** Scratch files for this run (native binaries, unpacked kernel, initramfs). */
  workDir: string;
  tools: Tools;
  /** The node binary running the bench (child runners use the same). */
  node: string;
  log(line: string): void;
}

export const paths = {
  fixtures: join(BENCH_ROOT, "fixtures"),
  fixtureBin: join(BENCH_ROOT, "fixtures/riscv64"),
  fixtureSrc: join(BENCH_ROOT, "fixtures/src"),
  vmRunner: join(BENCH_ROOT, "src/runners/vm.ts"),
  visorMain: join(REPO_ROOT, "apps/vmm/src/main.ts"),
  kernelGz: join(REPO_ROOT, "guests/riscv64/Image.gz"),
  initramfs: join(REPO_ROOT, "guests/riscv64/initramfs.cpio.gz"),
};

/** A committed riscv64 fixture binary, or an Error saying how to get it. */
export function fixture(name: string): string {
  const p = join(paths.fixtureBin, name);
  if (!existsSync(p))
    throw new Error(`fixture ${name} is missing (rebuild with apps/bench/fixtures/build.sh)`);
  return p;
}

/** Run a child node process on a TypeScript entry with the workspace's source condition. */
export function runNode(ctx: Context, script: string, args: readonly string[], timeoutMs: number) {
  return run(ctx.node, ["--conditions=source", script, ...args], { cwd: REPO_ROOT, timeoutMs });
}

const nativeCache = new Map<string, Promise<string>>();

/** Compile fixtures/src/NAME.c for the host with gcc (once per run); resolves to the binary. */
export function nativeBinary(ctx: Context, name: string): Promise<string> {
  let p = nativeCache.get(name);
  if (p === undefined) {
    p = (async () => {
      if (ctx.tools.gcc === undefined) throw new Error("gcc is not installed");
      const dir = join(ctx.workDir, "native");
      mkdirSync(dir, { recursive: true });
      const out = join(dir, name);
      // The same flags as the riscv64 build (fixtures/build.sh), for the host.
      const r = await run(
        ctx.tools.gcc,
        [
          "-O2",
          "-ffp-contract=off",
          "-Wall",
          `-I${paths.fixtureSrc}`,
          "-o",
          out,
          join(paths.fixtureSrc, `${name}.c`),
          "-lm",
        ],
        { timeoutMs: 120_000 },
      );
      check(r, `gcc ${name}.c`);
      return out;
    })();
    nativeCache.set(name, p);
  }
  return p;
}

/** The bundled kernel, uncompressed (QEMU 7.2 cannot boot Image.gz), cached in workDir. */
export function uncompressedKernel(ctx: Context): string {
  return gunzippedOnce(ctx, paths.kernelGz, "Image");
}

/**
 * The bundled initramfs decompressed, for QEMU: visor decompresses a gzip initramfs on the
 * host before the guest sees it (@visor/hypervisor hostInitrd), so QEMU gets the same
 * plain cpio and both kernels do the same work. Made once, outside any timing.
 */
export function uncompressedInitramfs(ctx: Context): string {
  return gunzippedOnce(ctx, paths.initramfs, "initramfs.cpio");
}

/** `src` gunzipped into the work directory as `name`, made on first use. */
function gunzippedOnce(ctx: Context, src: string, name: string): string {
  const out = join(ctx.workDir, name);
  if (!existsSync(out)) {
    mkdirSync(ctx.workDir, { recursive: true });
    writeFileSync(out, gunzipSync(readFileSync(src)));
  }
  return out;
}

/**
 * qemu-system-riscv64's arguments for the peer runs of the boot, exits and paging suites:
 * -M virt with one hart, no graphics, OpenSBI fw_jump as firmware.
 */
export function qemuVirtArgs(
  ctx: Context,
  o: { memory: string; kernel: string; initrd?: string; append: string; extra?: string[] },
): string[] {
  return [
    ...["-M", "virt", "-m", o.memory, "-smp", "1", "-nographic", "-bios", ctx.tools.fwJump!],
    ...["-kernel", o.kernel, ...(o.initrd !== undefined ? ["-initrd", o.initrd] : []), "-append", o.append],
    ...(o.extra ?? []),
  ];
}

export interface Competitor<T> {
  name: string;
  /** Why it cannot run here (peer not installed ...), or undefined when it can. */
  unavailable?: string;
  run(rep: number): Promise<T>;
}

export interface Outcome<T> {
  samples: T[];
  errors: string[];
}

/**
 * Run the competitors alternately, A B C A B C ..., `reps` rounds, so slow drifts of the
 * machine's load hit all of them alike. A failing run is recorded and the others go on.
 */
export async function alternate<T>(
  ctx: Context,
  label: string,
  reps: number,
  competitors: readonly Competitor<T>[],
  describe: (s: T) => string,
): Promise<Map<string, Outcome<T>>> {
  const out = new Map<string, Outcome<T>>();
  for (const c of competitors) out.set(c.name, { samples: [], errors: [] });
  for (let rep = 0; rep < reps; rep++) {
    for (const c of competitors) {
      if (c.unavailable !== undefined) continue;
      const o = out.get(c.name)!;
      // After two failures in a row with no success, stop retrying this competitor.
      if (o.samples.length === 0 && o.errors.length >= 2) continue;
      try {
        const s = await c.run(rep);
        o.samples.push(s);
        ctx.log(`  ${label} ${c.name} #${rep + 1}: ${describe(s)}`);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        o.errors.push(msg);
        ctx.log(`  ${label} ${c.name} #${rep + 1}: FAILED ${msg}`);
      }
    }
  }
  return out;
}

/** Find `@@TAG {json}` in output and parse it. */
export function tagged<T>(text: string, tag: string): T {
  const i = text.lastIndexOf(`${tag} `);
  if (i < 0) throw new Error(`no ${tag} line in the runner's output`);
  const end = text.indexOf("\n", i);
  return JSON.parse(text.slice(i + tag.length + 1, end < 0 ? undefined : end)) as T;
}

/** Parse `key=value` pairs of the first line starting with `prefix`. */
export function keyValues(text: string, prefix: string): Record<string, string> | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(prefix)) continue;
    const kv: Record<string, string> = {};
    for (const part of line.slice(prefix.length).trim().split(/\s+/)) {
      const eq = part.indexOf("=");
      if (eq > 0) kv[part.slice(0, eq)] = part.slice(eq + 1);
    }
    return kv;
  }
  return undefined;
}

export type { ProcResult };
