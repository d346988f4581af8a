import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { Coverage, runGuided, valueFromBytes } from "../src/guided.ts";
import type { FuzzSurface } from "../src/surface.ts";
import { planted } from "./planted.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe("coverage-guided fuzzing", () => {
  it("an arbitrary's value is a pure function of the bytes it reads", () => {
    const arb = fc.record({ xs: fc.array(fc.integer({ min: -5, max: 5 })), s: fc.string() });
    const bytes = Uint8Array.from({ length: 200 }, (_, i) => (i * 37) & 0xff);
    expect(valueFromBytes(arb, bytes)).toEqual(valueFromBytes(arb, bytes));
    const other = bytes.slice();
    other[0]! ^= 0xff;
    expect(valueFromBytes(arb, other)).not.toEqual(valueFromBytes(arb, bytes));
  });

  it("climbs nested comparisons one block at a time and saves the shrunk crash", async () => {
    const cov = new Coverage(/\/apps\/fuzz\/test\/planted\.ts$/);
    await cov.start();
    const surface: FuzzSurface<number[]> = {
      name: "planted",
      description: "four nested comparisons",
      arbitrary: fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 4, maxLength: 4 }),
      check: planted,
      ciRuns: 0,
    };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "visor-guided-"));
    dirs.push(dir);
    const r = await runGuided(surface, cov, {
      timeMs: Number.POSITIVE_INFINITY,
      maxInputs: 2_000,
      seed: 1,
      dir,
    });
    // Blind search needs 8^4 = 4096 inputs on average (and finds it within 2000 with
    // probability 1 - (1 - 1/4096)^2000, about 39%); guided search keeps each input that
    // matches one more element, since that runs a new block.
    expect(r.failure).toContain("planted bug reached");
    expect(r.corpus).toBeGreaterThan(8);
    const crashes = fs.readdirSync(path.join(dir, "crashes"));
    expect(crashes).toHaveLength(1);
    const saved = new Uint8Array(fs.readFileSync(path.join(dir, "crashes", crashes[0]!)));
    expect(() => planted(valueFromBytes(surface.arbitrary, saved))).toThrow("planted bug reached");
  });
});
