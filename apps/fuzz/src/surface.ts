/**
 * What a fuzz surface is. Each file in `surfaces/` default-exports one `FuzzSurface` (or an
 * array of them) for one thing a hostile guest or peer controls. The runner (`main.ts`,
 * `pnpm fuzz`) feeds it generated inputs for a time budget; the CI test (`fuzz.test.ts`)
 * feeds it a fixed number of inputs, so CI never depends on the machine's speed.
 *
 * `check` throws (or rejects) when an invariant breaks: an uncaught host exception, an
 * access outside guest RAM, memory that grows without bound, a host path touched outside
 * the root. Errors the surface expects (a clean refusal of bad input) are caught inside
 * `check` and are not failures.
 */
import type fc from "fast-check";

export interface FuzzSurface<T = unknown> {
  /** Short name used on the command line: `pnpm fuzz virtio-blk`. */
  name: string;
  /** One line: what the input is and which invariants are checked. */
  description: string;
  /** The inputs: built with fast-check so failures shrink to a small counterexample. */
  arbitrary: fc.Arbitrary<T>;
  /** Runs one input; throws when an invariant breaks. */
  check(input: T): void | Promise<void>;
  /** Inputs per CI run (`pnpm test`); keep the surface's CI share to a few seconds. */
  ciRuns: number;
  /** Called once before the first input and once after the last (temporary trees, etc.). */
  setup?(): void | Promise<void>;
  teardown?(): void | Promise<void>;
}

/** Thrown by `check` when an invariant breaks, with a message that says which. */
export class InvariantError extends Error {
  override name = "InvariantError";
}

export function invariant(ok: unknown, message: string): asserts ok {
  if (!ok) throw new InvariantError(message);
}
