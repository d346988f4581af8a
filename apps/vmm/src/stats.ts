import type { Machine } from "@visor/hypervisor";

/**
 * The binary translator's counters, summed over the harts (Machine.jitStats): the mode
 * asked for (--jit) and the one in effect, and the share of the instructions this process
 * executed that ran translated.
 */
export function translatorLines(m: Machine): string[] {
  const j = m.jitStats;
  let mode = `--jit ${m.jit}`;
  if (j.mode !== m.jit) mode += `, in effect ${j.mode}`;
  if (j.unavailable !== "") mode += ` (unavailable: ${j.unavailable})`;
  const executed = m.instructionsHere;
  const share = executed > 0 ? `${((100 * j.executedTranslated) / executed).toFixed(1)}%` : "-";
  const row = (label: string, value: string, note = "") =>
    `${label.padEnd(44)} ${value.padStart(10)}${note !== "" ? `  ${note}` : ""}`;
  return [
    `translator: ${mode}`,
    row("regions translated", String(j.regions)),
    row("translated instructions", String(j.translatedInstructions)),
    row("translation time (ms)", j.translateMs.toFixed(2)),
    row("executed translated", share, `(${j.executedTranslated} of ${executed} instructions)`),
    row("invalidations", String(j.invalidations)),
    row("evictions", String(j.evictions)),
    row("live regions", String(j.liveRegions)),
    row("live bytes (wasm)", String(j.liveBytes)),
  ];
}

/** Print the exit statistics table (like kvm_stat / perf kvm stat) to `out`. */
export function printStats(m: Machine, out: NodeJS.WritableStream): void {
  const lines: string[] = [];
  const secs = m.bootTimeMs / 1000;
  const instr = m.instructions;
  lines.push("");
  lines.push(
    `visor stats: virt=${m.virtMode}  ${secs.toFixed(3)} s  ${(instr / 1e6).toFixed(1)} M instructions  ${(instr / 1e6 / Math.max(secs, 1e-9)).toFixed(1)} MIPS`,
  );
  lines.push("");
  lines.push(
    `${"exit reason".padEnd(44)} ${"count".padStart(10)} ${"total ms".padStart(10)} ${"ns/exit".padStart(9)}`,
  );
  for (const r of m.exitStats.table()) {
    const per = r.count > 0 && r.ns > 0 ? (r.ns / r.count).toFixed(0) : "-";
    lines.push(
      `${r.reason.padEnd(44)} ${String(r.count).padStart(10)} ${(r.ns / 1e6).toFixed(2).padStart(10)} ${per.padStart(9)}`,
    );
  }
  lines.push(`${"idle (all vCPUs waiting)".padEnd(44)} ${String(m.exitStats.idle).padStart(10)}`);
  lines.push(`${"held for console output".padEnd(44)} ${String(m.outputWaits).padStart(10)}`);
  lines.push("");
  lines.push(...translatorLines(m));
  const sbi = m.sbiCalls.rows();
  if (sbi.length > 0) {
    lines.push("");
    lines.push(`${"hypercalls (SBI extension / function)".padEnd(44)} ${"count".padStart(10)}`);
    for (const r of sbi) lines.push(`${`${r.extension} ${r.fn}`.padEnd(44)} ${String(r.count).padStart(10)}`);
  }
  const io = m.io.mmio.stats();
  lines.push("");
  lines.push(
    `${"MMIO device".padEnd(30)} ${"reads".padStart(10)} ${"writes".padStart(10)} ${"notify fast path".padStart(17)}`,
  );
  for (const d of io.devices) {
    if (d.reads + d.writes + (d.listenerWrites ?? 0) === 0) continue;
    lines.push(
      `${d.name.padEnd(30)} ${String(d.reads).padStart(10)} ${String(d.writes).padStart(10)} ${String(d.listenerWrites ?? 0).padStart(17)}`,
    );
  }
  const pio = m.io.pio.stats();
  if (pio.devices.some((d) => d.reads + d.writes + (d.listenerWrites ?? 0) > 0)) {
    lines.push("");
    lines.push(
      `${"port I/O device".padEnd(30)} ${"reads".padStart(10)} ${"writes".padStart(10)} ${"notify fast path".padStart(17)}`,
    );
    for (const d of pio.devices) {
      if (d.reads + d.writes + (d.listenerWrites ?? 0) === 0) continue;
      lines.push(
        `${d.name.padEnd(30)} ${String(d.reads).padStart(10)} ${String(d.writes).padStart(10)} ${String(d.listenerWrites ?? 0).padStart(17)}`,
      );
    }
  }
  for (const v of m.vcpus) {
    const s = v.hart.stats;
    lines.push("");
    lines.push(
      `hart ${v.hart.hartId}: traps ${s.traps}  interrupts ${s.interrupts}  TLB misses ${s.tlbMisses}  page walks ${s.walks} (${s.walkRefs} PTE refs)`,
    );
    if (v.mode === "nested")
      lines.push(`  G-stage walks ${s.gWalks} (${s.gRefs} PTE refs), G-TLB hits ${s.gTlbHits}`);
    if (v.shadow !== undefined) {
      const ss = v.shadow.stats;
      lines.push(
        `  shadow: fills ${ss.fills}  syncs ${ss.syncs}  full flushes ${ss.flushes}  satp switches ${ss.satpSwitches}  faults injected ${ss.injectedFaults}  pool resets ${ss.poolResets}`,
      );
    }
  }
  out.write(`${lines.join("\n")}\n`);
}
