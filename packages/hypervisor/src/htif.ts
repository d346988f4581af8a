import { type Gpa, type GuestMemory, gpaAdd, gpaFromU64 } from "@visor/memory";

/** HTIF syscall numbers (riscv-pk / Linux RISC-V syscall numbers). */
const SYS_WRITE = 64n;
const SYS_EXIT = 93n;
/** Bytes of a "magic memory" syscall block: 8 dwords. */
const SYSCALL_BLOCK = 64;
/** Exit code when the program names a syscall block outside guest RAM. */
const EXIT_BAD_BLOCK = 0x7fff;
const ENOSYS = 38n;
const EFAULT = 14n;

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
 * The word lives in RAM, so the host polls it between run slices. Every address the
 * program gives (the syscall block, a write's buffer) is guest-physical and read through
 * a `GuestMemory`, i.e. inside guest RAM only: anything else is -EFAULT (or, for the
 * block itself, an exit with EXIT_BAD_BLOCK).
 */
/** Most bytes one HTIF write syscall copies out of the guest. */
export const HTIF_MAX_WRITE = 64 * 1024;

export class Htif {
  exitCode: number | undefined;
  private readonly ram: GuestMemory;
  private readonly tohost: Gpa;
  private readonly fromhost: Gpa | undefined;
  private readonly out: (bytes: Uint8Array) => void;

  constructor(ram: GuestMemory, tohost: Gpa, fromhost: Gpa | undefined, out: (bytes: Uint8Array) => void) {
    this.ram = ram;
    this.tohost = tohost;
    this.fromhost = fromhost;
    this.out = out;
    if (!ram.contains(tohost, 8)) throw new Error(`tohost at 0x${tohost.toString(16)} is outside RAM`);
    if (fromhost !== undefined && !ram.contains(fromhost, 8))
      throw new Error(`fromhost at 0x${fromhost.toString(16)} is outside RAM`);
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
      this.syscall(payload);
    } else if (dev === 1 && cmd === 1) {
      this.out(new Uint8Array([Number(payload & 0xffn)]));
      this.ack(v);
    } else {
      this.ack(v);
    }
    return false;
  }

  private syscall(block: bigint): void {
    const ram = this.ram;
    const addr = gpaFromU64(block);
    if (addr === undefined || !ram.contains(addr, SYSCALL_BLOCK)) {
      this.exitCode = EXIT_BAD_BLOCK;
      return;
    }
    const arg = (i: number): bigint => ram.read64(gpaAdd(addr, 8 * i));
    const num = arg(0);
    let ret = -ENOSYS;
    if (num === SYS_WRITE) {
      const fd = arg(1);
      const buf = gpaFromU64(arg(2));
      const len = arg(3);
      if (
        (fd === 1n || fd === 2n) &&
        buf !== undefined &&
        len <= BigInt(HTIF_MAX_WRITE) &&
        ram.contains(buf, Number(len))
      ) {
        this.out(ram.view(buf, Number(len)).slice());
        ret = len;
      } else {
        ret = -EFAULT;
      }
    } else if (num === SYS_EXIT) {
      this.exitCode = Number(arg(1));
      return;
    }
    ram.write64(addr, BigInt.asUintN(64, ret));
    this.ack(1n);
  }

  private ack(v: bigint): void {
    if (this.fromhost !== undefined) this.ram.write64(this.fromhost, v === 0n ? 1n : v);
  }
}
