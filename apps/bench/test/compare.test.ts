import { describe, expect, it } from "vitest";
import { compare } from "../src/compare.ts";
import { makeFigure } from "../src/figures.ts";
import type { RunResults } from "../src/types.ts";

function results(figs: ReturnType<typeof makeFigure>[]): RunResults {
  return {
    schema: 1,
    tool: "@visor/bench",
    quick: true,
    durationMs: 0,
    env: {
      date: "",
      commit: "",
      commitDirty: false,
      node: "",
      v8: "",
      os: "",
      cpuModel: "",
      cpus: 1,
      memoryGiB: 1,
      loadAverage: [],
      peers: {},
    },
    suites: [
      {
        name: "s",
        title: "",
        about: "",
        status: "ok",
        notes: [],
        figures: figs,
        tables: [],
        charts: [],
        durationMs: 0,
      },
    ],
  };
}

describe("compare", () => {
  it("gives new/old ratios and calls a change only when the ranges do not overlap", () => {
    const old = results([
      makeFigure("a", "", "ns", "lower", [100, 110, 90]),
      makeFigure("b", "", "MIPS", "higher", [50, 52, 48]),
      makeFigure("gone", "", "ns", "lower", [1]),
    ]);
    const now = results([
      makeFigure("a", "", "ns", "lower", [50, 55, 45]),
      makeFigure("b", "", "MIPS", "higher", [49, 51, 47]),
      makeFigure("new", "", "ns", "lower", [1]),
    ]);
    const c = compare(old, now);
    expect(c.table.rows).toEqual([
      ["a", "100 ns", "50.0 ns", "0.500", "better"],
      ["b", "50.0 MIPS", "49.0 MIPS", "0.980", "within noise"],
    ]);
    expect(c.onlyNew).toEqual(["new"]);
    expect(c.onlyOld).toEqual(["gone"]);
  });

  it("calls a slower result worse", () => {
    const c = compare(
      results([makeFigure("a", "", "MIPS", "higher", [100, 101])]),
      results([makeFigure("a", "", "MIPS", "higher", [50, 51])]),
    );
    expect(c.table.rows[0]![4]).toBe("worse");
  });
});
