export * from "./constants.ts";
export * from "./sbi.ts";
export * from "./stats.ts";
