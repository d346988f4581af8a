/**
 * Child-process runner: run one static riscv64 Linux program with @visor/syscall, the same
 * library calls `visor exec --stats` makes (runProgram + the Node host), and report the
 * kernel's statistics as one JSON line on stderr:
 *
 *   @@visor-exec {"status":0,"wallMs":...,"stats":{...KernelStats}}
 *
 * The program's own stdout/stderr pass through. Used by the cpu and syscalls suites; a
 * separate process per run keeps one run's JIT and GC state out of the next.
 *
 *   node --conditions=source exec.ts ROOT PROGRAM [ARGS...]
 */
import { type KernelStats, runProgram } from "@visor/syscall";
import { createNodeHost } from "@visor/syscall/node";

const [root, program, ...args] = process.argv.slice(2);
if (root === undefined || program === undefined) {
  process.stderr.write("usage: exec.ts ROOT PROGRAM [ARGS...]\n");
  process.exit(2);
}
const host = createNodeHost({ root });
let stats: KernelStats | undefined;
const t0 = performance.now();
try {
  const status = await runProgram({
    host,
    program,
    argv: [program, ...args],
    env: [],
    memoryBytes: 512 * 1024 * 1024,
    onStats: (s) => {
      stats = s;
    },
  });
  const wallMs = performance.now() - t0;
  process.stderr.write(`@@visor-exec ${JSON.stringify({ status, wallMs, stats })}\n`);
  process.exitCode = status;
} finally {
  host.close();
}
