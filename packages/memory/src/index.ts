export * from "./address.ts";
export * from "./ram.ts";
export * from "./walk.ts";
