import type { Machine } from "@visor/hypervisor";

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
