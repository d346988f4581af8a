/**
 * The binary translator's public types: how a host chooses the tier (`JitMode`) and what
 * it reports (`JitStats`). The translator itself is jit/index.ts.
 */

/**
 * Which tiers run guest code:
 * - `off`: the interpreter only (the reference);
 * - `on`: the interpreter, and hot code (a loop head reached often) is translated to
 *   WebAssembly and runs translated from then on;
 * - `always`: translate at first execution (testing: every instruction the translator
 *   handles runs translated).
 */
export type JitMode = "off" | "on" | "always";

export const JIT_MODES: readonly JitMode[] = ["off", "on", "always"];

/** What the translator has done (cumulative over the hart's life, or the code cache's). */
export interface JitStats {
  /** The mode in effect: `off` also when translation is unavailable (see `unavailable`). */
  mode: JitMode;
  /** Why translation is off although asked for (no WebAssembly, RAM not wasm-addressable), or "". */
  unavailable: string;
  /** Regions translated (a region: the code reachable from one entry within one 4 KiB page). */
  regions: number;
  /** Guest instructions in those regions (static count). */
  translatedInstructions: number;
  /** WebAssembly modules compiled: regions are compiled in batches, several per module. */
  modules: number;
  /** Time spent translating and compiling, ms. */
  translateMs: number;
  /** Guest instructions executed in translated code (dynamic count). */
  executedTranslated: number;
  /**
   * Times the interpreter entered translated code. Jumps from translated code to other
   * translated code (chained) do not count: this is how often control came back.
   */
  entries: number;
  /** Translations dropped because their page was written (stores, DMA, loaders). */
  invalidations: number;
  /** Translations dropped to keep the cache within its bound. */
  evictions: number;
  /** Live translations now, and the wasm bytes they were compiled from. */
  liveRegions: number;
  liveBytes: number;
}

/** Counters of a translator that has done nothing (or of none: mode "off"). */
export function zeroJitStats(mode: JitMode, unavailable: string): JitStats {
  return {
    mode,
    unavailable,
    regions: 0,
    translatedInstructions: 0,
    modules: 0,
    translateMs: 0,
    executedTranslated: 0,
    entries: 0,
    invalidations: 0,
    evictions: 0,
    liveRegions: 0,
    liveBytes: 0,
  };
}

/**
 * One JitStats for several harts: instructions run translated add up over harts; the
 * translation cache's counters add up over distinct caches (harts on one RAM share
 * one: the same `codeCache`). `mode` and `unavailable` are the first hart's.
 */
export function sumJitStats(
  harts: readonly { jitStats: JitStats; codeCache: object }[],
  requested: JitMode,
): JitStats {
  const sum = zeroJitStats(requested, "");
  const seen = new Set<object>();
  harts.forEach((h, i) => {
    const s = h.jitStats;
    if (i === 0) {
      sum.mode = s.mode;
      sum.unavailable = s.unavailable;
    }
    sum.executedTranslated += s.executedTranslated;
    sum.entries += s.entries;
    if (seen.has(h.codeCache)) return;
    seen.add(h.codeCache);
    sum.regions += s.regions;
    sum.translatedInstructions += s.translatedInstructions;
    sum.modules += s.modules;
    sum.translateMs += s.translateMs;
    sum.invalidations += s.invalidations;
    sum.evictions += s.evictions;
    sum.liveRegions += s.liveRegions;
    sum.liveBytes += s.liveBytes;
  });
  return sum;
}
