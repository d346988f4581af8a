/**
 * A small SVG bar-chart writer for the reports: horizontal bars grouped by category, one
 * colour per series, min..max whiskers, a linear or log10 axis. No dependencies; the
 * output is static SVG 1.1 that GitHub renders inline.
 */
import type { ChartSpec } from "./types.ts";

const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"];
const WIDTH = 760;
const LABEL_W = 150;
const RIGHT_PAD = 90;
const BAR_H = 14;
const BAR_GAP = 3;
const GROUP_GAP = 12;
const FONT = 'font-family="Helvetica, Arial, sans-serif"';

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function label(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e6 || a < 1e-3) return v.toExponential(1).replace("e+", "e");
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

function tickLabel(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(0).replace("e+", "e");
  return String(Number(v.toPrecision(6)));
}

/** Nice linear ticks from 0 to at least `max`. */
export function linearTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const ticks: number[] = [];
  for (let t = 0; t < max + step * 0.999; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

export interface Scale {
  /** x offset from the plot's left edge for a value. */
  x(v: number): number;
  ticks: number[];
}

export function makeScale(lo: number, hi: number, width: number, log: boolean): Scale {
  if (log) {
    const a = Math.floor(Math.log10(lo));
    const b = Math.max(a + 1, Math.ceil(Math.log10(hi)));
    const ticks: number[] = [];
    for (let e = a; e <= b; e++) ticks.push(10 ** e);
    return { x: (v) => ((Math.log10(Math.max(v, 10 ** a)) - a) / (b - a)) * width, ticks };
  }
  const ticks = linearTicks(hi);
  const top = ticks[ticks.length - 1]!;
  return { x: (v) => (Math.max(0, v) / top) * width, ticks };
}

/** Render a chart; series colours follow the order of first appearance. */
export function barChart(spec: ChartSpec): string {
  const series: string[] = [];
  for (const g of spec.groups) for (const b of g.bars) if (!series.includes(b.series)) series.push(b.series);
  const values = spec.groups.flatMap((g) =>
    g.bars.flatMap((b) => [b.value, b.max ?? b.value, b.min ?? b.value]),
  );
  const positive = values.filter((v) => v > 0);
  const hi = positive.length > 0 ? Math.max(...positive) : 1;
  const lo = positive.length > 0 ? Math.min(...positive) : 1;
  const log = spec.log ?? false;
  const plotW = WIDTH - LABEL_W - RIGHT_PAD;
  const scale = makeScale(lo, hi, plotW, log);

  const out: string[] = [];
  const top = 46;
  let y = top;
  const body: string[] = [];
  for (const g of spec.groups) {
    const gh = g.bars.length * (BAR_H + BAR_GAP) - BAR_GAP;
    body.push(
      `<text x="${LABEL_W - 8}" y="${(y + gh / 2 + 4).toFixed(1)}" text-anchor="end" font-size="12" ${FONT}>${esc(g.label)}</text>`,
    );
    for (const b of g.bars) {
      const color = PALETTE[series.indexOf(b.series) % PALETTE.length]!;
      const w = Math.max(1, scale.x(b.value));
      body.push(
        `<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${color}"><title>${esc(`${b.series}: ${label(b.value)} ${spec.unit}`)}</title></rect>`,
      );
      let textX = LABEL_W + w + 4;
      if (b.min !== undefined && b.max !== undefined && b.max > b.min) {
        const x0 = LABEL_W + scale.x(b.min);
        const x1 = LABEL_W + scale.x(b.max);
        const cy = y + BAR_H / 2;
        body.push(
          `<path d="M${x0.toFixed(1)} ${cy}H${x1.toFixed(1)}M${x0.toFixed(1)} ${cy - 4}V${cy + 4}M${x1.toFixed(1)} ${cy - 4}V${cy + 4}" stroke="#222" stroke-width="1" fill="none"/>`,
        );
        textX = Math.max(textX, x1 + 4);
      }
      body.push(
        `<text x="${textX.toFixed(1)}" y="${y + BAR_H - 3}" font-size="11" ${FONT}>${label(b.value)}</text>`,
      );
      y += BAR_H + BAR_GAP;
    }
    y += GROUP_GAP - BAR_GAP;
  }
  const plotBottom = y;
  const height = plotBottom + 36;

  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
  );
  out.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="8" y="18" font-size="14" font-weight="bold" ${FONT}>${esc(spec.title)}</text>`);
  // legend
  let lx = LABEL_W;
  for (const s of series) {
    const color = PALETTE[series.indexOf(s) % PALETTE.length]!;
    out.push(`<rect x="${lx}" y="28" width="10" height="10" fill="${color}"/>`);
    out.push(`<text x="${lx + 14}" y="37" font-size="11" ${FONT}>${esc(s)}</text>`);
    lx += 24 + s.length * 6.5;
  }
  // grid and axis
  for (const t of scale.ticks) {
    const x = (LABEL_W + scale.x(t)).toFixed(1);
    out.push(
      `<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${plotBottom}" stroke="#e3e3e3" stroke-width="1"/>`,
    );
    out.push(
      `<text x="${x}" y="${plotBottom + 14}" text-anchor="middle" font-size="10" fill="#444" ${FONT}>${tickLabel(t)}</text>`,
    );
  }
  out.push(
    `<line x1="${LABEL_W}" y1="${top - 4}" x2="${LABEL_W}" y2="${plotBottom}" stroke="#888" stroke-width="1"/>`,
  );
  out.push(
    `<text x="${LABEL_W + plotW / 2}" y="${plotBottom + 30}" text-anchor="middle" font-size="11" fill="#444" ${FONT}>${esc(spec.unit)}${log ? " (log scale)" : ""}</text>`,
  );
  out.push(...body);
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
