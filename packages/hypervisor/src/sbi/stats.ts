/**
 * Where the SBI reports each call: the extension and function names of the spec, the
 * calling hart and the SBI error code it returned (0 = SBI_SUCCESS). The hypervisor's
 * `--stats` table ("hypercalls") is fed from here.
 */
export interface SbiStatsSink {
  sbiCall(hart: number, extension: string, fn: string, error: number): void;
}

/** The default sink: does nothing. */
export const NO_SBI_STATS: SbiStatsSink = { sbiCall() {} };

export interface SbiCallCountRow {
  extension: string;
  fn: string;
  count: number;
  /** How many of these calls returned an error (a0 != SBI_SUCCESS). */
  errors: number;
}

/** A sink that counts calls per (extension, function). */
export class SbiCallCounter implements SbiStatsSink {
  private readonly byExt = new Map<string, Map<string, { count: number; errors: number }>>();
  total = 0;

  sbiCall(_hart: number, extension: string, fn: string, error: number): void {
    let fns = this.byExt.get(extension);
    if (fns === undefined) this.byExt.set(extension, (fns = new Map()));
    let c = fns.get(fn);
    if (c === undefined) fns.set(fn, (c = { count: 0, errors: 0 }));
    c.count++;
    if (error !== 0) c.errors++;
    this.total++;
  }

  /** Count for one function (0 if never called). */
  count(extension: string, fn: string): number {
    return this.byExt.get(extension)?.get(fn)?.count ?? 0;
  }

  /** One row per (extension, function), most frequent first. */
  rows(): SbiCallCountRow[] {
    const rows: SbiCallCountRow[] = [];
    for (const [extension, fns] of this.byExt) {
      for (const [fn, c] of fns) rows.push({ extension, fn, count: c.count, errors: c.errors });
    }
    return rows.sort((a, b) => b.count - a.count || byName(a.extension, b.extension) || byName(a.fn, b.fn));
  }

  reset(): void {
    this.byExt.clear();
    this.total = 0;
  }
}

/**
 * Names (ASCII identifiers) in code-unit order. Not localeCompare: its first call loads
 * ICU's collation data, about 6 ms of a `visor run --stats` after the guest has stopped.
 */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
