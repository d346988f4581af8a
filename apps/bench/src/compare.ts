/** --compare OLD.json: the ratio new/old of every figure the two runs share. */
import { readFileSync } from "node:fs";
import { fmt } from "./stats.ts";
import type { Figure, RunResults, Table } from "./types.ts";

export function loadResults(path: string): RunResults {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`--compare ${path}: ${(e as Error).message}`);
  }
  const r = data as Partial<RunResults>;
  if (r.schema !== 1 || !Array.isArray(r.suites))
    throw new Error(`--compare ${path}: not a @visor/bench results.json`);
  return r as RunResults;
}

export interface Comparison {
  table: Table;
  /** Figures only in the new run or only in the old one. */
  onlyNew: string[];
  onlyOld: string[];
}

/**
 * Ratio new/old of each median. A change counts as better or worse only when the new
 * median lies outside the old run's min..max and vice versa (the ranges do not overlap);
 * otherwise it is within noise.
 */
export function compare(oldR: RunResults, newR: RunResults): Comparison {
  const old = new Map<string, Figure>();
  for (const s of oldR.suites) for (const f of s.figures) old.set(f.id, f);
  const seen = new Set<string>();
  const rows: string[][] = [];
  const onlyNew: string[] = [];
  for (const s of newR.suites)
    for (const f of s.figures) {
      const o = old.get(f.id);
      if (o === undefined) {
        onlyNew.push(f.id);
        continue;
      }
      seen.add(f.id);
      const r = o.median !== 0 ? f.median / o.median : Number.NaN;
      const apart = f.min > o.max || f.max < o.min;
      const improved = f.better === "lower" ? f.median < o.median : f.median > o.median;
      const verdict = !apart ? "within noise" : improved ? "better" : "worse";
      rows.push([
        f.id,
        `${fmt(o.median)} ${o.unit}`,
        `${fmt(f.median)} ${f.unit}`,
        Number.isFinite(r) ? `${r.toFixed(3)}` : "-",
        verdict,
      ]);
    }
  const onlyOld = [...old.keys()].filter((k) => !seen.has(k));
  return {
    table: { head: ["figure", "old", "new", "new/old", "verdict"], rows },
    onlyNew,
    onlyOld,
  };
}
