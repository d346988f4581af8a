import { describe, expect, it } from "vitest";
import { barChart, linearTicks, makeScale } from "../src/svg.ts";

describe("svg bar chart", () => {
  it("picks round linear ticks covering the maximum", () => {
    expect(linearTicks(9)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(linearTicks(230)).toEqual([0, 50, 100, 150, 200, 250]);
  });

  it("maps values linearly or by decade", () => {
    const lin = makeScale(1, 10, 100, false);
    expect(lin.x(5)).toBeCloseTo(50);
    const log = makeScale(2, 900, 300, true);
    expect(log.ticks).toEqual([1, 10, 100, 1000]);
    expect(log.x(10)).toBeCloseTo(100);
    expect(log.x(100)).toBeCloseTo(200);
  });

  it("draws one rect per bar (plus the background and legend) and escapes text", () => {
    const svg = barChart({
      file: "x.svg",
      title: "a < b & c",
      unit: "ns",
      caption: "",
      groups: [
        {
          label: "g1",
          bars: [
            { series: "visor", value: 10, min: 8, max: 12 },
            { series: "qemu", value: 2 },
          ],
        },
        { label: "g2", bars: [{ series: "visor", value: 5 }] },
      ],
    });
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("a &lt; b &amp; c");
    // 1 background + 2 legend swatches + 3 bars
    expect(svg.match(/<rect /g)?.length).toBe(6);
    // the longer bar is twice the shorter one of the same scale
    const widths = [...svg.matchAll(/<rect x="150" y="\d+" width="([\d.]+)" height="14"/g)].map((m) =>
      Number(m[1]),
    );
    expect(widths.length).toBe(3);
    expect(widths[0]! / widths[2]!).toBeCloseTo(2, 1);
  });
});
