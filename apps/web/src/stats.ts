/**
 * The counters `visor run --stats` prints (apps/vmm/src/stats.ts), gathered from a running
 * Machine as plain data for the page's panels. Runs in the worker, beside the machine.
 */
import type { Machine } from "@visor/hypervisor";
import type { DeviceRow, StatsSample, VirtMode } from "./protocol.ts";

function devices(
  rows: { name: string; reads: number; writes: number; listenerWrites?: number }[],
): DeviceRow[] {
  return rows
    .map((d) => ({ name: d.name, reads: d.reads, writes: d.writes, fast: d.listenerWrites ?? 0 }))
    .filter((d) => d.reads + d.writes + d.fast > 0);
}

/** One sample of every counter; `ms` is the time since the machine began. */
export function collectStats(m: Machine, ms: number): StatsSample {
  const j = m.jitStats;
  return {
    virt: m.virtMode as VirtMode,
    ms,
    instructions: m.instructionsHere,
    exits: m.exitStats.table(),
    idle: m.exitStats.idle,
    outputWaits: m.outputWaits,
    sbi: m.sbiCalls.rows().map((r) => ({ extension: r.extension, fn: r.fn, count: r.count })),
    mmio: devices(m.io.mmio.stats().devices),
    pio: devices(m.io.pio.stats().devices),
    harts: m.vcpus.map((v) => {
      const s = v.hart.stats;
      const sh = v.shadow?.stats;
      return {
        hartId: v.hart.hartId,
        traps: s.traps,
        interrupts: s.interrupts,
        tlbMisses: s.tlbMisses,
        walks: s.walks,
        walkRefs: s.walkRefs,
        gWalks: s.gWalks,
        ...(sh !== undefined
          ? {
              shadow: {
                fills: sh.fills,
                syncs: sh.syncs,
                flushes: sh.flushes,
                satpSwitches: sh.satpSwitches,
                injectedFaults: sh.injectedFaults,
              },
            }
          : {}),
      };
    }),
    jit: {
      requested: m.jit,
      mode: j.mode,
      unavailable: j.unavailable,
      regions: j.regions,
      translatedInstructions: j.translatedInstructions,
      modules: j.modules,
      translateMs: j.translateMs,
      executedTranslated: j.executedTranslated,
      entries: j.entries,
      invalidations: j.invalidations,
      evictions: j.evictions,
      liveRegions: j.liveRegions,
      liveBytes: j.liveBytes,
    },
  };
}
