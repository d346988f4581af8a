export * from "./code-cache.ts";
export * as csr from "./csr.ts";
export * from "./decode.ts";
export * from "./exit.ts";
export { Fpu } from "./fpu/index.ts";
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
