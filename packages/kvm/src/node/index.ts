/**
 * @visor/kvm/node: running vCPUs on Node worker threads (VcpuThread), with their port and
 * MMIO exits handed to the main thread.
 */
export * from "./vcpu-thread.ts";
