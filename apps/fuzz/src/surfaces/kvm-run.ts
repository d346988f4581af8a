/**
 * The shared `kvm_run` page of a KVM vCPU, as @visor/kvm decodes it: after an I/O or MMIO
 * exit, KVM writes the access there on the guest's behalf (direction, size, port, repeat
 * count, data offset; MMIO address, length, data). Every field is filled with arbitrary
 * and lying values. `KvmRun.io()` and `mmio()` must either refuse the page with a
 * one-line RangeError of their own or return an access whose every data element lies
 * inside the page, so the VMM's reads and answers (`ioData`, `setIoData`, `mmioData`,
 * `setMmioData`) never leave it. No /dev/kvm needed: the page is an ordinary buffer.
 */
import { KvmRun } from "@visor/kvm";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";

const PAGE = 4096;
/** Values a lying 64-bit data offset takes: the page's edges, 2^32, 2^53 and beyond. */
const OFFSETS = [0n, 31n, 32n, 4095n, 4096n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n];

interface Input {
  direction: number;
  size: number;
  port: number;
  count: number;
  offset: bigint;
  len: number;
  isWrite: number;
}

const surface: FuzzSurface<Input> = {
  name: "kvm-run",
  description:
    "kvm_run pages with arbitrary I/O and MMIO exit fields (sizes, repeat counts, 64-bit data offsets, lengths): a RangeError of the decoder's own, or accesses that stay inside the page",
  arbitrary: fc.record({
    direction: fc.nat(255),
    size: fc.oneof(fc.constantFrom(1, 2, 4), fc.nat(255)),
    port: fc.nat(0xffff),
    count: fc.oneof(fc.nat(8), fc.constantFrom(0, 1024, 4064, 0xffff_ffff), fc.nat(0xffff_ffff)),
    offset: fc.oneof(fc.constantFrom(...OFFSETS), fc.bigInt(0n, 2n ** 64n - 1n), fc.bigInt(0n, 5000n)),
    len: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.nat(0xffff_ffff)),
    isWrite: fc.nat(255),
  }),
  check(input) {
    const bytes = new Uint8Array(PAGE);
    const run = new KvmRun(bytes);
    const dv = run.dv;
    dv.setUint32(8, 2, true); // exit_reason IO
    dv.setUint8(32, input.direction);
    dv.setUint8(33, input.size);
    dv.setUint16(34, input.port, true);
    dv.setUint32(36, input.count, true);
    dv.setBigUint64(40, input.offset, true);
    const refused = (f: () => void, what: string) => {
      try {
        f();
      } catch (e) {
        invariant(e instanceof RangeError, `${what}: not a RangeError: ${String(e)}`);
        invariant(!e.message.includes("\n"), `${what}: not one line`);
        invariant(
          !/outside the bounds|Offset is outside/.test(e.message),
          `${what}: the host failed: ${e.message}`,
        );
      }
    };
    refused(() => {
      const io = run.io();
      invariant(io.size === 1 || io.size === 2 || io.size === 4, `io() accepted size ${io.size}`);
      const last = io.count - 1;
      invariant(io.dataOffset + io.size * io.count <= PAGE, "io() accepted data past the page");
      // the VMM reads and answers the first and the last element: both inside the page
      for (const i of io.count > 1 ? [0, last] : [0]) {
        run.setIoData(io, i, run.ioData(io, i) ^ 0xff);
      }
    }, "io");
    dv.setUint32(8, 6, true); // exit_reason MMIO
    dv.setBigUint64(32, input.offset, true); // phys_addr: any 64-bit value
    dv.setUint32(48, input.len, true);
    dv.setUint8(52, input.isWrite);
    refused(() => {
      const m = run.mmio();
      invariant(m.len >= 1 && m.len <= 8, `mmio() accepted length ${m.len}`);
      run.setMmioData(4, run.mmioData(4) ^ 1);
      run.setMmioData(4, run.mmioData(4, 4), 4);
    }, "mmio");
  },
  ciRuns: 300,
};

export default surface;
