import { type BusDevice, WIDTH_2, WIDTH_4 } from "@visor/io-bus";
import { stateObject } from "./state.ts";

/*
 * The SiFive test finisher (compatible "sifive,test1", "sifive,test0", "syscon") at
 * 0x100000 on QEMU `virt`. Linux reaches it through syscon-poweroff (value 0x5555) and
 * syscon-reboot (value 0x7777) with 32-bit writes at offset 0; OpenSBI's SRST driver and
 * bare-metal tests write it directly. The low 16 bits of a write at offset 0 select the
 * action; for FAIL the high 16 bits carry an exit code (QEMU hw/misc/sifive_test.c).
 * 2- and 4-byte accesses; reads return 0; other values and offsets are ignored.
 */

export const FINISHER_FAIL = 0x3333;
export const FINISHER_PASS = 0x5555;
export const FINISHER_RESET = 0x7777;
export const SYSCON_SIZE = 0x1000;

export type SysconEvent = { kind: "poweroff" } | { kind: "reset" } | { kind: "fail"; code: number };

export interface SysconOptions {
  /** Bus name; default "syscon". */
  name?: string;
  /** Told about every power-off, reset or failure request from the guest. */
  onEvent: (event: SysconEvent) => void;
}

export class Syscon implements BusDevice {
  readonly name: string;
  readonly widths = WIDTH_2 | WIDTH_4;
  private readonly onEvent: (event: SysconEvent) => void;

  constructor(options: SysconOptions) {
    this.name = options.name ?? "syscon";
    this.onEvent = options.onEvent;
  }

  read(_offset: number, _size: 1 | 2 | 4): number {
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset !== 0 || size === 1) return;
    const v = size === 2 ? value & 0xffff : value >>> 0;
    switch (v & 0xffff) {
      case FINISHER_PASS:
        this.onEvent({ kind: "poweroff" });
        return;
      case FINISHER_RESET:
        this.onEvent({ kind: "reset" });
        return;
      case FINISHER_FAIL:
        this.onEvent({ kind: "fail", code: v >>> 16 });
        return;
      default:
        return;
    }
  }

  reset(): void {}

  /** The finisher has no state; present so snapshots treat every device alike. */
  toState(): Record<string, never> {
    return {};
  }

  fromState(state: unknown): void {
    stateObject(state, "syscon");
  }
}
