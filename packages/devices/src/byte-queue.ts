/** A bounded FIFO of bytes (a ring buffer), for host input waiting for a guest. */
export class ByteQueue {
  private readonly buf: Uint8Array;
  private head = 0;
  private count = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`queue capacity ${capacity} must be >= 1`);
    this.buf = new Uint8Array(capacity);
  }

  get capacity(): number {
    return this.buf.length;
  }

  get length(): number {
    return this.count;
  }

  get free(): number {
    return this.buf.length - this.count;
  }

  /** Append as much of `bytes` as fits; returns how many were taken. */
  push(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.free);
    const cap = this.buf.length;
    const tail = (this.head + this.count) % cap;
    const first = Math.min(n, cap - tail);
    this.buf.set(bytes.subarray(0, first), tail);
    if (n > first) this.buf.set(bytes.subarray(first, n), 0);
    this.count += n;
    return n;
  }

  /** Copy the first min(n, length) bytes out without removing them. */
  peek(n: number): Uint8Array {
    const len = Math.min(n, this.count);
    const out = new Uint8Array(len);
    const cap = this.buf.length;
    const first = Math.min(len, cap - this.head);
    out.set(this.buf.subarray(this.head, this.head + first));
    if (len > first) out.set(this.buf.subarray(0, len - first), first);
    return out;
  }

  /** Drop the first min(n, length) bytes. */
  drop(n: number): void {
    const len = Math.min(n, this.count);
    this.head = (this.head + len) % this.buf.length;
    this.count -= len;
  }

  clear(): void {
    this.head = 0;
    this.count = 0;
  }
}
