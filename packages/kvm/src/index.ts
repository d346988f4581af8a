/**
 * @visor/kvm: typed bindings for Linux KVM's system, VM and vCPU ioctls and the shared
 * kvm_run page, through the koffi FFI (prebuilt; no compiler needed). See README.md.
 */
export * from "./constants.ts";
export * from "./errors.ts";
export * from "./kvm.ts";
export * from "./run.ts";
export * from "./structs.ts";
export * from "./x86.ts";
