/**
 * The RISC-V F/D floating-point unit of the hart (see fpu.ts for the design and the
 * correctness arguments of its fast paths).
 */
export { Fpu, type FpuState } from "./fpu.ts";
