/** The shapes of a benchmark run's results (written as JSON, read back by --compare). */
import type { Summary } from "./stats.ts";

export interface Figure extends Summary {
  /** Stable key, e.g. "cpu/int/visor/ns-per-iter"; --compare matches figures by it. */
  id: string;
  /** Human label, e.g. "int kernel, visor". */
  label: string;
  unit: string;
  better: "lower" | "higher";
  samples: number[];
}

export interface Table {
  caption?: string;
  head: string[];
  rows: string[][];
}

export interface Bar {
  series: string;
  value: number;
  min?: number;
  max?: number;
}

export interface ChartSpec {
  /** File name under img/, e.g. "bench-cpu-time.svg". */
  file: string;
  title: string;
  unit: string;
  log?: boolean;
  groups: { label: string; bars: Bar[] }[];
  /** One sentence on what the chart shows, written from the numbers. */
  caption: string;
}

export type SuiteStatus = "ok" | "partial" | "skipped" | "failed";

export interface SuiteResult {
  name: string;
  title: string;
  /** What the suite measures and how, for the report. */
  about: string;
  status: SuiteStatus;
  /** Skips and caveats, one sentence each. */
  notes: string[];
  figures: Figure[];
  tables: Table[];
  charts: ChartSpec[];
  durationMs: number;
  /** Raw per-run data for later analysis. */
  raw?: unknown;
}

export interface Environment {
  date: string;
  commit: string;
  commitDirty: boolean;
  node: string;
  v8: string;
  os: string;
  cpuModel: string;
  cpus: number;
  memoryGiB: number;
  loadAverage: number[];
  peers: Record<string, string>;
}

export interface RunResults {
  schema: 1;
  tool: "@visor/bench";
  quick: boolean;
  suites: SuiteResult[];
  env: Environment;
  durationMs: number;
}
