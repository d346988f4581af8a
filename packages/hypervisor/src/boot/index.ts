export * from "./elf.ts";
export * from "./elf-loader.ts";
export * from "./gzip.ts";
export * from "./initrd.ts";
export * from "./linux.ts";
