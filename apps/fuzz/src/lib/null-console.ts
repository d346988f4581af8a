import type { HostConsole } from "@visor/syscall";

/**
 * A console for fuzzed programs: output is discarded (random writes can be megabytes of
 * guest memory) and every read gets one newline, so a program never waits for input.
 */
export class NullConsole implements HostConsole {
  write(): void {}
  read(dst: Uint8Array): number {
    if (dst.length > 0) dst[0] = 10;
    return Math.min(1, dst.length);
  }
  hasInput(): boolean {
    return true;
  }
  isatty(): boolean {
    return false;
  }
  windowSize(): undefined {
    return undefined;
  }
  setRawMode(): void {}
}
