/**
 * Flattened device tree (FDT / "DTB") model and writer, after the Devicetree Specification
 * v0.4, chapter 5 "Flattened Devicetree (DTB) Format":
 *
 *   header (40 bytes, big-endian)  magic 0xd00dfeed, totalsize, off_dt_struct,
 *                                  off_dt_strings, off_mem_rsvmap, version 17,
 *                                  last_comp_version 16, boot_cpuid_phys,
 *                                  size_dt_strings, size_dt_struct
 *   memory reservation block       8-byte aligned {address u64, size u64} pairs ending
 *                                  with {0, 0}
 *   structure block                4-byte aligned tokens: FDT_BEGIN_NODE name\0 (padded),
 *                                  FDT_PROP len nameoff value (padded), FDT_END_NODE,
 *                                  FDT_NOP, and a final FDT_END
 *   strings block                  NUL-terminated property names, each stored once
 *
 * A tree is built from `FdtNode`s whose properties are raw big-endian byte strings; the
 * typed setters encode the usual value kinds (DTSpec 2.2.4 "Property values"). The reader
 * in reader.ts produces the same classes, so a blob can be round-tripped.
 */

export const FDT_MAGIC = 0xd00dfeed;
/** The version this writer produces (DTSpec 5.2). */
export const FDT_VERSION = 17;
/** The lowest version a version-17 blob is backwards compatible with (DTSpec 5.2). */
export const FDT_LAST_COMP_VERSION = 16;
export const FDT_HEADER_SIZE = 40;

/** Structure block tokens (DTSpec 5.4.1). */
export const FDT_BEGIN_NODE = 0x1;
export const FDT_END_NODE = 0x2;
export const FDT_PROP = 0x3;
export const FDT_NOP = 0x4;
export const FDT_END = 0x9;

/** A 64-bit quantity: a bigint, or a number that is a non-negative safe integer. */
export type U64 = bigint | number;

/** One entry of the memory reservation block (DTSpec 5.3). */
export interface FdtReservation {
  address: bigint;
  size: bigint;
}

// DTSpec 2.2.1 (node names) and 2.2.4.1 (property names): 1..31 characters.
const NODE_NAME_RE = /^[0-9A-Za-z,._+-]{1,31}(@[0-9A-Za-z,._+-]+)?$/;
const PROP_NAME_RE = /^[0-9A-Za-z,._+?#-]{1,31}$/;

export function isValidNodeName(name: string): boolean {
  return NODE_NAME_RE.test(name);
}

export function isValidPropertyName(name: string): boolean {
  return PROP_NAME_RE.test(name);
}

function toU64(v: U64, what: string): bigint {
  if (typeof v === "bigint") {
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn)
      throw new RangeError(`fdt: ${what} ${v} does not fit in 64 bits`);
    return v;
  }
  if (!Number.isSafeInteger(v) || v < 0)
    throw new RangeError(`fdt: ${what} ${v} is not a 64-bit unsigned integer`);
  return BigInt(v);
}

function checkU32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new RangeError(`fdt: ${what} ${v} is not a 32-bit unsigned integer`);
  }
  return v;
}

/** UTF-8 encoding without relying on TextEncoder (not in the ES library this package targets). */
export function utf8Encode(s: string): Uint8Array {
  const out: number[] = [];
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c >= 0xd800 && c <= 0xdfff) throw new Error("string contains a lone UTF-16 surrogate");
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(out);
}

/** Strict UTF-8 decoding; throws on malformed input. */
export function utf8Decode(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    let cp: number;
    let n: number;
    if (c < 0x80) {
      cp = c;
      n = 0;
    } else if (c >= 0xc2 && c < 0xe0) {
      cp = c & 0x1f;
      n = 1;
    } else if (c >= 0xe0 && c < 0xf0) {
      cp = c & 0x0f;
      n = 2;
    } else if (c >= 0xf0 && c < 0xf5) {
      cp = c & 0x07;
      n = 3;
    } else {
      throw new Error(`invalid UTF-8 byte 0x${c.toString(16)}`);
    }
    for (let k = 1; k <= n; k++) {
      const cc = b[i + k];
      if (cc === undefined) throw new Error("truncated UTF-8 sequence");
      if ((cc & 0xc0) !== 0x80) throw new Error("invalid UTF-8 continuation byte");
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (
      (n === 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (n === 3 && (cp < 0x10000 || cp > 0x10ffff))
    ) {
      throw new Error("overlong or out-of-range UTF-8 sequence");
    }
    s += String.fromCodePoint(cp);
    i += n + 1;
  }
  return s;
}

function encodeString(s: string, what: string): Uint8Array {
  if (s.includes("\0")) throw new Error(`fdt: ${what} contains a NUL character`);
  return utf8Encode(s);
}

/** A device tree node: a name, ordered properties (raw big-endian values) and children. */
export class FdtNode {
  readonly name: string;
  readonly props = new Map<string, Uint8Array>();
  readonly children: FdtNode[] = [];

  /** `name` is "" for the root, otherwise "node-name[@unit-address]" (DTSpec 2.2.1). */
  constructor(name: string) {
    if (name !== "" && !isValidNodeName(name)) throw new Error(`fdt: invalid node name ${quote(name)}`);
    this.name = name;
  }

  /** Appends a new child node and returns it. */
  addNode(name: string): FdtNode {
    if (name === "") throw new Error("fdt: only the root node may have an empty name");
    if (this.child(name) !== undefined)
      throw new Error(`fdt: duplicate node ${quote(name)} under ${quote(this.name || "/")}`);
    const n = new FdtNode(name);
    this.children.push(n);
    return n;
  }

  /** The child with exactly this name (including the unit address), if any. */
  child(name: string): FdtNode | undefined {
    for (const c of this.children) if (c.name === name) return c;
    return undefined;
  }

  /** The descendant at a relative path ("cpus/cpu@0"); "" is this node. */
  find(path: string): FdtNode | undefined {
    let n: FdtNode | undefined = this;
    for (const part of path.split("/")) {
      if (part === "") continue;
      n = n.child(part);
      if (n === undefined) return undefined;
    }
    return n;
  }

  // ---- setters (each returns this, so they chain) --------------------------------------

  /** Sets a property to raw bytes (copied). */
  setProp(name: string, value: Uint8Array): this {
    if (!isValidPropertyName(name)) throw new Error(`fdt: invalid property name ${quote(name)}`);
    this.props.set(name, value.slice());
    return this;
  }

  /** An empty property, used as a boolean flag ("interrupt-controller", "ranges"). */
  setEmpty(name: string): this {
    return this.setProp(name, new Uint8Array(0));
  }

  setU32(name: string, value: number): this {
    return this.setU32s(name, [value]);
  }

  setU64(name: string, value: U64): this {
    return this.setU64s(name, [value]);
  }

  /** A <prop-encoded-array> of 32-bit cells. */
  setU32s(name: string, values: readonly number[]): this {
    const b = new Uint8Array(values.length * 4);
    const dv = new DataView(b.buffer);
    for (const [i, v] of values.entries()) dv.setUint32(i * 4, checkU32(v, `${name}[${i}]`), false);
    return this.setProp(name, b);
  }

  /** 64-bit values, each as two cells (high, low). */
  setU64s(name: string, values: readonly U64[]): this {
    const b = new Uint8Array(values.length * 8);
    const dv = new DataView(b.buffer);
    for (const [i, v] of values.entries()) dv.setBigUint64(i * 8, toU64(v, `${name}[${i}]`), false);
    return this.setProp(name, b);
  }

  setString(name: string, value: string): this {
    const s = encodeString(value, `property ${quote(name)}`);
    const b = new Uint8Array(s.length + 1);
    b.set(s);
    return this.setProp(name, b);
  }

  /** A <stringlist>: NUL-terminated strings one after another. */
  setStrings(name: string, values: readonly string[]): this {
    if (values.length === 0) throw new Error(`fdt: string list ${quote(name)} is empty`);
    const parts = values.map((v) => encodeString(v, `property ${quote(name)}`));
    const b = new Uint8Array(parts.reduce((n, p) => n + p.length + 1, 0));
    let o = 0;
    for (const p of parts) {
      b.set(p, o);
      o += p.length + 1;
    }
    return this.setProp(name, b);
  }

  setBytes(name: string, value: Uint8Array): this {
    return this.setProp(name, value);
  }

  // ---- getters (used by the reader's users and by tests) -------------------------------

  has(name: string): boolean {
    return this.props.has(name);
  }

  getProp(name: string): Uint8Array | undefined {
    return this.props.get(name);
  }

  /** The property as 32-bit cells; throws if its length is not a multiple of 4. */
  getU32s(name: string): number[] | undefined {
    const b = this.props.get(name);
    if (b === undefined) return undefined;
    if (b.length % 4 !== 0)
      throw new Error(`fdt: property ${quote(name)} is ${b.length} bytes, not a cell array`);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const out: number[] = [];
    for (let o = 0; o < b.length; o += 4) out.push(dv.getUint32(o, false));
    return out;
  }

  getU32(name: string): number | undefined {
    const v = this.getU32s(name);
    if (v === undefined) return undefined;
    if (v.length !== 1) throw new Error(`fdt: property ${quote(name)} has ${v.length} cells, expected 1`);
    return v[0];
  }

  /** The property as 64-bit values; throws if its length is not a multiple of 8. */
  getU64s(name: string): bigint[] | undefined {
    const b = this.props.get(name);
    if (b === undefined) return undefined;
    if (b.length % 8 !== 0)
      throw new Error(`fdt: property ${quote(name)} is ${b.length} bytes, not a u64 array`);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const out: bigint[] = [];
    for (let o = 0; o < b.length; o += 8) out.push(dv.getBigUint64(o, false));
    return out;
  }

  getU64(name: string): bigint | undefined {
    const v = this.getU64s(name);
    if (v === undefined) return undefined;
    if (v.length !== 1)
      throw new Error(`fdt: property ${quote(name)} has ${v.length} u64 values, expected 1`);
    return v[0];
  }

  /** The property as a <stringlist>; throws unless it is NUL-terminated UTF-8. */
  getStrings(name: string): string[] | undefined {
    const b = this.props.get(name);
    if (b === undefined) return undefined;
    if (b.length === 0 || b[b.length - 1] !== 0)
      throw new Error(`fdt: property ${quote(name)} is not NUL-terminated`);
    const out: string[] = [];
    let start = 0;
    for (let i = 0; i < b.length; i++) {
      if (b[i] === 0) {
        try {
          out.push(utf8Decode(b.subarray(start, i)));
        } catch (e) {
          throw new Error(`fdt: property ${quote(name)} is not valid UTF-8 (${(e as Error).message})`);
        }
        start = i + 1;
      }
    }
    return out;
  }

  getString(name: string): string | undefined {
    const v = this.getStrings(name);
    if (v === undefined) return undefined;
    if (v.length !== 1) throw new Error(`fdt: property ${quote(name)} holds ${v.length} strings, expected 1`);
    return v[0];
  }
}

/** A growable big-endian byte buffer. */
class BeWriter {
  buf = new Uint8Array(4096);
  dv = new DataView(this.buf.buffer);
  len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
    this.dv = new DataView(nb.buffer);
  }

  u32(v: number): void {
    this.ensure(4);
    this.dv.setUint32(this.len, v, false);
    this.len += 4;
  }

  u64(v: bigint): void {
    this.ensure(8);
    this.dv.setBigUint64(this.len, v, false);
    this.len += 8;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** Zero bytes up to the next multiple of `n`. */
  align(n: number): void {
    const pad = (n - (this.len % n)) % n;
    this.ensure(pad);
    this.buf.fill(0, this.len, this.len + pad);
    this.len += pad;
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** A whole device tree: the root node, the memory reservations and the boot CPU. */
export class DeviceTree {
  readonly root = new FdtNode("");
  readonly reservations: FdtReservation[] = [];
  /** The physical ID of the boot CPU (header field boot_cpuid_phys). */
  bootCpuidPhys = 0;
  private nextPhandle = 1;

  /** The node at an absolute path ("/soc/serial@10000000"). */
  find(path: string): FdtNode | undefined {
    if (!path.startsWith("/")) throw new Error(`fdt: path ${quote(path)} is not absolute`);
    return this.root.find(path);
  }

  /** Adds an entry to the memory reservation block. */
  addReservation(address: U64, size: U64): void {
    const a = toU64(address, "reservation address");
    const s = toU64(size, "reservation size");
    if (s === 0n) throw new Error("fdt: a memory reservation cannot be empty");
    this.reservations.push({ address: a, size: s });
  }

  /**
   * The node's phandle (DTSpec 2.3.3), allocating the next free one and setting the
   * "phandle" property if the node has none yet.
   */
  phandle(node: FdtNode): number {
    const existing = node.getU32("phandle");
    if (existing !== undefined) return existing;
    const used = new Set<number>();
    collectPhandles(this.root, used);
    while (used.has(this.nextPhandle)) this.nextPhandle++;
    const p = this.nextPhandle++;
    node.setU32("phandle", p);
    return p;
  }

  /** Serialises the tree into a DTB (version 17). */
  toBlob(): Uint8Array {
    checkPhandles(this.root);
    const strings = new BeWriter();
    const stringOffsets = new Map<string, number>();
    const nameOffset = (name: string): number => {
      let off = stringOffsets.get(name);
      if (off === undefined) {
        off = strings.len;
        strings.bytes(utf8Encode(name));
        strings.bytes(new Uint8Array(1));
        stringOffsets.set(name, off);
      }
      return off;
    };

    const st = new BeWriter();
    const emit = (node: FdtNode): void => {
      st.u32(FDT_BEGIN_NODE);
      st.bytes(utf8Encode(node.name));
      st.bytes(new Uint8Array(1));
      st.align(4);
      for (const [name, value] of node.props) {
        st.u32(FDT_PROP);
        st.u32(value.length);
        st.u32(nameOffset(name));
        st.bytes(value);
        st.align(4);
      }
      for (const c of node.children) emit(c);
      st.u32(FDT_END_NODE);
    };
    emit(this.root);
    st.u32(FDT_END);

    const offRsv = FDT_HEADER_SIZE; // 40 is already 8-byte aligned
    const rsvSize = (this.reservations.length + 1) * 16;
    const offStruct = offRsv + rsvSize;
    const offStrings = offStruct + st.len;
    const total = offStrings + strings.len;

    const out = new BeWriter();
    out.u32(FDT_MAGIC);
    out.u32(total);
    out.u32(offStruct);
    out.u32(offStrings);
    out.u32(offRsv);
    out.u32(FDT_VERSION);
    out.u32(FDT_LAST_COMP_VERSION);
    out.u32(checkU32(this.bootCpuidPhys, "boot_cpuid_phys"));
    out.u32(strings.len);
    out.u32(st.len);
    for (const r of this.reservations) {
      out.u64(r.address);
      out.u64(r.size);
    }
    out.u64(0n);
    out.u64(0n);
    out.bytes(st.result());
    out.bytes(strings.result());
    return out.result();
  }
}

function collectPhandles(node: FdtNode, into: Set<number>): void {
  const p = node.getU32("phandle");
  if (p !== undefined) into.add(p);
  for (const c of node.children) collectPhandles(c, into);
}

function checkPhandles(root: FdtNode): void {
  const seen = new Map<number, string>();
  const walk = (node: FdtNode, path: string): void => {
    const p = node.props.has("phandle") ? node.getU32("phandle") : undefined;
    if (p !== undefined) {
      if (p === 0 || p === 0xffff_ffff) throw new Error(`fdt: invalid phandle ${p} at ${path}`);
      const other = seen.get(p);
      if (other !== undefined) throw new Error(`fdt: duplicate phandle ${p} at ${other} and ${path}`);
      seen.set(p, path);
    }
    for (const c of node.children) walk(c, path === "/" ? `/${c.name}` : `${path}/${c.name}`);
  };
  walk(root, "/");
}

/** A name for an error message: quoted, with control characters escaped, so it stays one line. */
function quote(s: string): string {
  return JSON.stringify(s);
}
