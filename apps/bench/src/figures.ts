import { summarize } from "./stats.ts";
import type { Bar, Figure } from "./types.ts";

export function makeFigure(
  id: string,
  label: string,
  unit: string,
  better: "lower" | "higher",
  samples: readonly number[],
): Figure {
  return { id, label, unit, better, samples: [...samples], ...summarize(samples) };
}

/** A chart bar from a figure: the median with min..max whiskers. */
export function barOf(series: string, f: Figure): Bar {
  return { series, value: f.median, min: f.min, max: f.max };
}

/** "3.2x" for ratios. */
export function ratio(a: number, b: number): string {
  if (!(b > 0) || !(a > 0)) return "-";
  const r = a / b;
  return r >= 10 ? `${r.toFixed(0)}x` : `${r.toFixed(1)}x`;
}
