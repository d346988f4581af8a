export { type BusOptions, type BusRange, IoBus, UNMAPPED, type WriteListener } from "./bus.ts";
export * from "./device.ts";
export { IoManager } from "./manager.ts";
export { MMIO_LIMIT, MmioBus } from "./mmio.ts";
export { PORT_LIMIT, PortBus } from "./pio.ts";
export type * from "./stats.ts";
