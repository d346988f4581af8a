/// <reference types="node" />
/**
 * Differential test against real hardware semantics: every vector of
 * fixtures/fpu/vectors.txt.gz (the instruction executed under qemu-riscv64 by gen.c, see
 * regen.sh) is run through Fpu.exec, once with the static rounding mode in the instruction
 * and once through DYN + frm, and the destination register (all 64 bits) and fflags must
 * match exactly.
 */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadVectors, OPS, runAll, type Vector } from "./harness.ts";

const path = fileURLToPath(new URL("../../fixtures/fpu/vectors.txt.gz", import.meta.url));
const vectors = loadVectors(path);
const byOp = new Map<string, Vector[]>();
for (const v of vectors) {
  let list = byOp.get(v.mn);
  if (!list) byOp.set(v.mn, (list = []));
  list.push(v);
}

describe("FPU vectors (qemu-riscv64 reference)", () => {
  it("cover every F/D instruction in every rounding mode", () => {
    for (const [mn, info] of Object.entries(OPS)) {
      const list = byOp.get(mn) ?? [];
      expect(list.length, mn).toBeGreaterThan(200);
      if (info.f3 < 0) {
        const modes = new Set(list.map((v) => v.rm));
        expect([...modes].sort(), mn).toEqual([0, 1, 2, 3, 4]);
      }
    }
    expect(vectors.length).toBeGreaterThan(150_000);
  });

  for (const [mn, list] of byOp) {
    it(`${mn}: ${list.length} vectors, static rm`, () => {
      const r = runAll(list, false);
      expect(r.samples, `${r.count} mismatches`).toEqual([]);
    });
    if (list[0]!.rm >= 0) {
      it(`${mn}: ${list.length} vectors, dynamic rm (frm)`, () => {
        const r = runAll(list, true);
        expect(r.samples, `${r.count} mismatches`).toEqual([]);
      });
    }
  }
});
