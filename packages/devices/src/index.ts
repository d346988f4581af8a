/**
 * @visor/devices: the devices of a RISC-V `virt`-style machine. Each is a BusDevice (see
 * @visor/io-bus) that knows nothing of its base address, raises interrupts through an
 * injected IrqLine, reaches guest memory only through GuestMemory's bounds-checked methods (guest RAM only),
 * and saves/restores its state with toState()/fromState().
 */
export * from "./block/image-file.ts";
export * from "./block/qcow2.ts";
export * from "./byte-queue.ts";
export * from "./clint.ts";
export * from "./clock.ts";
export * from "./goldfish-rtc.ts";
export * from "./irq.ts";
export * from "./pci/config.ts";
export * from "./pci/constants.ts";
export * from "./pci/host.ts";
export * from "./pci/io-window.ts";
export * from "./plic.ts";
export * from "./pvpanic.ts";
export * from "./rate-limiter.ts";
export * from "./state.ts";
export * from "./syscon.ts";
export * from "./uart16550.ts";
export * from "./virtio/blk.ts";
export * from "./virtio/block-backend.ts";
export * from "./virtio/console.ts";
export * from "./virtio/constants.ts";
export * from "./virtio/device.ts";
export * from "./virtio/mmio.ts";
export * from "./virtio/net.ts";
export * from "./virtio/net-backend.ts";
export * from "./virtio/pci-legacy.ts";
export * from "./virtio/queue.ts";
export * from "./virtio/rng.ts";
