import { describe, expect, it } from "vitest";
import { fmt, median, summarize } from "../src/stats.ts";

describe("stats", () => {
  it("takes the median of odd and even sample counts", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it("summarizes with spread relative to the median", () => {
    const s = summarize([10, 12, 8]);
    expect(s).toEqual({ median: 10, min: 8, max: 12, spread: 0.4, n: 3 });
  });

  it("refuses empty or non-finite samples", () => {
    expect(() => summarize([])).toThrow(/no samples/);
    expect(() => summarize([1, Number.NaN])).toThrow(/non-finite/);
  });

  it("formats numbers to about three significant digits", () => {
    expect(fmt(1234.5)).toBe("1235");
    expect(fmt(12.345)).toBe("12.3");
    expect(fmt(1.2345)).toBe("1.23");
    expect(fmt(0.012345)).toBe("0.0123");
    expect(fmt(12_345_678)).toBe("1.23e+7");
  });
});
