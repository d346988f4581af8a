/**
 * A small WebAssembly binary writer: just what the translator emits (one function per
 * module, i32/i64/f64 locals, two imported memories, imported helper functions).
 * Encodings from the WebAssembly core specification 2.0, section 5 (binary format).
 */

export const I32 = 0x7f;
export const I64 = 0x7e;
export const F64 = 0x7c;
export const VOID = 0x40;

/** Opcodes (core spec 5.4). */
export const Op = {
  unreachable: 0x00,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  brTable: 0x0e,
  return: 0x0f,
  call: 0x10,
  returnCallIndirect: 0x13,
  drop: 0x1a,
  select: 0x1b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  i64Load: 0x29,
  f64Load: 0x2b,
  i64Load8S: 0x30,
  i64Load8U: 0x31,
  i64Load16S: 0x32,
  i64Load16U: 0x33,
  i64Load32S: 0x34,
  i64Load32U: 0x35,
  i32Store: 0x36,
  i64Store: 0x37,
  f64Store: 0x39,
  i64Store8: 0x3c,
  i64Store16: 0x3d,
  i64Store32: 0x3e,
  i32Const: 0x41,
  i64Const: 0x42,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32Ne: 0x47,
  i32LtS: 0x48,
  i32LtU: 0x49,
  i32GtS: 0x4a,
  i32GtU: 0x4b,
  i32LeS: 0x4c,
  i32LeU: 0x4d,
  i32GeS: 0x4e,
  i32GeU: 0x4f,
  i64Eqz: 0x50,
  i64Eq: 0x51,
  i64Ne: 0x52,
  i64LtS: 0x53,
  i64LtU: 0x54,
  i64GtS: 0x55,
  i64GtU: 0x56,
  i64LeS: 0x57,
  i64LeU: 0x58,
  i64GeS: 0x59,
  i64GeU: 0x5a,
  f64Eq: 0x61,
  f64Ne: 0x62,
  f64Lt: 0x63,
  f64Gt: 0x64,
  f64Le: 0x65,
  f64Ge: 0x66,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32DivS: 0x6d,
  i32DivU: 0x6e,
  i32RemS: 0x6f,
  i32RemU: 0x70,
  i32And: 0x71,
  i32Or: 0x72,
  i32Xor: 0x73,
  i32Shl: 0x74,
  i32ShrS: 0x75,
  i32ShrU: 0x76,
  i64Add: 0x7c,
  i64Sub: 0x7d,
  i64Mul: 0x7e,
  i64DivS: 0x7f,
  i64DivU: 0x80,
  i64RemS: 0x81,
  i64RemU: 0x82,
  i64And: 0x83,
  i64Or: 0x84,
  i64Xor: 0x85,
  i64Shl: 0x86,
  i64ShrS: 0x87,
  i64ShrU: 0x88,
  f64Abs: 0x99,
  f64Ceil: 0x9b,
  f64Floor: 0x9c,
  f64Trunc: 0x9d,
  f64Nearest: 0x9e,
  f64Min: 0xa4,
  f64Max: 0xa5,
  f64Const: 0x44,
  i32TruncF64S: 0xaa,
  i64TruncF64S: 0xb0,
  f64ConvertI32S: 0xb7,
  f64ConvertI32U: 0xb8,
  f64ConvertI64U: 0xba,
  f64Neg: 0x9a,
  f64Sqrt: 0x9f,
  f64Add: 0xa0,
  f64Sub: 0xa1,
  f64Mul: 0xa2,
  f64Div: 0xa3,
  i32WrapI64: 0xa7,
  i64ExtendI32S: 0xac,
  i64ExtendI32U: 0xad,
  f64ConvertI64S: 0xb9,
  i64ReinterpretF64: 0xbd,
  f64ReinterpretI64: 0xbf,
  i64Extend8S: 0xc2,
  i64Extend16S: 0xc3,
  i64Extend32S: 0xc4,
} as const;

/** A growable byte buffer with LEB128 writers. */
export class Bytes {
  private buf = new Uint8Array(1024);
  length = 0;

  private grow(need: number): void {
    let size = this.buf.length * 2;
    while (size < this.length + need) size *= 2;
    const n = new Uint8Array(size);
    n.set(this.buf.subarray(0, this.length));
    this.buf = n;
  }

  byte(b: number): this {
    if (this.length === this.buf.length) this.grow(1);
    this.buf[this.length++] = b;
    return this;
  }

  bytes(b: Uint8Array | readonly number[]): this {
    if (this.length + b.length > this.buf.length) this.grow(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }

  /** Unsigned LEB128 of a non-negative integer below 2^32. */
  u32(v: number): this {
    let x = v >>> 0;
    do {
      let b = x & 0x7f;
      x >>>= 7;
      if (x !== 0) b |= 0x80;
      this.byte(b);
    } while (x !== 0);
    return this;
  }

  /** Signed LEB128 of an int32. */
  s32(v: number): this {
    let x = v | 0;
    for (;;) {
      const b = x & 0x7f;
      x >>= 7;
      if ((x === 0 && (b & 0x40) === 0) || (x === -1 && (b & 0x40) !== 0)) {
        this.byte(b);
        return this;
      }
      this.byte(b | 0x80);
    }
  }

  /** Signed LEB128 of a 64-bit value given as int32 halves. */
  s64(lo: number, hi: number): this {
    let l = lo >>> 0;
    let h = hi | 0;
    for (;;) {
      const b = l & 0x7f;
      // arithmetic shift right by 7 of the 64-bit (h:l)
      l = ((l >>> 7) | (h << 25)) >>> 0;
      h >>= 7;
      const signClear = (b & 0x40) === 0;
      if ((h === 0 && l === 0 && signClear) || (h === -1 && l === 0xffffffff && !signClear)) {
        this.byte(b);
        return this;
      }
      this.byte(b | 0x80);
    }
  }

  name(s: string): this {
    this.u32(s.length);
    for (let i = 0; i < s.length; i++) this.byte(s.charCodeAt(i));
    return this;
  }

  section(id: number, body: Bytes): this {
    this.byte(id);
    this.u32(body.length);
    return this.bytes(body.view());
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

const f64Scratch = new Float64Array(1);
const f64Bytes = new Uint8Array(f64Scratch.buffer);

/** A function body under construction: typed emitters over `Bytes`. */
export class Code extends Bytes {
  op(o: number): this {
    return this.byte(o);
  }
  get(l: number): this {
    return this.byte(Op.localGet).u32(l);
  }
  set(l: number): this {
    return this.byte(Op.localSet).u32(l);
  }
  tee(l: number): this {
    return this.byte(Op.localTee).u32(l);
  }
  i32(v: number): this {
    return this.byte(Op.i32Const).s32(v);
  }
  /** i64.const of the sign-extended int32 `v`. */
  i64(v: number): this {
    return this.byte(Op.i64Const).s64(v | 0, (v | 0) >> 31);
  }
  i64Pair(lo: number, hi: number): this {
    return this.byte(Op.i64Const).s64(lo, hi);
  }
  f64(v: number): this {
    this.byte(Op.f64Const);
    f64Scratch[0] = v;
    return this.bytes(f64Bytes);
  }
  /** A load or store on memory `mem` (0: RAM, 1: hart state) with a constant offset. */
  mem(o: number, mem: number, align: number, offset = 0): this {
    this.byte(o);
    if (mem === 0) this.u32(align);
    else this.u32(align | 0x40).u32(mem);
    return this.u32(offset);
  }
  call(f: number): this {
    return this.byte(Op.call).u32(f);
  }
  br(depth: number): this {
    return this.byte(Op.br).u32(depth);
  }
  brIf(depth: number): this {
    return this.byte(Op.brIf).u32(depth);
  }
  block(t = VOID): this {
    return this.byte(Op.block).byte(t);
  }
  loop(t = VOID): this {
    return this.byte(Op.loop).byte(t);
  }
  if(t = VOID): this {
    return this.byte(Op.if).byte(t);
  }
  else(): this {
    return this.byte(Op.else);
  }
  end(): this {
    return this.byte(Op.end);
  }
}

export interface FuncType {
  params: readonly number[];
  results: readonly number[];
}

export interface ModuleSpec {
  /** Types by index. */
  types: readonly FuncType[];
  /** Imported functions ("h", name) with their type index; function indices 0..n-1. */
  imports: readonly { name: string; type: number }[];
  /** Imported memories ("m", "ram" = 0 and "m", "st" = 1), their minimum sizes in 64 KiB pages. */
  memories: readonly { name: string; minPages: number }[];
  /** An imported funcref table ("m", name), table 0, if any. */
  table?: string;
  /**
   * The defined functions (indices after the imported ones): each one's type, locals
   * (after the params), body (ending in `end`) and export name.
   */
  funcs: readonly { type: number; locals: readonly number[]; body: Bytes; exportName: string }[];
}

function valType(b: Bytes, t: number): void {
  b.byte(t);
}

/** Encode a whole module. */
export function encodeModule(m: ModuleSpec): Uint8Array {
  const out = new Bytes();
  out.bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  // type section
  const ty = new Bytes();
  ty.u32(m.types.length);
  for (const t of m.types) {
    ty.byte(0x60).u32(t.params.length);
    for (const p of t.params) valType(ty, p);
    ty.u32(t.results.length);
    for (const r of t.results) valType(ty, r);
  }
  out.section(1, ty);
  // import section: memories first in memory index order, then functions
  const im = new Bytes();
  im.u32(m.imports.length + m.memories.length + (m.table !== undefined ? 1 : 0));
  for (const mem of m.memories) im.name("m").name(mem.name).byte(0x02).byte(0x00).u32(mem.minPages);
  if (m.table !== undefined) im.name("m").name(m.table).byte(0x01).byte(0x70).byte(0x00).u32(0);
  for (const f of m.imports) im.name("h").name(f.name).byte(0x00).u32(f.type);
  out.section(2, im);
  // function section
  const fs = new Bytes();
  fs.u32(m.funcs.length);
  for (const f of m.funcs) fs.u32(f.type);
  out.section(3, fs);
  // export section
  const ex = new Bytes();
  ex.u32(m.funcs.length);
  for (let i = 0; i < m.funcs.length; i++)
    ex.name(m.funcs[i]!.exportName)
      .byte(0x00)
      .u32(m.imports.length + i);
  out.section(7, ex);
  // code section: locals run-length encoded
  const code = new Bytes();
  code.u32(m.funcs.length);
  const body = new Bytes();
  for (const f of m.funcs) {
    body.length = 0;
    const groups: [number, number][] = [];
    for (const t of f.locals) {
      const last = groups[groups.length - 1];
      if (last !== undefined && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    body.u32(groups.length);
    for (const [n, t] of groups) body.u32(n).byte(t);
    body.bytes(f.body.view());
    code.u32(body.length).bytes(body.view());
  }
  out.section(10, code);
  return out.view().slice();
}
