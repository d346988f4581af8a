/**
 * CI's share of fuzzing: every surface runs its fixed `ciRuns` inputs with a fresh seed
 * each time (a failure prints the seed to replay with `pnpm fuzz NAME --seed N`).
 */
import { describe, expect, it } from "vitest";
import { loadSurfaces } from "../src/registry.ts";
import { runSurface } from "../src/run.ts";

const surfaces = await loadSurfaces();

describe("fuzz surfaces (CI budget)", () => {
  it("has surfaces", () => {
    expect(surfaces.length).toBeGreaterThan(0);
  });
  for (const s of surfaces) {
    it(`${s.name}: ${s.ciRuns} inputs keep every invariant`, async () => {
      const r = await runSurface(s, { runs: s.ciRuns });
      expect(r.failure).toBeUndefined();
      expect(r.inputs).toBe(s.ciRuns);
    });
  }
});
