/** Runs one surface: for a time budget (`pnpm fuzz`) or a fixed count (CI). */
import fc from "fast-check";
import type { FuzzSurface } from "./surface.ts";

export interface FuzzResult {
  name: string;
  /** Inputs run to completion. */
  inputs: number;
  ms: number;
  /** The shrunk counterexample and its error, when an invariant broke. */
  failure?: string;
  /** Guided runs: the corpus size, and coverage features this surface's run added. */
  corpus?: number;
  features?: number;
}

export interface RunLimits {
  /** Stop after this many milliseconds (pnpm fuzz). */
  timeMs?: number;
  /** Stop after this many inputs (CI). */
  runs?: number;
  seed?: number;
}

export async function runSurface<T>(s: FuzzSurface<T>, limits: RunLimits): Promise<FuzzResult> {
  let inputs = 0;
  const t0 = performance.now();
  await s.setup?.();
  try {
    const prop = fc.asyncProperty(s.arbitrary, async (input) => {
      await s.check(input);
      inputs++;
    });
    const details = await fc.check(prop, {
      numRuns: limits.runs ?? Number.MAX_SAFE_INTEGER,
      ...(limits.timeMs !== undefined ? { interruptAfterTimeLimit: limits.timeMs } : {}),
      ...(limits.seed !== undefined ? { seed: limits.seed } : {}),
      markInterruptAsFailure: false,
      endOnFailure: false,
    });
    const ms = performance.now() - t0;
    if (details.failed) {
      const err = details.errorInstance;
      const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      return {
        name: s.name,
        inputs,
        ms,
        failure: `${msg}\n  seed ${details.seed}, path ${details.counterexamplePath}\n  input ${fc.stringify(details.counterexample)}`,
      };
    }
    return { name: s.name, inputs, ms };
  } finally {
    await s.teardown?.();
  }
}
