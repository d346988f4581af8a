export * from "./address.ts";
export * from "./guest-memory.ts";
export * from "./ram.ts";
export * from "./walk.ts";
export * from "./wasm-api.ts";
