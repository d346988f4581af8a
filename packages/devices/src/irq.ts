/**
 * Interrupt wiring. A device drives a level-triggered line (TinyEMU's `IRQSignal`,
 * vm-superio's `Trigger`); whoever built the machine decides what the line is connected
 * to (a PLIC source, a bit of `mip`). A device never imports the interrupt controller and
 * the CPU never polls devices.
 */
export interface IrqLine {
  /** Drive the line: `true` = asserted (high), `false` = deasserted. Idempotent. */
  set(level: boolean): void;
}

/** A line connected to nothing, for devices whose interrupt is not wired. */
export const NO_IRQ: IrqLine = { set() {} };

/**
 * A line that remembers its level and counts rising edges. Handy in tests and for
 * machines that poll a level between instruction blocks instead of wiring a callback.
 */
export class IrqLevel implements IrqLine {
  level = false;
  /** Number of low-to-high transitions seen. */
  raised = 0;
  set(level: boolean): void {
    if (level && !this.level) this.raised++;
    this.level = level;
  }
}
