/**
 * Exit statistics, like `kvm_stat` / `perf kvm stat`: every exit the hypervisor handles is
 * counted by reason with the host time spent handling it. Counting costs one branch when
 * disabled.
 */
export interface ExitRow {
  reason: string;
  count: number;
  ns: number;
}

export class ExitStats {
  readonly enabled: boolean;
  private readonly rows = new Map<string, { count: number; ns: number }>();
  idle = 0;

  constructor(enabled: boolean) {
    this.enabled = enabled;
  }

  /** Record one exit of `reason` that took `ns` nanoseconds of host time. */
  add(reason: string, ns: number): void {
    if (!this.enabled) return;
    let r = this.rows.get(reason);
    if (r === undefined) this.rows.set(reason, (r = { count: 0, ns: 0 }));
    r.count++;
    r.ns += ns;
  }

  /** Add `n` events of `reason` with no timing (counters kept elsewhere). */
  addCount(reason: string, n: number): void {
    if (!this.enabled || n === 0) return;
    let r = this.rows.get(reason);
    if (r === undefined) this.rows.set(reason, (r = { count: 0, ns: 0 }));
    r.count += n;
  }

  table(): ExitRow[] {
    return [...this.rows]
      .map(([reason, r]) => ({ reason, count: r.count, ns: r.ns }))
      .sort((a, b) => b.count - a.count);
  }
}
