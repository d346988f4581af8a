/**
 * The live panels: the counters of `visor run --stats` (apps/vmm/src/stats.ts), redrawn
 * from each sample the worker sends. Every text goes in through textContent.
 */
import type { StatsSample } from "./protocol.ts";

/** Where the docs pages are served from (copied beside the site by vite.config.ts). */
const DOCS = "docs/";

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

const fmt = (n: number) => n.toLocaleString("en-US");

function table(id: string, head: string[], rows: (string | number)[][], empty: string): HTMLElement {
  if (rows.length === 0) return el("p", { id, class: "empty" }, empty);
  const t = el("table", { id });
  t.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))));
  const body = el("tbody");
  for (const r of rows)
    body.append(el("tr", {}, ...r.map((c) => el("td", {}, typeof c === "number" ? fmt(c) : c))));
  t.append(body);
  return t;
}

interface Panel {
  id: string;
  title: string;
  /** What the counters mean, in a sentence or two. */
  about: string;
  doc: { page: string; label: string };
  body: HTMLElement;
}

/** The panels, built once; update() refills their bodies. */
export class Panels {
  private readonly panels = new Map<string, Panel>();
  private readonly mips: { ms: number; mips: number }[] = [];
  private last: { ms: number; instructions: number } | undefined;

  private readonly root: HTMLElement;

  constructor(root: HTMLElement) {
    this.root = root;
    this.add(
      "speed",
      "Guest speed",
      "Millions of guest instructions per second, over the last minute. It drops to zero when the guest idles at the prompt (waiting for an interrupt).",
      { page: "benchmarks.md", label: "numbers against QEMU" },
    );
    this.add(
      "exits",
      "VM exits by reason",
      "An exit is the guest stopping so the hypervisor can do something it may not do itself: emulate a device access, answer a hypercall, handle a trap or an interrupt. Each one costs host time.",
      { page: "trap-and-emulate.md", label: "trap-and-emulate" },
    );
    this.add(
      "devices",
      "Device accesses",
      "Loads and stores the guest made to emulated devices: memory-mapped I/O (MMIO) and port I/O (PIO, the PCI window). 'fast path' counts writes answered by a listener without a full emulation (like KVM's ioeventfd).",
      { page: "mmio-vs-pio.md", label: "MMIO vs port I/O" },
    );
    this.add(
      "sbi",
      "Hypercalls (SBI calls)",
      "The guest kernel's calls to the hypervisor through the RISC-V SBI (ecall from VS-mode): timers, console, IPIs, power-off. The paravirtual path: asked for, not trapped.",
      { page: "hypercalls.md", label: "hypercalls" },
    );
    this.add(
      "paging",
      "Page walks and shadow fills",
      "Address translation. A walk reads the guest's page tables after a TLB miss; with --virt nested each guest step also walks the G-stage, with --virt shadow the hypervisor fills shadow tables on faults.",
      { page: "memory-virtualization.md", label: "shadow vs nested paging" },
    );
    this.add(
      "jit",
      "Translator (WebAssembly)",
      "Hot guest code is translated to WebAssembly functions, compiled by this browser's engine; the rest is interpreted.",
      { page: "binary-translation.md", label: "binary translation" },
    );
  }

  private add(id: string, title: string, about: string, doc: Panel["doc"]): void {
    const body = el("div", { class: "body" }, el("p", { class: "empty" }, "no VM yet"));
    const link = el("a", { href: `${DOCS}${doc.page}`, target: "_blank", rel: "noopener" }, doc.label);
    this.root.append(
      el(
        "section",
        { id: `panel-${id}`, class: "panel" },
        el("h2", {}, title),
        el("p", { class: "about" }, about, " ", el("span", { class: "more" }, "More: ", link)),
        body,
      ),
    );
    this.panels.set(id, { id, title, about, doc, body });
  }

  private fill(id: string, ...nodes: Node[]): void {
    this.panels.get(id)!.body.replaceChildren(...nodes);
  }

  /** A new VM: forget the chart. */
  reset(): void {
    this.mips.length = 0;
    this.last = undefined;
  }

  update(s: StatsSample): void {
    this.updateSpeed(s);
    const exitTotal = s.exits.reduce((a, r) => a + r.count, 0);
    const exits = table(
      "exits-table",
      ["reason", "count", "total ms", "ns/exit"],
      s.exits.map((r) => [
        r.reason,
        r.count,
        (r.ns / 1e6).toFixed(1),
        r.count > 0 && r.ns > 0 ? (r.ns / r.count).toFixed(0) : "-",
      ]),
      "no exits yet",
    );
    const summary = el(
      "p",
      { id: "exits-total", "data-total": String(exitTotal) },
      `${fmt(exitTotal)} exits; idle ${fmt(s.idle)} times (every vCPU waiting); held ${fmt(s.outputWaits)} times for console output.`,
    );
    this.fill("exits", summary, exits);

    const dev = (d: StatsSample["mmio"]) => d.map((r) => [r.name, r.reads, r.writes, r.fast]);
    this.fill(
      "devices",
      table(
        "mmio-table",
        ["MMIO device", "reads", "writes", "fast path"],
        dev(s.mmio),
        "no MMIO accesses yet",
      ),
      table(
        "pio-table",
        ["port I/O device", "reads", "writes", "fast path"],
        dev(s.pio),
        "no port I/O (the bundled guest's devices are all on MMIO; a --disk transport=pci would use it)",
      ),
    );

    const byExt = new Map<string, number>();
    for (const r of s.sbi) byExt.set(r.extension, (byExt.get(r.extension) ?? 0) + r.count);
    this.fill(
      "sbi",
      table(
        "sbi-table",
        ["extension", "calls", "functions"],
        [...byExt].map(([ext, n]) => [
          ext,
          n,
          s.sbi
            .filter((r) => r.extension === ext)
            .map((r) => `${r.fn} ${fmt(r.count)}`)
            .join(", "),
        ]),
        "no hypercalls yet",
      ),
    );

    const paging: (string | number)[][] = [];
    for (const h of s.harts) {
      paging.push([`hart ${h.hartId}: page walks`, h.walks], [`hart ${h.hartId}: PTE reads`, h.walkRefs]);
      paging.push([`hart ${h.hartId}: TLB misses`, h.tlbMisses]);
      if (s.virt === "nested") paging.push([`hart ${h.hartId}: G-stage walks`, h.gWalks]);
      if (h.shadow !== undefined) {
        paging.push(
          [`hart ${h.hartId}: shadow fills`, h.shadow.fills],
          [`hart ${h.hartId}: shadow syncs`, h.shadow.syncs],
          [`hart ${h.hartId}: shadow flushes`, h.shadow.flushes],
          [`hart ${h.hartId}: guest faults injected`, h.shadow.injectedFaults],
        );
      }
      paging.push([`hart ${h.hartId}: traps`, h.traps], [`hart ${h.hartId}: interrupts`, h.interrupts]);
    }
    this.fill("paging", table("paging-table", ["counter", "count"], paging, "no harts"));

    const j = s.jit;
    let mode = `--jit ${j.requested}`;
    if (j.mode !== j.requested) mode += `, in effect ${j.mode}`;
    const share = s.instructions > 0 ? `${((100 * j.executedTranslated) / s.instructions).toFixed(1)}%` : "-";
    this.fill(
      "jit",
      el(
        "p",
        { id: "jit-mode", "data-mode": j.mode },
        mode,
        j.unavailable !== "" ? ` (unavailable here: ${j.unavailable})` : "",
      ),
      table(
        "jit-table",
        ["counter", "value"],
        [
          ["regions translated", j.regions],
          ["modules compiled", j.modules],
          ["translated instructions (static)", j.translatedInstructions],
          ["translation time (ms)", j.translateMs.toFixed(1)],
          ["executed translated", `${share} of ${fmt(s.instructions)}`],
          ["entries from the interpreter", j.entries],
          ["invalidations (code written)", j.invalidations],
          ["evictions", j.evictions],
          ["live regions", j.liveRegions],
          ["live WebAssembly bytes", j.liveBytes],
        ],
        "",
      ),
    );
  }

  private updateSpeed(s: StatsSample): void {
    if (this.last !== undefined && s.ms > this.last.ms) {
      const mips = (s.instructions - this.last.instructions) / ((s.ms - this.last.ms) * 1000);
      this.mips.push({ ms: s.ms, mips: Math.max(0, mips) });
      while (this.mips.length > 0 && this.mips[0]!.ms < s.ms - 60_000) this.mips.shift();
    }
    this.last = { ms: s.ms, instructions: s.instructions };
    const now = this.mips.at(-1)?.mips ?? 0;
    const peak = Math.max(1, ...this.mips.map((p) => p.mips));
    const W = 300;
    const H = 60;
    // The last minute, or less while the VM is younger: the line fills the chart.
    const span = Math.min(60_000, Math.max(10_000, s.ms));
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("class", "chart");
    svg.setAttribute("role", "img");
    svg.setAttribute(
      "aria-label",
      `guest MIPS over the last ${(span / 1000).toFixed(0)} s, now ${now.toFixed(1)}`,
    );
    const line = document.createElementNS(NS, "polyline");
    line.setAttribute(
      "points",
      this.mips
        .map(
          (p) =>
            `${(W - ((s.ms - p.ms) / span) * W).toFixed(1)},${(H - (p.mips / peak) * (H - 4)).toFixed(1)}`,
        )
        .join(" "),
    );
    svg.append(line);
    this.fill(
      "speed",
      el(
        "p",
        { id: "mips" },
        `now ${now.toFixed(1)} MIPS (peak ${peak.toFixed(0)}); ${fmt(s.instructions)} instructions in ${(s.ms / 1000).toFixed(1)} s; --virt ${s.virt}`,
      ),
      svg,
    );
  }
}
