/// <reference types="node" />
/**
 * `visor exec --gdb [HOST:]PORT [--paused]`: a GDB remote stub in front of the program
 * (docs/debugging.md). One gdb thread per live task (its tid); addresses are the
 * process's own (user mode, its page tables), and a page that is mapped but not yet
 * present is brought in as the program's own access would. The program stops for the
 * debugger through `Kernel.pause`.
 */
import { GdbStub, type GdbTarget } from "@visor/cpu";
import { listenGdb } from "@visor/cpu/node";
import type { Kernel } from "../kernel.ts";
import { ACCESS_R, ACCESS_W, USER_TOP } from "../mm.ts";
import { TASK_DEAD, TASK_ZOMBIE, type Task } from "../task.ts";

/** The signals `visor exec` forwards to the program (node/index.ts, forwardSignals). */
const HOST_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;

/** Parse --gdb [HOST:]PORT (port 0: any free one; the host defaults to 127.0.0.1). */
export function parseGdbAddress(s: string): { host: string; port: number } | undefined {
  const m = /^(?:(.+):)?(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) > 65535) return undefined;
  return { host: m[1] ?? "127.0.0.1", port: Number(m[2]) };
}

function kernelTarget(k: Kernel): GdbTarget {
  let release: (() => void) | undefined;
  const live = (): Task[] =>
    [...k.tasks.values()].filter((t) => t.state !== TASK_ZOMBIE && t.state !== TASK_DEAD);
  return {
    system: false,
    ram: k.ram,
    threads: () => live().map((t) => ({ id: t.pid, hart: t.hart })),
    pause: () => {
      release ??= k.pause();
    },
    resume: () => {
      const r = release;
      release = undefined;
      r?.();
    },
    setHook: (hook) => {
      k.debugHook = hook;
    },
    kill: () => k.killAll(),
    faultIn: (thread, va, write) => {
      if (va >= BigInt(USER_TOP)) return false;
      const t = k.tasks.get(thread.id);
      return t?.mm.fault(Number(va), write ? ACCESS_W : ACCESS_R) === true;
    },
  };
}

export interface ProgramDebugger {
  /** Tell the client the program's exit status, and stop listening. */
  exited(status: number): void;
  close(): void;
}

/**
 * Listen for gdb (say where through `log`) and, with `paused`, hold the program until
 * gdb continues it. Rejects when the address cannot be listened on.
 */
export async function debugProgram(
  k: Kernel,
  addr: { host: string; port: number },
  paused: boolean,
  log: (line: string) => void,
): Promise<ProgramDebugger> {
  const stub = new GdbStub(kernelTarget(k), paused);
  stub.log = log;
  const server = await listenGdb(stub, addr.host, addr.port);
  // A signal for the program (Ctrl-C in visor's terminal: the host forwards it) while it
  // waits for a gdb that is not there (--paused) would wait with it: the program is let
  // go to take it. With gdb attached, gdb decides when the program runs again.
  const onSignal = () => {
    if (!stub.attached) stub.release();
  };
  for (const s of HOST_SIGNALS) process.on(s, onSignal);
  const close = () => {
    for (const s of HOST_SIGNALS) process.off(s, onSignal);
    server.close();
  };
  log(
    `gdb stub listening on ${server.host}:${server.port}${paused ? " (the program waits for gdb to continue it)" : ""}`,
  );
  return {
    exited: (status) => {
      stub.guestExited(status);
      close();
    },
    close,
  };
}
