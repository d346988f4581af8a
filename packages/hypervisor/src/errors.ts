/**
 * The hypervisor's errors, in a module of their own so that every part of the exit path
 * (vcpu.ts, shadow.ts, machine.ts) can throw them without importing the machine.
 */

/** A fatal guest error (an exit nobody handles): one line with the pc and cause. */
export class GuestError extends Error {
  override name = "GuestError";
}
