/**
 * A debugger's hold on a hart (gdb/stub.ts). While a hook is set, `Hart.run` runs the
 * hart one instruction at a time, asking the hook before each one whether to stop there
 * (a breakpoint, a watched access) and after it whether to stop now (a finished single
 * step). Without a hook `run` pays one field test per call and nothing per instruction.
 */
import type { HartCore } from "./core.ts";
import { EXIT_BUDGET, EXIT_STOP, type HartExit } from "./exit.ts";

/** `H` is the Hart (a type parameter, so that this module does not import hart.ts). */
export interface HartDebugHook<H> {
  /** Before the instruction at the pc (`pcLo`: its low 32 bits, as an int32): true stops the hart there. */
  before(hart: H, pcLo: number): boolean;
  /** After an instruction (`e`: how its one-instruction run ended): true stops the hart. */
  after(hart: H, e: HartExit): boolean;
}

/** A hart's debugging state (in its TypeScript-private tier). */
export interface DebugState<H> {
  hook: HartDebugHook<H> | undefined;
  /** Inside a hooked run: `run` interprets, and keeps the LR reservation between steps. */
  hooked: boolean;
}

/**
 * `Hart.run(budget)` under a hook: `step` runs one instruction (`Hart.run(1)`). Returns a
 * stop exit where the hook stopped the hart, or the exit of an instruction its host must
 * handle (a trap exit, WFI), so the run's caller sees what it would have seen.
 */
export function runHooked<H>(
  hart: H,
  c: HartCore,
  d: DebugState<H>,
  budget: number,
  step: () => HartExit,
): HartExit {
  const hook = d.hook!;
  c.resValid = false;
  d.hooked = true;
  try {
    for (let n = 0; n < budget; n++) {
      if (hook.before(hart, c.pcLo)) return EXIT_STOP;
      const e = step();
      if (hook.after(hart, e)) return e.kind === "budget" ? EXIT_STOP : e;
      if (e.kind !== "budget") return e;
    }
    return EXIT_BUDGET;
  } finally {
    d.hooked = false;
  }
}
