/// <reference types="node" />
/**
 * The cost of the root jail's path resolution (vfs.ts), in process, without the guest:
 * one host lstat, a lookup relative to a held directory four levels down (the held
 * directory is re-validated from the root first), the re-validation alone, and the same
 * file by its absolute path.
 *
 *   node --conditions=source packages/syscall/bench/resolve.ts [DIR]
 *
 * DIR (default: the system's temporary directory) is where the test tree is made. Each
 * line is the best and the median of 5 rounds of 20 000 calls. Used in docs/syscalls.md.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Resolver, ROOT_REF } from "../src/index.ts";
import { NodeFs } from "../src/node/index.ts";

const CALLS = 20_000;
const WARMUP = 2_000;
const ROUNDS = 5;

const root = fs.mkdtempSync(path.join(process.argv[2] ?? os.tmpdir(), "visor-resolve-"));
fs.mkdirSync(path.join(root, "sc/a/b/c"), { recursive: true });
fs.writeFileSync(path.join(root, "sc/a/b/c/f"), "x");
const nfs = new NodeFs(root);
const res = new Resolver(nfs);
const ctx = { exe: () => "/x", fdLink: () => undefined, fdList: () => [] };
const held = res.refOf(res.resolve(ctx, ROOT_REF, "/sc/a/b/c", true));

function time(name: string, fn: () => void): void {
  for (let i = 0; i < WARMUP; i++) fn();
  const us: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < CALLS; i++) fn();
    us.push(((performance.now() - t0) / CALLS) * 1000);
  }
  us.sort((a, b) => a - b);
  console.log(`${name.padEnd(48)} ${us[0]!.toFixed(1)} us best, ${us[ROUNDS >> 1]!.toFixed(1)} us median`);
}

try {
  time("host lstat", () => nfs.lstat("/sc/a/b/c/f"));
  time('"f" relative to the held /sc/a/b/c', () => res.resolve(ctx, held, "f", true));
  time("re-validating the held /sc/a/b/c alone", () => res.locate(ctx, held));
  time("/sc/a/b/c/f (absolute)", () => res.resolve(ctx, ROOT_REF, "/sc/a/b/c/f", true));
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
