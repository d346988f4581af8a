/**
 * The part of the WebAssembly JS API the packages use, typed here because the packages
 * compile without DOM or Node typings (they run in both). `wasmApi` is undefined where the
 * host has no WebAssembly; callers then fall back to plain buffers and the interpreter.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

export interface WasmTable {
  readonly length: number;
  get(i: number): unknown;
  set(i: number, f: unknown): void;
  grow(delta: number): number;
}

export interface WasmApi {
  Memory: new (d: { initial: number; maximum?: number }) => WasmMemory;
  Table: new (d: { element: "anyfunc"; initial: number }) => WasmTable;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => WasmInstance;
}

export const wasmApi: WasmApi | undefined = (() => {
  const w = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  return typeof w === "object" && typeof w.Memory === "function" ? w : undefined;
})();

/** Bytes per WebAssembly page. */
export const WASM_PAGE_SIZE = 65536;

/** A zeroed WebAssembly.Memory of exactly `bytes` (a multiple of 64 KiB), or undefined when the host cannot give one. */
export function wasmMemory(bytes: number): WasmMemory | undefined {
  if (wasmApi === undefined || bytes % WASM_PAGE_SIZE !== 0) return undefined;
  const pages = bytes / WASM_PAGE_SIZE;
  try {
    return new wasmApi.Memory({ initial: pages, maximum: pages });
  } catch {
    return undefined;
  }
}
