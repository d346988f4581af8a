/// <reference types="node" />
/**
 * A vCPU on a worker thread of its own (Node worker_threads): the thread sits in KVM_RUN
 * and hands each port or MMIO exit to a handler on this thread (where the device models
 * live) through a SharedArrayBuffer: the worker posts the access and sleeps in
 * Atomics.wait; this thread is woken by Atomics.waitAsync, so its event loop never blocks,
 * runs the handler, and wakes the worker with the result. Other exits end the thread's
 * loop and resolve `done` with the exit reason.
 */
import { Worker } from "node:worker_threads";
import { exitReasonName } from "../constants.ts";
import type { VcpuFd } from "../kvm.ts";
import { DONE, H, HANDOFF_INTS, KIND_PIO, POSTED, RUNNING, type VcpuWorkerData } from "./handoff.ts";

/** Atomics.waitAsync (ES2024; Node has it, the workspace's TypeScript lib is ES2023). */
type WaitAsync = (
  a: Int32Array,
  index: number,
  value: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync: WaitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** One posted exit, read and answered in place (no allocation per exit). */
export class ExitSlot {
  private readonly ctl: Int32Array;
  constructor(ctl: Int32Array) {
    this.ctl = ctl;
  }
  get isPio(): boolean {
    return this.ctl[H.KIND] === KIND_PIO;
  }
  /** The port (PIO) or guest-physical address (MMIO, exact below 2^53). */
  get addr(): number {
    return (this.ctl[H.ADDR_HI]! >>> 0) * 2 ** 32 + (this.ctl[H.ADDR_LO]! >>> 0);
  }
  /** Bytes: 1, 2 or 4 for ports; 1 to 8 for MMIO. */
  get size(): number {
    return this.ctl[H.SIZE]!;
  }
  get write(): boolean {
    return this.ctl[H.WRITE] === 1;
  }
  /** The value written (low 32 bits, unsigned). */
  get value(): number {
    return this.ctl[H.VALUE]! >>> 0;
  }
  /** Bytes 4-7 of an 8-byte MMIO write. */
  get valueHi(): number {
    return this.ctl[H.VALUE_HI]! >>> 0;
  }
  /** Answer a read: the low 32 bits and, for 8-byte MMIO, the high 32. */
  setResult(lo: number, hi = 0): void {
    this.ctl[H.VALUE] = lo | 0;
    this.ctl[H.VALUE_HI] = hi | 0;
  }
}

/**
 * How a vCPU thread ended: a KVM exit reason it does not hand over (with what KVM said
 * about an internal error), or an error, or stopped on request.
 */
export type VcpuThreadEnd = { reason: string; detail?: string } | { error: string } | { stopped: true };

export class VcpuThread {
  readonly id: number;
  private readonly ctl: Int32Array;
  private readonly worker: Worker;
  private readonly slot: ExitSlot;
  private ended = false;
  /** Resolves when the thread has left its run loop. */
  readonly done: Promise<VcpuThreadEnd>;

  /**
   * Start `vcpu` on a new worker thread. `onAccess` runs on this thread for every port or
   * MMIO exit; a throw from it ends the vCPU with that error.
   */
  constructor(vcpu: VcpuFd, onAccess: (slot: ExitSlot) => void) {
    this.id = vcpu.id;
    const control = new SharedArrayBuffer(HANDOFF_INTS * 4);
    this.ctl = new Int32Array(control);
    this.slot = new ExitSlot(this.ctl);
    const data: VcpuWorkerData = { fd: vcpu.fd, id: vcpu.id, runSize: vcpu.runSize, control };
    const script = import.meta.url.endsWith(".ts") ? "./vcpu-worker.ts" : "./vcpu-worker.js";
    this.worker = new Worker(new URL(script, import.meta.url), { workerData: data });
    let posted: string | undefined;
    let detail: string | undefined;
    this.worker.on("message", (m: { error?: string; detail?: string }) => {
      if (m.error !== undefined) posted = m.error;
      if (m.detail !== undefined) detail = m.detail;
    });
    this.worker.on("error", (e) => {
      posted = `vCPU ${vcpu.id} thread: ${e.message}`;
    });
    this.done = this.serve(onAccess).then(async (end) => {
      // the worker's last message arrives after its final state: let it be delivered
      if ("reason" in end || "error" in end) await new Promise((r) => setTimeout(r, 20));
      if (posted !== undefined) return { error: posted };
      if ("reason" in end && detail !== undefined) return { ...end, detail };
      return end;
    });
  }

  private async serve(onAccess: (slot: ExitSlot) => void): Promise<VcpuThreadEnd> {
    const ctl = this.ctl;
    let failure: string | undefined;
    for (;;) {
      const w = waitAsync(ctl, H.STATE, RUNNING);
      if (w.async) await w.value;
      const state = Atomics.load(ctl, H.STATE);
      if (state === POSTED) {
        try {
          onAccess(this.slot);
        } catch (e) {
          failure ??= `vCPU ${this.id}: ${e instanceof Error ? e.message : String(e)}`;
          this.requestStop();
        }
        Atomics.store(ctl, H.STATE, RUNNING);
        Atomics.notify(ctl, H.STATE);
      } else if (state === DONE) {
        this.ended = true;
        if (failure !== undefined) return { error: failure };
        const reason = Atomics.load(ctl, H.REASON);
        if (reason < 0) return { error: `vCPU ${this.id} failed` }; // the message names it
        if (Atomics.load(ctl, H.STOP) !== 0) return { stopped: true };
        return { reason: exitReasonName(reason) };
      }
    }
  }

  /** Ask the thread to leave its loop at its next exit (a halted vCPU may never have one). */
  requestStop(): void {
    Atomics.store(this.ctl, H.STOP, 1);
  }

  /** Let the process end without this thread (see exitProcess for one stuck in KVM_RUN). */
  unref(): void {
    this.worker.unref();
  }

  /** True once the thread has left its run loop. */
  get finished(): boolean {
    return this.ended;
  }

  /** KVM exits of this vCPU so far, by reason name. */
  exitCounts(): Map<string, number> {
    const m = new Map<string, number>();
    for (let r = 0; r < HANDOFF_INTS - H.COUNTERS; r++) {
      const n = this.ctl[H.COUNTERS + r]!;
      if (n > 0) m.set(exitReasonName(r), n);
    }
    return m;
  }
}
