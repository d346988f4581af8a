/**
 * A console held in memory: stdin from a buffer, stdout and stderr collected. For tests,
 * scripted runs and browsers without a terminal.
 */
import type { HostConsole } from "./host.ts";
import { utf8Decode, utf8Encode } from "./utf8.ts";

export class MemoryConsole implements HostConsole {
  private readonly input: Uint8Array;
  private inPos = 0;
  private readonly out: Uint8Array[][] = [[], [], []];
  private readonly terminal: boolean;
  rawMode = false;

  constructor(stdin: Uint8Array | string = new Uint8Array(0), opts: { tty?: boolean } = {}) {
    this.input = typeof stdin === "string" ? utf8Encode(stdin) : stdin;
    this.terminal = opts.tty ?? false;
  }

  write(fd: 1 | 2, data: Uint8Array): void {
    this.out[fd]!.push(data.slice());
  }

  read(dst: Uint8Array): number {
    const n = Math.min(dst.length, this.input.length - this.inPos);
    dst.set(this.input.subarray(this.inPos, this.inPos + n));
    this.inPos += n;
    return n;
  }

  hasInput(): boolean {
    return true;
  }

  isatty(): boolean {
    return this.terminal;
  }

  windowSize(): { rows: number; cols: number } | undefined {
    return this.terminal ? { rows: 24, cols: 80 } : undefined;
  }

  setRawMode(raw: boolean): void {
    this.rawMode = raw;
  }

  /** Everything written to fd 1 or 2. */
  bytes(fd: 1 | 2): Uint8Array {
    const parts = this.out[fd]!;
    const n = parts.reduce((a, p) => a + p.length, 0);
    const r = new Uint8Array(n);
    let o = 0;
    for (const p of parts) {
      r.set(p, o);
      o += p.length;
    }
    return r;
  }

  text(fd: 1 | 2): string {
    return utf8Decode(this.bytes(fd));
  }
}
