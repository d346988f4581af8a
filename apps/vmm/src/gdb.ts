/**
 * `visor run --gdb [HOST:]PORT [--paused]`: a GDB remote stub in front of the machine
 * (docs/debugging.md). One gdb thread per hart; the machine stops for the debugger
 * through `Machine.pause` (the rest of the VMM, its console and sockets, keeps its event
 * loop), and the stub's hook runs on every hart while breakpoints, watchpoints or a
 * single step need it.
 */
import { GdbStub, type GdbTarget } from "@visor/cpu";
import type { GdbServer } from "@visor/cpu/node";
import type { Machine, MachineExit } from "@visor/hypervisor";
import { UserError } from "./errors.ts";
import { exitStatus } from "./exit-status.ts";

/** Parse --gdb [HOST:]PORT (port 0: any free one; the host defaults to 127.0.0.1). */
export function parseGdbAddress(s: string): { host: string; port: number } {
  const m = /^(?:(.+):)?(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) throw new UserError(`--gdb: '${s}' is not [HOST:]PORT`);
  return { host: m[1] ?? "127.0.0.1", port };
}

/** The machine as the stub's target. */
function machineTarget(machine: Machine): GdbTarget {
  let release: (() => void) | undefined;
  return {
    system: true,
    ram: machine.ram,
    // harts the guest has not started (SBI HSM) are not threads yet: they cannot be stepped
    threads: () =>
      machine.vcpus.flatMap((v, i) => (v.running || i === 0 ? [{ id: i + 1, hart: v.hart }] : [])),
    pause: () => {
      release ??= machine.pause();
    },
    resume: () => {
      const r = release;
      release = undefined;
      r?.();
    },
    setHook: (hook) => {
      for (const v of machine.vcpus) v.hart.debugHook = hook;
    },
    kill: () => machine.stop(),
  };
}

export interface MachineDebugger {
  /** Tell the client how the guest ended, and stop listening. */
  exited(exit: MachineExit): void;
  /** The VMM quits (Ctrl-A X): a VM held by gdb must not keep it waiting. */
  release(): void;
  close(): void;
}

/**
 * Listen for gdb at host:port (say where on stderr) and, with `paused`, hold the machine
 * until gdb continues it.
 */
export async function debugMachine(
  machine: Machine,
  { host, port }: { host: string; port: number },
  paused: boolean,
): Promise<MachineDebugger> {
  const stub = new GdbStub(machineTarget(machine), paused);
  stub.log = (line) => process.stderr.write(`visor: ${line}\r\n`);
  let server: GdbServer;
  try {
    const { listenGdb } = await import("@visor/cpu/node");
    server = await listenGdb(stub, host, port);
  } catch (e) {
    throw new UserError(`--gdb ${host}:${port}: ${(e as Error).message}`);
  }
  process.stderr.write(
    `visor: gdb stub listening on ${server.host}:${server.port}${paused ? " (the VM waits for gdb to continue it)" : ""}\n`,
  );
  return {
    exited: (exit) => {
      // gdb sees the status visor itself exits with (a panic or a reset is 1).
      stub.guestExited(exitStatus(exit).code);
      server.close();
    },
    release: () => stub.release(),
    close: () => server.close(),
  };
}
