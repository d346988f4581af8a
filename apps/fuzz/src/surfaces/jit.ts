/**
 * The binary translator against the interpreter: random valid RV64GC programs (integer, M,
 * A, F, D and C instructions, every load/store width on every kind of page, traps,
 * bounded loops, calls, self-modifying code, Sv39 page-table edits and satp switches in
 * S/U-mode) run on a `jit: "off"` hart and a `jit: "always"` hart with the same run(budget)
 * calls. After every call both must agree on the exit, the whole architectural state
 * (`toState()`), every byte of RAM and every MMIO access. The generator, the harts and the
 * comparison are `packages/cpu/test/jit-diff-driver.ts`, shared with the cpu package's
 * `jit-diff.test.ts`; a failure is its report: what differs after which run call, and the
 * (shrunk) program's listing.
 */
import { type Program, programArb, runDiff } from "../../../../packages/cpu/test/jit-diff-driver.ts";
import { type FuzzSurface, invariant } from "../surface.ts";

const surface: FuzzSurface<Program> = {
  name: "jit",
  description:
    "random RV64GC programs on an interpreting and a translating hart: same exits, state, RAM and MMIO after every run(budget)",
  arbitrary: programArb,
  check(p) {
    const r = runDiff(p);
    invariant(r.report === undefined, r.report ?? "");
  },
  ciRuns: 100,
};

export default surface;
