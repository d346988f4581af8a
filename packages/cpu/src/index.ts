export * from "./code-cache.ts";
export * as csr from "./csr.ts";
export type { HartDebugHook } from "./debug-hook.ts";
export * from "./decode.ts";
export * from "./exit.ts";
export { Fpu } from "./fpu/index.ts";
export { type FaultIn, readVirtual, writeVirtual } from "./gdb/memory.ts";
export { MAX_PACKET } from "./gdb/packets.ts";
export { type GdbConnection, GdbStub, type GdbTarget, type GdbThread } from "./gdb/stub.ts";
export {
  type BootState,
  EXIT_HS,
  EXIT_M,
  Hart,
  type HartOptions,
  type HartState,
  type HartStats,
  type PhysBus,
} from "./hart.ts";
export { JIT_MODES, type JitMode, type JitStats, sumJitStats } from "./jit/types.ts";
