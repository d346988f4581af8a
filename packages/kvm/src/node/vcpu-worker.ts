/// <reference types="node" />
/**
 * A vCPU's thread: KVM_RUN in a loop, blocking only this thread. Port and MMIO exits go to
 * the main thread through the handoff block (handoff.ts); anything else ends the loop with
 * its exit reason. Errors are posted as a one-line message.
 */
import { parentPort, workerData } from "node:worker_threads";
import { KVM_EXIT, KVM_EXIT_IO_OUT } from "../constants.ts";
import { VcpuFd } from "../kvm.ts";
import { COUNTER_SLOTS, DONE, H, KIND_MMIO, KIND_PIO, POSTED, type VcpuWorkerData } from "./handoff.ts";

const data = workerData as VcpuWorkerData;
const ctl = new Int32Array(data.control);
const vcpu = VcpuFd.fromFd(data.fd, data.id, data.runSize);
const run = vcpu.kvmRun;

/** Hand one access to the main thread and wait for it to be done. */
function post(
  kind: number,
  addr: number,
  addrHi: number,
  size: number,
  write: boolean,
  value: number,
  hi: number,
): void {
  ctl[H.KIND] = kind;
  ctl[H.ADDR_LO] = addr;
  ctl[H.ADDR_HI] = addrHi;
  ctl[H.SIZE] = size;
  ctl[H.WRITE] = write ? 1 : 0;
  ctl[H.VALUE] = value;
  ctl[H.VALUE_HI] = hi;
  Atomics.store(ctl, H.STATE, POSTED);
  Atomics.notify(ctl, H.STATE);
  Atomics.wait(ctl, H.STATE, POSTED);
}

function loop(): number {
  for (;;) {
    if (Atomics.load(ctl, H.STOP) !== 0) return KVM_EXIT.INTR;
    const reason = vcpu.run();
    Atomics.add(ctl, H.COUNTERS + Math.min(reason, COUNTER_SLOTS - 1), 1);
    switch (reason) {
      case KVM_EXIT.IO: {
        const io = run.io();
        const write = io.direction === KVM_EXIT_IO_OUT;
        for (let i = 0; i < io.count; i++) {
          post(KIND_PIO, io.port, 0, io.size, write, write ? run.ioData(io, i) : 0, 0);
          if (!write) run.setIoData(io, i, ctl[H.VALUE]!);
        }
        break;
      }
      case KVM_EXIT.MMIO: {
        const m = run.mmio();
        const lo = Number(m.physAddr & 0xffff_ffffn);
        const hi = Number(m.physAddr >> 32n);
        post(
          KIND_MMIO,
          lo | 0,
          hi | 0,
          m.len,
          m.isWrite,
          m.isWrite ? run.mmioData(4) : 0,
          m.isWrite ? run.mmioData(4, 4) : 0,
        );
        if (!m.isWrite) {
          run.setMmioData(4, ctl[H.VALUE]! >>> 0);
          run.setMmioData(4, ctl[H.VALUE_HI]! >>> 0, 4);
        }
        break;
      }
      case KVM_EXIT.INTR:
        break;
      case KVM_EXIT.INTERNAL_ERROR: {
        const e = run.internalError();
        const rip = vcpu.getRegs().rip;
        parentPort?.postMessage({
          detail: `suberror ${e.suberror}${e.suberror === 1 ? " (instruction emulation failed)" : ""} at rip 0x${rip.toString(16)}${e.data.length > 0 ? `, data ${e.data.map((d) => `0x${d.toString(16)}`).join(" ")}` : ""}`,
        });
        return reason;
      }
      default:
        return reason;
    }
  }
}

let reason: number;
try {
  reason = loop();
} catch (e) {
  parentPort?.postMessage({ error: `vCPU ${data.id}: ${e instanceof Error ? e.message : String(e)}` });
  reason = -1;
}
Atomics.store(ctl, H.REASON, reason);
Atomics.store(ctl, H.STATE, DONE);
Atomics.notify(ctl, H.STATE);
