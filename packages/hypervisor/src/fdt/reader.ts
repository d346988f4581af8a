import {
  DeviceTree,
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_HEADER_SIZE,
  FDT_MAGIC,
  FDT_NOP,
  FDT_PROP,
  type FdtNode,
  isValidNodeName,
  isValidPropertyName,
  utf8Decode,
} from "./fdt.ts";

/** The header fields of a DTB (DTSpec 5.2). */
export interface FdtHeader {
  magic: number;
  totalSize: number;
  offDtStruct: number;
  offDtStrings: number;
  offMemRsvmap: number;
  version: number;
  lastCompVersion: number;
  bootCpuidPhys: number;
  sizeDtStrings: number;
  /** Only present from version 17 on; computed from the FDT_END token for version 16. */
  sizeDtStruct: number;
}

function fail(msg: string): never {
  throw new Error(`fdt: ${msg}`);
}

/** Reads and checks the header of a DTB. */
export function parseFdtHeader(blob: Uint8Array): FdtHeader {
  if (blob.length < FDT_HEADER_SIZE) fail(`blob is ${blob.length} bytes, shorter than the 40-byte header`);
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const u = (i: number): number => dv.getUint32(i * 4, false);
  const h: FdtHeader = {
    magic: u(0),
    totalSize: u(1),
    offDtStruct: u(2),
    offDtStrings: u(3),
    offMemRsvmap: u(4),
    version: u(5),
    lastCompVersion: u(6),
    bootCpuidPhys: u(7),
    sizeDtStrings: u(8),
    sizeDtStruct: u(9),
  };
  if (h.magic !== FDT_MAGIC) fail(`bad magic 0x${h.magic.toString(16)} (expected 0xd00dfeed)`);
  // Version 16 is the oldest format with the layout read here; a blob is readable if the
  // version it stays compatible with is at most 17.
  if (h.version < 16) fail(`version ${h.version} is too old (need 16 or later)`);
  if (h.lastCompVersion > 17)
    fail(`blob needs a reader for version ${h.lastCompVersion} (this one reads 17)`);
  if (h.totalSize < FDT_HEADER_SIZE || h.totalSize > blob.length) {
    fail(`totalsize ${h.totalSize} does not fit the ${blob.length}-byte blob`);
  }
  if (h.version < 17) h.sizeDtStruct = h.totalSize - h.offDtStruct;
  const inside = (off: number, size: number, what: string): void => {
    if (off < FDT_HEADER_SIZE || off + size > h.totalSize)
      fail(`${what} [${off}, +${size}) lies outside the blob`);
  };
  if (h.offMemRsvmap % 8 !== 0)
    fail(`memory reservation block offset ${h.offMemRsvmap} is not 8-byte aligned`);
  if (h.offDtStruct % 4 !== 0) fail(`structure block offset ${h.offDtStruct} is not 4-byte aligned`);
  inside(h.offMemRsvmap, 16, "memory reservation block");
  inside(h.offDtStruct, h.sizeDtStruct, "structure block");
  inside(h.offDtStrings, h.sizeDtStrings, "strings block");
  return h;
}

/**
 * Parses a DTB back into a `DeviceTree`. Every offset and length is checked against the
 * blob; anything malformed is a one-line Error starting with "fdt:".
 */
export function parseFdt(blob: Uint8Array): DeviceTree {
  const h = parseFdtHeader(blob);
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const tree = new DeviceTree();
  tree.bootCpuidPhys = h.bootCpuidPhys;

  // Memory reservation block: pairs until {0, 0}.
  for (let o = h.offMemRsvmap; ; o += 16) {
    if (o + 16 > h.totalSize) fail("memory reservation block is not terminated");
    const address = dv.getBigUint64(o, false);
    const size = dv.getBigUint64(o + 8, false);
    if (address === 0n && size === 0n) break;
    tree.reservations.push({ address, size });
  }

  const stringsEnd = h.offDtStrings + h.sizeDtStrings;
  const readName = (nameoff: number): string => {
    const start = h.offDtStrings + nameoff;
    if (nameoff >= h.sizeDtStrings) fail(`property name offset ${nameoff} is outside the strings block`);
    let end = start;
    while (end < stringsEnd && blob[end] !== 0) end++;
    if (end >= stringsEnd) fail(`property name at offset ${nameoff} is not NUL-terminated`);
    return decode(blob.subarray(start, end), "property name");
  };

  const structEnd = h.offDtStruct + h.sizeDtStruct;
  let p = h.offDtStruct;
  const token = (): number => {
    if (p + 4 > structEnd) fail("structure block ends without FDT_END");
    const t = dv.getUint32(p, false);
    p += 4;
    return t;
  };
  const align4 = (): void => {
    p = (p + 3) & ~3;
  };

  const stack: FdtNode[] = [];
  let root: FdtNode | undefined;
  for (;;) {
    const t = token();
    if (t === FDT_NOP) continue;
    if (t === FDT_BEGIN_NODE) {
      let end = p;
      while (end < structEnd && blob[end] !== 0) end++;
      if (end >= structEnd) fail("node name runs past the structure block");
      const name = decode(blob.subarray(p, end), "node name");
      p = end + 1;
      align4();
      const parent = stack[stack.length - 1];
      if (parent === undefined) {
        if (root !== undefined) fail("more than one root node");
        if (name !== "") fail(`root node is named ${JSON.stringify(name)} (must be empty)`);
        root = tree.root;
        stack.push(root);
      } else {
        if (!isValidNodeName(name)) fail(`invalid node name ${JSON.stringify(name)}`);
        if (parent.child(name) !== undefined) fail(`duplicate node ${JSON.stringify(name)}`);
        stack.push(parent.addNode(name));
      }
    } else if (t === FDT_END_NODE) {
      if (stack.pop() === undefined) fail("FDT_END_NODE without a matching FDT_BEGIN_NODE");
    } else if (t === FDT_PROP) {
      const node = stack[stack.length - 1];
      if (node === undefined) fail("property outside any node");
      const len = token();
      const nameoff = token();
      if (p + len > structEnd) fail(`property value of ${len} bytes runs past the structure block`);
      const name = readName(nameoff);
      if (!isValidPropertyName(name)) fail(`invalid property name ${JSON.stringify(name)}`);
      if (node.props.has(name))
        fail(`duplicate property ${JSON.stringify(name)} in node ${JSON.stringify(node.name || "/")}`);
      node.props.set(name, blob.slice(p, p + len));
      p += len;
      align4();
    } else if (t === FDT_END) {
      if (stack.length !== 0) fail(`FDT_END with ${stack.length} node(s) still open`);
      if (root === undefined) fail("structure block has no root node");
      return tree;
    } else {
      fail(`unknown structure token 0x${t.toString(16)} at offset ${p - 4}`);
    }
  }
}

function decode(b: Uint8Array, what: string): string {
  try {
    return utf8Decode(b);
  } catch (e) {
    return fail(`${what} is not valid UTF-8 (${(e as Error).message})`);
  }
}
