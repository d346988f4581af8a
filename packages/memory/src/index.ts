export * from "./address.ts";
export * from "./ram.ts";
