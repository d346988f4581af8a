import type { Machine } from "@visor/hypervisor";
import { startupLine } from "./startup-marks.ts";

/**
 * Every counter `--stats` prints, as data: what printStats formats as a table and the
 * control socket's GET /stats sends as JSON (docs/vmm-api.md). Exits and device accesses
 * are counted only when the machine was built with statistics on (`counting`).
 */
export interface VmStats {
  virt: string;
  /** Whether exits and device accesses are being counted (--stats). */
  counting: boolean;
  seconds: number;
  instructions: number;
  mips: number;
  exits: { reason: string; count: number; total_ms: number }[];
  /** Times every vCPU waited for an interrupt, and times the guest was held for console output. */
  idle: number;
  console_waits: number;
  translator: {
    mode: string;
    in_effect: string;
    unavailable: string;
    regions: number;
    translated_instructions: number;
    /** WebAssembly modules compiled (regions are compiled in batches). */
    modules: number;
    translate_ms: number;
    executed_translated: number;
    /** Times the interpreter entered translated code (jumps between translations excluded). */
    entries: number;
    /** Instructions this process executed (a restored or migrated VM's earlier ones are not). */
    executed: number;
    invalidations: number;
    evictions: number;
    live_regions: number;
    live_bytes: number;
  };
  hypercalls: { extension: string; function: string; count: number }[];
  mmio: DeviceRow[];
  pio: DeviceRow[];
  harts: HartRow[];
}

export interface DeviceRow {
  device: string;
  reads: number;
  writes: number;
  /** Writes taken by an ioeventfd-style listener without a full exit. */
  notify_fast_path: number;
}

export interface HartRow {
  hart: number;
  traps: number;
  interrupts: number;
  tlb_misses: number;
  walks: number;
  walk_refs: number;
  /** Nested paging (--virt nested): G-stage walks, their PTE references, G-TLB hits. */
  g_stage?: { walks: number; refs: number; tlb_hits: number };
  /** Shadow paging (--virt shadow). */
  shadow?: {
    fills: number;
    syncs: number;
    full_flushes: number;
    satp_switches: number;
    faults_injected: number;
    pool_resets: number;
  };
}

/**
 * The machine's counters now. `seconds` is the time the VM has run (default: the run
 * loop's, which the machine records when it stops).
 */
export function vmStats(m: Machine, seconds = m.bootTimeMs / 1000): VmStats {
  const instructions = m.instructions;
  const j = m.jitStats;
  const devices = (list: ReturnType<Machine["io"]["mmio"]["stats"]>["devices"]): DeviceRow[] =>
    list
      .filter((d) => d.reads + d.writes + (d.listenerWrites ?? 0) > 0)
      .map((d) => ({
        device: d.name,
        reads: d.reads,
        writes: d.writes,
        notify_fast_path: d.listenerWrites ?? 0,
      }));
  return {
    virt: m.virtMode,
    counting: m.exitStats.enabled,
    seconds,
    instructions,
    mips: instructions / 1e6 / Math.max(seconds, 1e-9),
    exits: m.exitStats.table().map((r) => ({ reason: r.reason, count: r.count, total_ms: r.ns / 1e6 })),
    idle: m.exitStats.idle,
    console_waits: m.outputWaits,
    translator: {
      mode: m.jit,
      in_effect: j.mode,
      unavailable: j.unavailable,
      regions: j.regions,
      translated_instructions: j.translatedInstructions,
      modules: j.modules,
      translate_ms: j.translateMs,
      executed_translated: j.executedTranslated,
      entries: j.entries,
      executed: m.instructionsHere,
      invalidations: j.invalidations,
      evictions: j.evictions,
      live_regions: j.liveRegions,
      live_bytes: j.liveBytes,
    },
    hypercalls: m.sbiCalls.rows().map((r) => ({ extension: r.extension, function: r.fn, count: r.count })),
    mmio: devices(m.io.mmio.stats().devices),
    pio: devices(m.io.pio.stats().devices),
    harts: m.vcpus.map((v) => {
      const s = v.hart.stats;
      const row: HartRow = {
        hart: v.hart.hartId,
        traps: s.traps,
        interrupts: s.interrupts,
        tlb_misses: s.tlbMisses,
        walks: s.walks,
        walk_refs: s.walkRefs,
      };
      if (v.mode === "nested") row.g_stage = { walks: s.gWalks, refs: s.gRefs, tlb_hits: s.gTlbHits };
      if (v.shadow !== undefined) {
        const ss = v.shadow.stats;
        row.shadow = {
          fills: ss.fills,
          syncs: ss.syncs,
          full_flushes: ss.flushes,
          satp_switches: ss.satpSwitches,
          faults_injected: ss.injectedFaults,
          pool_resets: ss.poolResets,
        };
      }
      return row;
    }),
  };
}

/**
 * The binary translator's counters, summed over the harts (Machine.jitStats): the mode
 * asked for (--jit) and the one in effect, and the share of the instructions this process
 * executed that ran translated.
 */
export function translatorLines(m: Machine): string[] {
  return translatorText(vmStats(m).translator);
}

function translatorText(t: VmStats["translator"]): string[] {
  let mode = `--jit ${t.mode}`;
  if (t.in_effect !== t.mode) mode += `, in effect ${t.in_effect}`;
  if (t.unavailable !== "") mode += ` (unavailable: ${t.unavailable})`;
  const executed = t.executed;
  const share = executed > 0 ? `${((100 * t.executed_translated) / executed).toFixed(1)}%` : "-";
  const row = (label: string, value: string, note = "") =>
    `${label.padEnd(44)} ${value.padStart(10)}${note !== "" ? `  ${note}` : ""}`;
  return [
    `translator: ${mode}`,
    row("regions translated", String(t.regions)),
    row("translated instructions", String(t.translated_instructions)),
    row("modules compiled", String(t.modules)),
    row("translation time (ms)", t.translate_ms.toFixed(2)),
    row("executed translated", share, `(${t.executed_translated} of ${executed} instructions)`),
    row("entries from the interpreter", String(t.entries)),
    row("invalidations", String(t.invalidations)),
    row("evictions", String(t.evictions)),
    row("live regions", String(t.live_regions)),
    row("live bytes (wasm)", String(t.live_bytes)),
  ];
}

/** Print the exit statistics table (like kvm_stat / perf kvm stat) to `out`. */
export function printStats(m: Machine, out: NodeJS.WritableStream): void {
  const s = vmStats(m);
  const lines: string[] = [];
  lines.push("");
  lines.push(
    `visor stats: virt=${s.virt}  ${s.seconds.toFixed(3)} s  ${(s.instructions / 1e6).toFixed(1)} M instructions  ${s.mips.toFixed(1)} MIPS`,
  );
  const startup = startupLine();
  if (startup !== undefined) lines.push(startup);
  lines.push("");
  lines.push(
    `${"exit reason".padEnd(44)} ${"count".padStart(10)} ${"total ms".padStart(10)} ${"ns/exit".padStart(9)}`,
  );
  for (const r of s.exits) {
    const per = r.count > 0 && r.total_ms > 0 ? ((r.total_ms * 1e6) / r.count).toFixed(0) : "-";
    lines.push(
      `${r.reason.padEnd(44)} ${String(r.count).padStart(10)} ${r.total_ms.toFixed(2).padStart(10)} ${per.padStart(9)}`,
    );
  }
  lines.push(`${"idle (all vCPUs waiting)".padEnd(44)} ${String(s.idle).padStart(10)}`);
  lines.push(`${"held for console output".padEnd(44)} ${String(s.console_waits).padStart(10)}`);
  lines.push("");
  lines.push(...translatorText(s.translator));
  if (s.hypercalls.length > 0) {
    lines.push("");
    lines.push(`${"hypercalls (SBI extension / function)".padEnd(44)} ${"count".padStart(10)}`);
    for (const r of s.hypercalls)
      lines.push(`${`${r.extension} ${r.function}`.padEnd(44)} ${String(r.count).padStart(10)}`);
  }
  const table = (title: string, rows: DeviceRow[]) => {
    lines.push("");
    lines.push(
      `${title.padEnd(30)} ${"reads".padStart(10)} ${"writes".padStart(10)} ${"notify fast path".padStart(17)}`,
    );
    for (const d of rows) {
      lines.push(
        `${d.device.padEnd(30)} ${String(d.reads).padStart(10)} ${String(d.writes).padStart(10)} ${String(d.notify_fast_path).padStart(17)}`,
      );
    }
  };
  table("MMIO device", s.mmio);
  if (s.pio.length > 0) table("port I/O device", s.pio);
  for (const h of s.harts) {
    lines.push("");
    lines.push(
      `hart ${h.hart}: traps ${h.traps}  interrupts ${h.interrupts}  TLB misses ${h.tlb_misses}  page walks ${h.walks} (${h.walk_refs} PTE refs)`,
    );
    if (h.g_stage !== undefined)
      lines.push(
        `  G-stage walks ${h.g_stage.walks} (${h.g_stage.refs} PTE refs), G-TLB hits ${h.g_stage.tlb_hits}`,
      );
    if (h.shadow !== undefined) {
      const ss = h.shadow;
      lines.push(
        `  shadow: fills ${ss.fills}  syncs ${ss.syncs}  full flushes ${ss.full_flushes}  satp switches ${ss.satp_switches}  faults injected ${ss.faults_injected}  pool resets ${ss.pool_resets}`,
      );
    }
  }
  out.write(`${lines.join("\n")}\n`);
}
