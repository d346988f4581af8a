export * from "./code-cache.ts";
export * as csr from "./csr.ts";
export * from "./decode.ts";
export { Fpu } from "./fpu/index.ts";
export * from "./hart.ts";
export { HExt, transformedInsn } from "./hext.ts";
