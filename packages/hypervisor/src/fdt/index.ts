export * from "./fdt.ts";
export * from "./reader.ts";
export * from "./virt.ts";
export * from "./virt-memmap.ts";
