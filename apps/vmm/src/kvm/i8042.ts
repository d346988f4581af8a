/**
 * The part of an i8042 keyboard controller a microVM needs, as Firecracker's
 * (src/vmm/src/devices/legacy/i8042.rs) and kvmtool's: the controller answers its
 * self-test and keeps its command byte, so Linux's driver probes it quickly, and command
 * 0xFE (pulse the reset line) on the command port is how an x86 guest without ACPI
 * resets the machine (Linux's `reboot=k`). No keyboard is attached: keyboard commands
 * get no answer. Registered on the port bus over 0x60-0x64 (data at offset 0, command
 * and status at offset 4).
 */
import type { BusDevice } from "@visor/io-bus";

const STATUS_OBF = 0x01; // output buffer full
const STATUS_SYS = 0x04; // system flag: self-test passed
const STATUS_CMD = 0x08; // last write was a command

const CMD_READ_CTR = 0x20;
const CMD_WRITE_CTR = 0x60;
const CMD_SELF_TEST = 0xaa;
const CMD_KBD_TEST = 0xab;
const CMD_READ_OUTPUT_PORT = 0xd0;
const CMD_RESET = 0xfe;

export class I8042 implements BusDevice {
  readonly name = "i8042";
  private ctr = 0x30; // keyboard and aux interrupts off, both clocks disabled
  private status = STATUS_SYS;
  private out: number[] = [];
  private expectCtr = false;
  private readonly onReset: () => void;

  constructor(onReset: () => void) {
    this.onReset = onReset;
  }

  read(offset: number): number {
    if (offset === 4) return this.status | (this.out.length > 0 ? STATUS_OBF : 0);
    if (offset === 0) return this.out.shift() ?? 0;
    return 0xff;
  }

  write(offset: number, _size: number, value: number): void {
    const v = value & 0xff;
    if (offset === 4) {
      this.status |= STATUS_CMD;
      this.expectCtr = false;
      switch (v) {
        case CMD_READ_CTR:
          this.push(this.ctr);
          break;
        case CMD_WRITE_CTR:
          this.expectCtr = true;
          break;
        case CMD_SELF_TEST:
          this.push(0x55);
          break;
        case CMD_KBD_TEST:
          this.push(0x00);
          break;
        case CMD_READ_OUTPUT_PORT:
          this.push(0x01); // reset line high (not in reset)
          break;
        case CMD_RESET:
          this.onReset();
          break;
        default:
          break; // enable/disable ports and the rest: nothing to do without a keyboard
      }
      return;
    }
    if (offset === 0) {
      this.status &= ~STATUS_CMD;
      if (this.expectCtr) {
        this.ctr = v;
        this.expectCtr = false;
      }
    }
  }

  private push(v: number): void {
    if (this.out.length < 16) this.out.push(v);
  }
}
