/**
 * The VM console on the host terminal: raw mode, and an escape key like QEMU's
 * (Ctrl-A X quits, Ctrl-A H lists the keys, Ctrl-A W saves a snapshot, Ctrl-A Ctrl-A
 * sends a Ctrl-A). The terminal
 * mode is restored on every way out: normal exit, signals, uncaught errors.
 */
const CTRL_A = 0x01;

/**
 * Guest output the VMM holds for stdout before it holds the guest instead: its own batch
 * plus what the stream has queued (Node queues without limit; write() only advises).
 */
export const CONSOLE_HIGH_WATER = 64 * 1024;
/** Guest output is batched up to this many bytes per stdout write (one byte per UART write is not one syscall). */
const CONSOLE_BATCH = 4096;

/** The part of a Node writable stream the console output uses (process.stdout). */
export interface OutputStream {
  write(chunk: Uint8Array): boolean;
  readonly writableLength: number;
  readonly writableNeedDrain: boolean;
  once(event: "drain", listener: () => void): unknown;
  on(event: "error", listener: (e: Error) => void): unknown;
}

/**
 * The machine's console sink (a MachineConsole): guest output batched into `stream`
 * (stdout), with back-pressure. Once CONSOLE_HIGH_WATER bytes wait, write() returns false
 * and the machine holds the guest until the stream has drained, so a reader that stops
 * reading (a pipe nobody empties) costs the host at most that much memory, not all the
 * guest can print. A stream that fails (EPIPE: the reader is gone) discards output.
 */
export class ConsoleOutput {
  /** The batch: filled in place, so a byte from the UART allocates nothing here. */
  private readonly batch = new Uint8Array(CONSOLE_BATCH);
  private size = 0;
  private scheduled = false;
  private watching = false;
  private closed = false;
  private told = false;
  private listener: (() => void) | undefined;
  private readonly stream: OutputStream;
  private readonly notice: (message: string) => void;

  /** `notice` is told, once, the first time the guest is held (default: nothing). */
  constructor(stream: OutputStream, notice: (message: string) => void = () => {}) {
    this.stream = stream;
    this.notice = notice;
    stream.on("error", () => {
      this.closed = true;
      this.size = 0;
      this.listener?.();
    });
  }

  /** Take guest output; false when the host side is backed up (the guest should wait). */
  write(bytes: Uint8Array): boolean {
    if (this.closed) return true;
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(bytes.length - at, CONSOLE_BATCH - this.size);
      this.batch.set(n === bytes.length ? bytes : bytes.subarray(at, at + n), this.size);
      this.size += n;
      at += n;
      if (this.size === CONSOLE_BATCH) this.flush();
      if (this.closed) return true;
    }
    if (this.size > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    if (!this.full) return true;
    if (!this.told) {
      this.told = true;
      this.notice("visor: the console output is not being read; the guest waits until it is\n");
    }
    this.watch();
    return false;
  }

  /** Called when a backed-up console can take output again. */
  onDrain(listener: () => void): void {
    this.listener = listener;
  }

  /** Bytes waiting: the batch and the stream's queue. */
  get pending(): number {
    return this.size + this.stream.writableLength;
  }

  flush(): void {
    this.scheduled = false;
    if (this.size === 0 || this.closed) return;
    const all = Buffer.from(this.batch.subarray(0, this.size));
    this.size = 0;
    try {
      this.stream.write(all);
    } catch {
      // stdout closed: drop the output
      this.closed = true;
    }
  }

  private get full(): boolean {
    return !this.closed && this.pending >= CONSOLE_HIGH_WATER;
  }

  /** Wait for the stream to drain, then tell the listener (or keep waiting). */
  private watch(): void {
    if (this.watching) return;
    this.watching = true;
    const check = () => {
      this.watching = false;
      this.flush();
      if (this.full) this.watch();
      else this.listener?.();
    };
    if (this.stream.writableNeedDrain) this.stream.once("drain", check);
    else setImmediate(check);
  }
}

export interface ConsoleHandlers {
  /** Bytes typed for the guest. */
  input(bytes: Uint8Array): void;
  /** Ctrl-A X. */
  quit(): void;
  /** Ctrl-A S: print statistics so far. */
  stats?(): void;
  /** Ctrl-A W: save a snapshot. */
  snapshot?(): void;
  /** Ctrl-A M: live-migrate. */
  migrate?(): void;
}

export class HostConsole {
  private escape = false;
  private raw = false;
  private readonly restoreBound = () => this.restore();
  private readonly onData = (chunk: Buffer) => this.handle(chunk);

  private readonly handlers: ConsoleHandlers;

  constructor(handlers: ConsoleHandlers) {
    this.handlers = handlers;
  }

  start(): void {
    const stdin = process.stdin;
    if (stdin.isTTY) {
      stdin.setRawMode(true);
      this.raw = true;
      process.on("exit", this.restoreBound);
    }
    stdin.on("data", this.onData);
    stdin.resume();
  }

  write(bytes: Uint8Array): void {
    process.stdout.write(bytes);
  }

  stop(): void {
    process.stdin.off("data", this.onData);
    process.stdin.pause();
    this.restore();
  }

  restore(): void {
    if (this.raw && process.stdin.isTTY) {
      try {
        process.stdin.setRawMode(false);
      } catch {
        // the terminal is gone; nothing to restore
      }
    }
    this.raw = false;
  }

  private handle(chunk: Buffer): void {
    if (!this.raw) {
      this.handlers.input(chunk);
      return;
    }
    const out: number[] = [];
    for (const b of chunk) {
      if (this.escape) {
        this.escape = false;
        const k = String.fromCharCode(b).toLowerCase();
        if (k === "x") {
          this.flush(out);
          process.stdout.write("\r\nvisor: terminated by Ctrl-A X\r\n");
          this.handlers.quit();
          return;
        }
        if (k === "h" || k === "?") {
          process.stdout.write(
            "\r\nC-a h    print this help\r\nC-a x    exit visor\r\nC-a s    print VM statistics\r\nC-a w    save the VM (--save-to PATH)\r\nC-a m    live-migrate (--migrate-to HOST:PORT)\r\nC-a C-a  send C-a to the guest\r\n",
          );
        } else if (k === "s") {
          this.handlers.stats?.();
        } else if (k === "w") {
          this.handlers.snapshot?.();
        } else if (k === "m") {
          this.handlers.migrate?.();
        } else if (b === CTRL_A) {
          out.push(CTRL_A);
        }
        continue;
      }
      if (b === CTRL_A) {
        this.escape = true;
        continue;
      }
      out.push(b);
    }
    this.flush(out);
  }

  private flush(out: number[]): void {
    if (out.length > 0) this.handlers.input(Uint8Array.from(out));
    out.length = 0;
  }
}
