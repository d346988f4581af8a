/** Summary statistics over repeated measurements. */

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median: the whole spread relative to the middle value. */
  spread: number;
  n: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of no samples");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function summarize(xs: readonly number[]): Summary {
  if (xs.length === 0) throw new Error("summary of no samples");
  for (const x of xs) if (!Number.isFinite(x)) throw new Error(`non-finite sample ${x}`);
  const med = median(xs);
  const min = Math.min(...xs);
  const max = Math.max(...xs);
  return { median: med, min, max, spread: med !== 0 ? (max - min) / Math.abs(med) : 0, n: xs.length };
}

/** A number for a table: 3 significant digits, no exponent for everyday magnitudes. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a === 0) return "0";
  if (a >= 1e6 || a < 1e-3) return x.toExponential(2);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

/** "123 (±4%)" style: median with the spread as a percentage. */
export function fmtSummary(s: Summary): string {
  return `${fmt(s.median)} (±${(s.spread * 50).toFixed(0)}%)`;
}
