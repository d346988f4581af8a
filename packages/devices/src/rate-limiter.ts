/**
 * I/O rate limits for a device, as Firecracker's `RateLimiter` sets them: two token
 * buckets, one counting bytes (bandwidth) and one counting operations (requests, frames).
 * A bucket holds at most `size` tokens and refills completely in `refillTimeMs`
 * (continuously: size / refillTimeMs tokens per millisecond); `oneTimeBurst` extra tokens
 * are there at the start and never come back. An operation takes its tokens from both
 * buckets or from neither.
 *
 * A device asks `consume(bytes)` before serving a request. When it says no, the device
 * leaves the request where it is (in the virtqueue) and stops; the limiter arms one timer
 * for when enough tokens will be there and calls the device's `wake` then, which serves
 * the queue again. Nothing spins and nothing is dropped.
 *
 * An operation larger than a whole bucket (a 1 MiB write under a 512 KiB/s limit) is let
 * through once the bucket is full, leaving the bucket in debt, so it is paid for by the
 * wait that follows — as Firecracker's over-consumption does.
 *
 * Time comes from an injected RateLimiterClock: tests drive it by hand; `hostTimers`
 * uses the JS host's clock and timers.
 */

export interface TokenBucketConfig {
  /** Tokens the bucket holds when full (bytes, or operations). */
  size: number;
  /** Milliseconds to refill from empty to full. */
  refillTimeMs: number;
  /** Extra tokens available once, at the start. */
  oneTimeBurst?: number;
}

export interface RateLimiterConfig {
  bandwidth?: TokenBucketConfig;
  ops?: TokenBucketConfig;
}

export interface RateLimiterClock {
  /** Milliseconds, from any origin; never decreases. */
  now(): number;
  /** Call `fn` after `ms` milliseconds. */
  setTimer(ms: number, fn: () => void): void;
}

/** The JS host's clock and timers (performance.now, setTimeout). */
export const hostTimers: RateLimiterClock = {
  now: () => performance.now(),
  setTimer: (ms, fn) => {
    const t = setTimeout(fn, ms);
    // A throttled device must not keep a process alive on its own (Node's unref).
    (t as { unref?: () => void }).unref?.();
  },
};

export class TokenBucket {
  readonly size: number;
  readonly refillTimeMs: number;
  /** Tokens now (negative: in debt after an oversized operation). */
  private budget: number;
  private burst: number;
  private last: number;

  constructor(config: TokenBucketConfig, now: number) {
    const { size, refillTimeMs } = config;
    const burst = config.oneTimeBurst ?? 0;
    if (!(Number.isFinite(size) && size > 0)) throw new RangeError(`token bucket size ${size} must be > 0`);
    if (!(Number.isFinite(refillTimeMs) && refillTimeMs > 0))
      throw new RangeError(`token bucket refill time ${refillTimeMs} ms must be > 0`);
    if (!(Number.isFinite(burst) && burst >= 0)) throw new RangeError(`one-time burst ${burst} must be >= 0`);
    this.size = size;
    this.refillTimeMs = refillTimeMs;
    this.budget = size;
    this.burst = burst;
    this.last = now;
  }

  private refill(now: number): void {
    const dt = now - this.last;
    if (dt > 0) {
      this.budget = Math.min(this.size, this.budget + (dt * this.size) / this.refillTimeMs);
      this.last = now;
    }
  }

  /** Milliseconds until `tokens` can be taken (0: now). */
  wait(tokens: number, now: number): number {
    this.refill(now);
    const have = this.budget + this.burst;
    // An operation bigger than the bucket goes once the bucket is full.
    const need = Math.min(tokens, this.size + this.burst);
    if (have >= need) return 0;
    return Math.ceil(((need - have) * this.refillTimeMs) / this.size);
  }

  /** Take `tokens` (call only after wait() said 0). */
  take(tokens: number): void {
    const fromBurst = Math.min(this.burst, tokens);
    this.burst -= fromBurst;
    this.budget -= tokens - fromBurst;
  }
}

export interface RateLimiterStats {
  /** Operations refused (each one waited for a timer). */
  throttled: number;
}

export class RateLimiter {
  private readonly bw: TokenBucket | null;
  private readonly ops: TokenBucket | null;
  private readonly clock: RateLimiterClock;
  private wake: (() => void) | null = null;
  private timerArmed = false;
  readonly stats: RateLimiterStats = { throttled: 0 };

  constructor(config: RateLimiterConfig, clock: RateLimiterClock = hostTimers) {
    this.clock = clock;
    const now = clock.now();
    this.bw = config.bandwidth ? new TokenBucket(config.bandwidth, now) : null;
    this.ops = config.ops ? new TokenBucket(config.ops, now) : null;
  }

  /** What to call when a refused operation may go (the device serving its queue again). */
  onWake(fn: () => void): void {
    this.wake = fn;
  }

  /** Whether a refused operation is waiting for the timer. */
  get blocked(): boolean {
    return this.timerArmed;
  }

  /**
   * Take one operation of `bytes` bytes: true if it may go now; false if not, in which
   * case the wake callback runs once it may.
   */
  consume(bytes: number): boolean {
    if (this.timerArmed) return false;
    const now = this.clock.now();
    const wait = Math.max(this.bw?.wait(bytes, now) ?? 0, this.ops?.wait(1, now) ?? 0);
    if (wait === 0) {
      this.bw?.take(bytes);
      this.ops?.take(1);
      return true;
    }
    this.stats.throttled++;
    this.timerArmed = true;
    this.clock.setTimer(wait, () => {
      this.timerArmed = false;
      this.wake?.();
    });
    return false;
  }
}

/** A clock for tests: time moves when told, timers fire as it passes them. */
export class ManualTimers implements RateLimiterClock {
  private t = 0;
  private timers: { at: number; fn: () => void }[] = [];

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): void {
    this.timers.push({ at: this.t + ms, fn });
  }

  /** Timers waiting. */
  get pending(): number {
    return this.timers.length;
  }

  /** Move time on by `ms`, firing the timers that come due, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (next === undefined || next.at > end) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }
}
