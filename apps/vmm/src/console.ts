/**
 * The VM console on the host terminal: raw mode, and an escape key like QEMU's
 * (Ctrl-A X quits, Ctrl-A H lists the keys, Ctrl-A W saves a snapshot, Ctrl-A Ctrl-A
 * sends a Ctrl-A). The terminal
 * mode is restored on every way out: normal exit, signals, uncaught errors.
 */
const CTRL_A = 0x01;

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
            "\r\nC-a h    print this help\r\nC-a x    exit visor\r\nC-a s    print VM statistics\r\nC-a w    save a snapshot (--snapshot PATH)\r\nC-a m    live-migrate (--migrate-to HOST:PORT)\r\nC-a C-a  send C-a to the guest\r\n",
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
