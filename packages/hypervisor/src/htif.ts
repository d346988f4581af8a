import type { GuestRam } from "@visor/memory";

/**
 * HTIF, the host-target interface of Spike, riscv-tests and TinyEMU: the program writes
 * a command word to the `tohost` symbol and the host answers through `fromhost`.
 *
 *   tohost = device << 56 | command << 48 | payload
 *   device 0, payload odd:  exit with code payload >> 1 (0 = pass; riscv-tests put the
 *                           failing test number there)
 *   device 0, payload even: pointer to a "magic memory" syscall block (8 dwords:
 *                           number, a0, a1, a2 ...); only write (64) to fd 1/2 is served,
 *                           at most HTIF_MAX_WRITE bytes per call (a short write, as
 *                           write(2) may be; the program loops for the rest)
 *   device 1, command 1:    console putchar (payload & 0xff)
 *
 * The word lives in RAM, so the host polls it between run slices.
 */
/** Most bytes one HTIF write syscall copies out of the guest. */
export const HTIF_MAX_WRITE = 64 * 1024;

export class Htif {
  exitCode: number | undefined;
  private readonly ram: GuestRam;
  private readonly tohost: number;
  private readonly fromhost: number | undefined;
  private readonly out: (bytes: Uint8Array) => void;

  constructor(ram: GuestRam, tohost: number, fromhost: number | undefined, out: (bytes: Uint8Array) => void) {
    this.ram = ram;
    this.tohost = tohost;
    this.fromhost = fromhost;
    this.out = out;
    if (!ram.contains(tohost, 8)) throw new Error(`tohost at 0x${tohost.toString(16)} is outside RAM`);
  }

  /** Service a pending tohost command. Returns true once the program has exited. */
  poll(): boolean {
    const v = this.ram.read64(this.tohost);
    if (v === 0n) return false;
    this.ram.write64(this.tohost, 0n);
    const dev = Number(v >> 56n);
    const cmd = Number((v >> 48n) & 0xffn);
    const payload = v & 0xffffffffffffn;
    if (dev === 0 && cmd === 0) {
      if ((payload & 1n) === 1n) {
        this.exitCode = Number(payload >> 1n);
        return true;
      }
      this.syscall(Number(payload));
    } else if (dev === 1 && cmd === 1) {
      this.out(new Uint8Array([Number(payload & 0xffn)]));
      this.ack(v);
    } else {
      this.ack(v);
    }
    return false;
  }

  private syscall(addr: number): void {
    const ram = this.ram;
    if (!ram.contains(addr, 64)) {
      this.exitCode = 0x7fff;
      return;
    }
    const num = ram.read64(addr);
    let ret = -38n; // -ENOSYS
    if (num === 64n) {
      const fd = ram.read64(addr + 8);
      const buf = Number(ram.read64(addr + 16));
      const len = Math.min(Number(ram.read64(addr + 24)), HTIF_MAX_WRITE);
      if ((fd === 1n || fd === 2n) && ram.contains(buf, len)) {
        this.out(ram.view(buf, len).slice());
        ret = BigInt(len);
      } else {
        ret = -14n; // -EFAULT
      }
    } else if (num === 93n) {
      this.exitCode = Number(ram.read64(addr + 8));
      return;
    }
    ram.write64(addr, BigInt.asUintN(64, ret));
    this.ack(1n);
  }

  private ack(v: bigint): void {
    if (this.fromhost !== undefined) this.ram.write64(this.fromhost, v === 0n ? 1n : v);
  }
}
