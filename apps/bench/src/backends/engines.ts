/**
 * The three ways to run a region, behind one interface: the project's interpreter (a
 * `Hart` executing the loop's real bytes from RAM), and the two translators.
 *
 * Every engine has its own copy of guest RAM at the same physical addresses (RAM_BASE,
 * RAM_SIZE); the kernels write their data there through `ram` and the results are compared
 * byte for byte.
 */
import { csr, EXIT_M, Hart } from "@visor/cpu";
import { IoManager } from "@visor/io-bus";
import { GuestRam } from "@visor/memory";
import { type JsState, type RamLayout, type RegionFn, translateJs } from "./js.ts";
import type { Region } from "./region.ts";
import { F_OFFSET, PC_OFFSET, RAM_OFFSET, translateWasm } from "./wasm.ts";

/** Guest RAM for the comparison: it holds the program's .text at its link address (0x10000 up). */
export const RAM: RamLayout = { base: 0x10000, size: 8 << 20 };

export type EngineName = "interpreter" | "js" | "wasm";

export interface Engine {
  readonly name: EngineName;
  /** Guest RAM: offset = physical address - RAM.base. */
  readonly ram: DataView;
  setX(i: number, v: bigint): void;
  getX(i: number): bigint;
  setF(i: number, v: number): void;
  /** The register's 64 bits. */
  getF(i: number): bigint;
  /**
   * Run the region from `entry` until control leaves it (or, for the translators, reaches an
   * instruction it cannot continue at, such as an access outside RAM). Returns the
   * instructions executed; `pc` is where it stopped.
   */
  run(entry: number, budget: number): number;
  readonly pc: number;
}

const f64 = new Float64Array(1);
const i64 = new BigInt64Array(f64.buffer);
const bitsOf = (v: number): bigint => {
  f64[0] = v;
  return BigInt.asUintN(64, i64[0]!);
};

/** The interpreter: the loop's bytes in RAM, a c.ebreak at every exit of the region. */
export class InterpreterEngine implements Engine {
  readonly name = "interpreter";
  readonly ram: DataView;
  readonly hart: Hart;
  pc = 0;
  constructor(text: { addr: number; bytes: Uint8Array }, region: Region) {
    const ram = new GuestRam(RAM.base, RAM.size);
    if (text.addr < RAM.base || text.addr + text.bytes.length > RAM.base + RAM.size)
      throw new Error("the program's .text does not fit the comparison's RAM");
    ram.u8.set(text.bytes, text.addr - RAM.base);
    // c.ebreak (2 bytes: never overwrites the next instruction) where control leaves the loop.
    for (const e of region.exits) ram.dv.setUint16(e - RAM.base, 0x9002, true);
    this.ram = ram.dv;
    this.hart = new Hart({ ram, bus: new IoManager().mmio, jit: "off" });
    this.hart.exitMask = EXIT_M;
    this.hart.setCsr(csr.CSR_MSTATUS, BigInt(csr.MSTATUS_FS));
  }
  setX(i: number, v: bigint): void {
    this.hart.setX(i, v);
  }
  getX(i: number): bigint {
    return this.hart.getX(i);
  }
  setF(i: number, v: number): void {
    this.hart.setF(i, bitsOf(v));
  }
  getF(i: number): bigint {
    return this.hart.getF(i);
  }
  run(entry: number, budget: number): number {
    const h = this.hart;
    h.pc = BigInt(entry);
    const i0 = h.instret();
    for (;;) {
      const e = h.run(budget);
      if (e.kind === "budget") continue;
      this.pc = Number(h.pc);
      // The ebreak at an exit, or a fault (an access outside RAM) inside the loop.
      if (e.kind === "breakpoint" || e.kind === "access-fault") return h.instret() - i0;
      throw new Error(`interpreter: unexpected exit ${e.kind} at 0x${this.pc.toString(16)}`);
    }
  }
}

/** Run a translated region: enter at a block, re-enter while the pc is at one (budget stops). */
function runTranslated(fn: RegionFn, region: Region, entry: number, budget: number, pcOf: () => number) {
  let n = 0;
  let pc = entry;
  for (;;) {
    const k = region.index.get(pc);
    if (k === undefined) return { n, pc };
    n += fn(budget, k);
    pc = pcOf();
  }
}

export class JsEngine implements Engine {
  readonly name = "js";
  readonly ram: DataView;
  readonly state: JsState;
  fn: RegionFn;
  pc = 0;
  readonly region: Region;
  constructor(region: Region, fn?: RegionFn) {
    this.region = region;
    this.ram = new DataView(new ArrayBuffer(RAM.size));
    this.state = {
      xlo: new Int32Array(33),
      xhi: new Int32Array(33),
      f: new Float64Array(32),
      dv: this.ram,
      st: new Float64Array(1),
    };
    this.fn = fn ?? this.compile();
  }
  /** A fresh translation of the region (for compile timing and cold runs). */
  compile(): RegionFn {
    const fn = translateJs(this.region, RAM, this.state);
    fn(0, 0); // compiles the function body (V8 compiles lazily, on the first call)
    return fn;
  }
  setX(i: number, v: bigint): void {
    if (i === 0) return;
    this.state.xlo[i] = Number(BigInt.asIntN(32, v));
    this.state.xhi[i] = Number(BigInt.asIntN(32, v >> 32n));
  }
  getX(i: number): bigint {
    return BigInt.asUintN(64, (BigInt(this.state.xhi[i]!) << 32n) | BigInt(this.state.xlo[i]! >>> 0));
  }
  setF(i: number, v: number): void {
    this.state.f[i] = v;
  }
  getF(i: number): bigint {
    return bitsOf(this.state.f[i]!);
  }
  run(entry: number, budget: number): number {
    const st = this.state.st;
    const r = runTranslated(this.fn, this.region, entry, budget, () => st[0]!);
    this.pc = r.pc;
    return r.n;
  }
}

export class WasmEngine implements Engine {
  readonly name = "wasm";
  readonly ram: DataView;
  readonly memory: WebAssembly.Memory;
  private readonly state: DataView;
  fn: RegionFn;
  pc = 0;
  readonly region: Region;
  constructor(region: Region, fn?: RegionFn) {
    this.region = region;
    const pages = (RAM_OFFSET + RAM.size) / 65536;
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    this.ram = new DataView(this.memory.buffer, RAM_OFFSET, RAM.size);
    this.state = new DataView(this.memory.buffer, 0, RAM_OFFSET);
    this.fn = fn ?? this.compile();
  }
  compile(): RegionFn {
    const fn = translateWasm(this.region, RAM, this.memory);
    fn(0, 0); // compiles the function (V8 compiles wasm functions lazily, on the first call)
    return fn;
  }
  setX(i: number, v: bigint): void {
    if (i !== 0) this.state.setBigInt64(8 * i, BigInt.asIntN(64, v), true);
  }
  getX(i: number): bigint {
    return i === 0 ? 0n : this.state.getBigUint64(8 * i, true);
  }
  setF(i: number, v: number): void {
    this.state.setFloat64(F_OFFSET + 8 * i, v, true);
  }
  getF(i: number): bigint {
    return this.state.getBigUint64(F_OFFSET + 8 * i, true);
  }
  run(entry: number, budget: number): number {
    const st = this.state;
    const r = runTranslated(
      this.fn,
      this.region,
      entry,
      budget,
      () => st.getUint32(PC_OFFSET, true) + st.getUint32(PC_OFFSET + 4, true) * 4294967296,
    );
    this.pc = r.pc;
    return r.n;
  }
}
