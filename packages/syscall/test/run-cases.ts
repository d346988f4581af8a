/// <reference types="node" />
/**
 * Child-process runner for the differential suite: runs the named cases (all when none
 * are given) under visor and prints one JSON object { name: { stdout, stderr, status } }.
 *
 * The suite runs the guest in a plain `node --conditions=source` process rather than in
 * vitest's worker because vitest's module transform slows the interpreter's hot loop
 * about tenfold; the child runs the same sources at full speed.
 */
import { CASES, DIFF_ENV } from "./busybox-cases.ts";
import { runGuest } from "./harness.ts";
import { removeRoot, tempRoot } from "./root.ts";

const want = new Set(process.argv.slice(2));
const results: Record<
  string,
  { stdout: string; stderr: string; status: number; ms: number; instructions: number }
> = {};
for (const c of CASES) {
  if (want.size > 0 && !want.has(c.name)) continue;
  const root = tempRoot();
  try {
    const t0 = performance.now();
    const r = await runGuest(root, ["/bin/sh", "-c", c.script], { env: DIFF_ENV, stdin: c.stdin });
    results[c.name] = {
      stdout: r.stdout,
      stderr: r.stderr,
      status: r.status,
      ms: performance.now() - t0,
      instructions: r.stats?.instructions ?? 0,
    };
  } finally {
    removeRoot(root);
  }
}
process.stdout.write(JSON.stringify(results));
