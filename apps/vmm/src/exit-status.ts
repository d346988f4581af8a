/**
 * `visor run`'s exit status: how the guest ended, as a shell sees it (docs/exit-status.md).
 *
 *   power-off (SBI shutdown, finisher PASS)        0
 *   finisher FAIL with code N (the bundled /init   N & 0xff, or 1 when that is 0
 *     reports a failing visor.run= command so)
 *   kernel panic (pvpanic), whatever panic= says   1, "visor: guest kernel panicked"
 *   reset (SBI reboot, finisher RESET)              1, "visor: the guest reset the machine ..."
 *   bare-metal HTIF program                         0 when it passed, else 1
 *   Ctrl-A X                                        0
 *
 * visor never reboots a guest: a reset ends the run, as QEMU's -no-reboot does, but with
 * a non-zero status (QEMU's is 0), because a guest that resets under visor (`reboot -f`,
 * a panic with panic=N and no pvpanic driver) did not finish its work.
 */
import type { MachineExit } from "@visor/hypervisor";

export interface ExitStatus {
  code: number;
  /** A line for stderr (without "visor: " and the newline), when the end needs saying. */
  message?: string;
}

export function exitStatus(exit: MachineExit): ExitStatus {
  switch (exit.kind) {
    case "poweroff":
    case "stopped":
      return { code: 0 };
    case "fail":
      return {
        code: exit.code & 0xff || 1,
        message: `guest reported failure (code ${exit.code})`,
      };
    case "panic":
      return { code: 1, message: "guest kernel panicked" };
    case "reset":
      return { code: 1, message: "the guest reset the machine (visor does not reboot guests)" };
    case "htif":
      return exit.code === 0 ? { code: 0 } : { code: 1, message: `FAIL test ${exit.code}` };
  }
}
