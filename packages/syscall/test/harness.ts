/// <reference types="node" />
/** Run a guest program under visor with an in-memory console over a host root directory. */
import { type KernelStats, MemoryConsole, runProgram } from "../src/index.ts";
import { createNodeHost } from "../src/node/index.ts";

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
  stats: KernelStats | undefined;
}

export async function runGuest(
  root: string,
  argv: string[],
  opts: {
    env?: string[];
    stdin?: string | Uint8Array;
    memoryBytes?: number;
    cwd?: string;
    tty?: boolean;
    maxTasks?: number;
  } = {},
): Promise<RunResult> {
  const console = new MemoryConsole(opts.stdin ?? "", { tty: opts.tty ?? false });
  const host = createNodeHost({ root, console });
  let stats: KernelStats | undefined;
  try {
    const status = await runProgram({
      host,
      program: argv[0]!,
      argv,
      env: opts.env ?? [],
      cwd: opts.cwd,
      memoryBytes: opts.memoryBytes ?? 256 * 1024 * 1024,
      ...(opts.maxTasks !== undefined ? { maxTasks: opts.maxTasks } : {}),
      onStats: (s) => {
        stats = s;
      },
    });
    return { status, stdout: console.text(1), stderr: console.text(2), stats };
  } finally {
    host.close();
  }
}
