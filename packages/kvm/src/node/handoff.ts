/// <reference types="node" />
/**
 * The exit handoff between a vCPU's worker thread and the main thread, where the devices
 * live. One SharedArrayBuffer per vCPU: the worker writes an exit (a port or MMIO access)
 * and sleeps on STATE with Atomics.wait; the main thread, woken by Atomics.waitAsync,
 * performs the access on the device buses, writes the result, and wakes the worker. The
 * worker never touches a device and the main thread never blocks, so the event loop
 * (console input, sockets, timers) keeps running while a vCPU sits in KVM_RUN.
 */

/** Int32 slots of the shared control block. */
export const H = {
  /** RUNNING, POSTED or DONE. */
  STATE: 0,
  /** PIO or MMIO. */
  KIND: 1,
  ADDR_LO: 2,
  ADDR_HI: 3,
  /** Access size in bytes. */
  SIZE: 4,
  /** 1 = write (OUT, MMIO store). */
  WRITE: 5,
  /** The written value, or the value read (low 32 bits). */
  VALUE: 6,
  /** High 32 bits of an 8-byte MMIO access. */
  VALUE_HI: 7,
  /** The main thread asks the worker to stop at its next exit. */
  STOP: 8,
  /** Why the worker stopped (a KVM exit reason, or -1 for an error it posted as a message). */
  REASON: 9,
  /** Exit counters by KVM exit reason (index COUNTERS + reason; the last slot is "other"). */
  COUNTERS: 16,
} as const;
export const COUNTER_SLOTS = 48;
export const HANDOFF_INTS = H.COUNTERS + COUNTER_SLOTS;

export const RUNNING = 0;
export const POSTED = 1;
export const DONE = 2;

export const KIND_PIO = 1;
export const KIND_MMIO = 2;

/** What the main thread gives each vCPU worker (vcpu-worker.ts). */
export interface VcpuWorkerData {
  fd: number;
  id: number;
  runSize: number;
  control: SharedArrayBuffer;
}
