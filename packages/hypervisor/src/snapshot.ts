/**
 * The snapshot file: a machine's state (JSON) and its RAM, so a VM can stop on one host
 * and go on later, or elsewhere (cold migration), from exactly where it was.
 *
 *   offset  size  field
 *        0     8  magic "VISORSNP"
 *        8     4  format version (2), little-endian u32
 *       12     4  n = length of the JSON state in bytes (at most MAX_STATE_BYTES)
 *       16     n  the state (MachineState), UTF-8 JSON
 *     16+n     4  p = number of RAM pages stored
 *     20+n    4p  their page numbers (RAM offset / 4096), ascending
 *   20+n+4p 4096p their contents; every page not listed is zero
 *      end    32  SHA-256 of every byte before it
 *
 * RAM covers the guest's memory and, after it, the hypervisor's own pages (G-stage tables,
 * shadow tables), so nothing has to be rebuilt that the file already holds.
 *
 * The file is guest state only: no host path, no host resource. Whoever restores it
 * brings the disks and network links, and they must match the configuration recorded
 * here (count, transport, read-only). A file is read as untrusted input: the checksum
 * first (a flipped bit anywhere is refused), then every field of the state is checked
 * for type and range (validateMachineState) before any of it reaches the machine.
 */
import type { HartState } from "@visor/cpu";
import { type GuestRam, MAX_GUEST_MEMORY } from "@visor/memory";
import { VIRT_VIRTIO_COUNT } from "./fdt/index.ts";
import { SHA256_BYTES, sha256 } from "./sha256.ts";
import type { VcpuState, VirtMode } from "./vcpu-host.ts";

/** Version 1 (before 2026-12) had no checksum and named host disk paths in its meta. */
export const SNAPSHOT_VERSION = 2;
const MAGIC = "VISORSNP";
const PAGE = 4096;
/** magic, version, JSON length. */
const HEAD = 16;
/** The largest JSON state accepted: 64 harts' registers and 8 devices' queues fit many times. */
export const MAX_STATE_BYTES = 16 << 20;
/** Smallest and largest guest RAM a saved machine may claim: what Machine.create takes. */
export const MIN_MEMORY = 16 << 20;
export const MAX_MEMORY = MAX_GUEST_MEMORY;
/** Harts a saved machine may have (the PLIC's contexts). */
export const MAX_HARTS = 64;
/** Console input waiting in a saved machine: more than anyone types. */
const MAX_CONSOLE_IN = 1 << 20;
/** Non-zero CSRs a hart state may list: there are 4096 CSR numbers. */
const MAX_CSRS = 4096;
/** virtio-blk's serial (VIRTIO_BLK_ID_BYTES, virtio 1.2 5.2.6). */
const MAX_DISK_ID = 20;

export interface MachineConfigState {
  /** Guest RAM in bytes (MachineOptions.memory). */
  memory: number;
  harts: number;
  virt: VirtMode;
  clock: "host" | "deterministic";
  rng: boolean;
  /** The harts run firmware (OpenSBI) in M-mode. */
  firmware: boolean;
  /** The disk devices; their backends come from whoever restores (same count, transport, read-only). */
  disks: { transport: "mmio" | "pci"; readonly: boolean; id?: string }[];
  nets: number;
}

/** Everything but RAM. */
export interface MachineState {
  version: number;
  config: MachineConfigState;
  /** mtime when the snapshot was taken. */
  now: number;
  /** Deterministic clock: ticks skipped while every hart idled. */
  skippedTicks: number;
  harts: HartState[];
  vcpus: VcpuState[];
  devices: Record<string, unknown>;
  /** Console input typed but not yet read by the guest. */
  consoleIn: number[];
  /** The deterministic machine's entropy generator state. */
  entropy: number;
  /** Next free page of the hypervisor's own memory (G-stage and shadow tables). */
  hvPool: number;
  /** What the caller stored with the snapshot; opaque to the machine, never a host resource. */
  meta?: unknown;
}

/** A snapshot file's bytes for `state` and `ram`. */
export function encodeSnapshot(state: MachineState, ram: GuestRam): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(state));
  if (json.length > MAX_STATE_BYTES)
    throw new Error(`snapshot: the state is too large (${json.length} bytes)`);
  const words = new Int32Array(ram.buffer);
  const pages: number[] = [];
  const count = ram.size / PAGE;
  for (let p = 0; p < count; p++) {
    const w0 = p * (PAGE / 4);
    for (let i = w0; i < w0 + PAGE / 4; i++) {
      if (words[i] !== 0) {
        pages.push(p);
        break;
      }
    }
  }
  const index = HEAD + json.length + 4;
  const data = index + 4 * pages.length;
  const body = data + PAGE * pages.length;
  const out = new Uint8Array(body + SHA256_BYTES);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = MAGIC.charCodeAt(i);
  dv.setUint32(8, SNAPSHOT_VERSION, true);
  dv.setUint32(12, json.length, true);
  out.set(json, HEAD);
  dv.setUint32(HEAD + json.length, pages.length, true);
  pages.forEach((p, i) => {
    dv.setUint32(index + 4 * i, p, true);
    out.set(ram.u8.subarray(p * PAGE, (p + 1) * PAGE), data + i * PAGE);
  });
  out.set(sha256(out.subarray(0, body)), body);
  return out;
}

export interface DecodedSnapshot {
  state: MachineState;
  /** Copy the stored pages into `ram` (which must be zero and as large as the machine's). */
  loadRam(ram: GuestRam): void;
}

export interface DecodeOptions {
  /**
   * Skip the checksum (the fuzzer uses it to reach the decoder below it with mutated
   * files). Never for files from outside.
   */
  skipChecksum?: boolean;
}

/** Parse a snapshot file. Every malformation is a one-line Error "snapshot: ...". */
export function decodeSnapshot(bytes: Uint8Array, opts: DecodeOptions = {}): DecodedSnapshot {
  if (bytes.length < HEAD || String.fromCharCode(...bytes.subarray(0, 8)) !== MAGIC) {
    fail("not a visor snapshot (bad magic)");
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== SNAPSHOT_VERSION) {
    fail(`unsupported snapshot version ${version} (this visor reads version ${SNAPSHOT_VERSION})`);
  }
  if (bytes.length < HEAD + 4 + SHA256_BYTES) fail("truncated");
  const body = bytes.length - SHA256_BYTES;
  if (!opts.skipChecksum) {
    const want = bytes.subarray(body);
    const got = sha256(bytes.subarray(0, body));
    for (let i = 0; i < SHA256_BYTES; i++) {
      if (got[i] !== want[i]) fail("checksum mismatch (the file is truncated, corrupt or was changed)");
    }
  }
  const n = dv.getUint32(12, true);
  if (n > MAX_STATE_BYTES) fail(`state of ${n} bytes exceeds ${MAX_STATE_BYTES}`);
  if (HEAD + n + 4 > body) fail("truncated (state)");
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(HEAD, HEAD + n)));
  } catch {
    return fail("corrupt state (not JSON)");
  }
  const state = validateMachineState(json);
  const p = dv.getUint32(HEAD + n, true);
  const index = HEAD + n + 4;
  const data = index + 4 * p;
  if (data + PAGE * p !== body) fail("truncated or padded (RAM pages)");
  const ramPages = ramBytes(state.config) / PAGE;
  if (p > ramPages) fail(`${p} RAM pages stored, the machine has ${ramPages}`);
  let last = -1;
  for (let i = 0; i < p; i++) {
    const page = dv.getUint32(index + 4 * i, true);
    if (page >= ramPages) fail(`RAM page ${page} lies outside the machine's ${ramPages} pages`);
    if (page <= last) fail("RAM page numbers are not ascending");
    last = page;
  }
  return {
    state,
    loadRam(ram: GuestRam) {
      const count = ram.size / PAGE;
      for (let i = 0; i < p; i++) {
        const page = dv.getUint32(index + 4 * i, true);
        if (page >= count) fail(`RAM page ${page} lies outside the machine's ${ram.size} bytes`);
        ram.u8.set(bytes.subarray(data + i * PAGE, data + (i + 1) * PAGE), page * PAGE);
      }
    },
  };
}

function fail(why: string): never {
  throw new Error(`snapshot: ${why}`);
}

/**
 * The host RAM a machine of `config` has: guest memory and, under nested or shadow
 * paging, the hypervisor's own pages after it (the same sum as Vcpu.hypervisorMemory:
 * at least 8 MiB, 1/32 of guest RAM).
 */
export function ramBytes(config: MachineConfigState): number {
  const m = config.memory;
  if (config.virt === "off") return m;
  return m + Math.max(8 << 20, Math.ceil(m / 32 / PAGE) * PAGE);
}

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (v === null || typeof v !== "object" || Array.isArray(v)) fail(`${what} is not an object`);
  return v as Obj;
}

function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    fail(`${what} is not an integer from ${min} to ${max}`);
  }
  return v;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== "boolean") fail(`${what} is not true or false`);
  return v;
}

function array(v: unknown, what: string, min: number, max: number): unknown[] {
  if (!Array.isArray(v) || v.length < min || v.length > max) {
    fail(`${what} is not a list of ${min === max ? min : `${min} to ${max}`} entries`);
  }
  return v;
}

function oneOf<T extends string>(v: unknown, what: string, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) fail(`${what} is not one of ${allowed.join(", ")}`);
  return v as T;
}

/** A 32-bit register half: stored signed or unsigned. */
const I32_MIN = -(2 ** 31);
const U32_MAX = 2 ** 32 - 1;
const SAFE = Number.MAX_SAFE_INTEGER;
/** Privilege levels a hart can be in: U, S, M (the privileged spec, 1.2). */
const PRIV_LEVELS = [0, 1, 3];

/** A machine configuration read from outside, checked field by field. */
export function validateMachineConfig(v: unknown): MachineConfigState {
  const c = obj(v, "config");
  const memory = int(c.memory, "config.memory", MIN_MEMORY, MAX_MEMORY);
  if (memory % PAGE !== 0) fail("config.memory is not a whole number of pages");
  const disks = array(c.disks, "config.disks", 0, VIRT_VIRTIO_COUNT).map((d, i) => {
    const o = obj(d, `config.disks[${i}]`);
    const id = o.id;
    if (id !== undefined && (typeof id !== "string" || new TextEncoder().encode(id).length > MAX_DISK_ID)) {
      fail(`config.disks[${i}].id is not a string of at most ${MAX_DISK_ID} bytes`);
    }
    return {
      transport: oneOf(o.transport, `config.disks[${i}].transport`, ["mmio", "pci"] as const),
      readonly: bool(o.readonly, `config.disks[${i}].readonly`),
      ...(id !== undefined ? { id: id as string } : {}),
    };
  });
  return {
    memory,
    harts: int(c.harts, "config.harts", 1, MAX_HARTS),
    virt: oneOf(c.virt, "config.virt", ["off", "nested", "shadow"] as const),
    clock: oneOf(c.clock, "config.clock", ["host", "deterministic"] as const),
    rng: bool(c.rng, "config.rng"),
    firmware: bool(c.firmware, "config.firmware"),
    disks,
    nets: int(c.nets, "config.nets", 0, VIRT_VIRTIO_COUNT),
  };
}

/**
 * A MachineState read from outside (a snapshot file, a migration stream), checked before
 * any of it reaches the machine: every field's type and range, the lists' lengths (one
 * hart and one vCPU state per hart), the device states' shapes. What each device does
 * with its own fields it checks itself (fromState). Throws a one-line "snapshot: ...".
 */
export function validateMachineState(v: unknown): MachineState {
  const s = obj(v, "state");
  if (s.version !== SNAPSHOT_VERSION) {
    fail(`unsupported snapshot version ${String(s.version)} (this visor reads version ${SNAPSHOT_VERSION})`);
  }
  const config = validateMachineConfig(s.config);
  const n = config.harts;
  const harts = array(s.harts, "harts", n, n).map((h, i) => validateHart(h, `harts[${i}]`));
  const vcpus = array(s.vcpus, "vcpus", n, n).map((x, i) => {
    const o = obj(x, `vcpus[${i}]`);
    bool(o.running, `vcpus[${i}].running`);
    bool(o.suspended, `vcpus[${i}].suspended`);
    if (o.deadline !== -1) int(o.deadline, `vcpus[${i}].deadline`, 0, SAFE);
    int(o.exitMask, `vcpus[${i}].exitMask`, I32_MIN, U32_MAX);
    int(o.sliceLeft, `vcpus[${i}].sliceLeft`, 0, SAFE);
    if (o.shadow !== undefined) obj(o.shadow, `vcpus[${i}].shadow`);
    return o as unknown as VcpuState;
  });
  const d = obj(s.devices, "devices");
  for (const k of ["uart", "clint", "plic", "rtc", "syscon"]) obj(d[k], `devices.${k}`);
  array(d.virtio, "devices.virtio", 0, VIRT_VIRTIO_COUNT).forEach((t, i) => {
    obj(t, `devices.virtio[${i}]`);
  });
  if (d.pci !== undefined) obj(d.pci, "devices.pci");
  const consoleIn = array(s.consoleIn, "consoleIn", 0, MAX_CONSOLE_IN);
  consoleIn.forEach((b, i) => {
    int(b, `consoleIn[${i}]`, 0, 255);
  });
  return {
    version: SNAPSHOT_VERSION,
    config,
    now: int(s.now, "now", 0, SAFE),
    skippedTicks: int(s.skippedTicks, "skippedTicks", 0, SAFE),
    harts,
    vcpus,
    devices: d,
    consoleIn: consoleIn as number[],
    entropy: int(s.entropy, "entropy", I32_MIN, U32_MAX),
    hvPool: int(s.hvPool, "hvPool", 0, SAFE),
    ...(s.meta !== undefined ? { meta: s.meta } : {}),
  };
}

/** The shape of one hart's state (Hart.fromState checks the same again as it loads it). */
function validateHart(v: unknown, what: string): HartState {
  const h = obj(v, what);
  const word = (x: unknown, w: string) => int(x, `${what}.${w}`, I32_MIN, U32_MAX);
  array(h.x, `${what}.x`, 64, 64).forEach((x, i) => {
    word(x, `x[${i}]`);
  });
  array(h.pc, `${what}.pc`, 2, 2).forEach((x, i) => {
    word(x, `pc[${i}]`);
  });
  array(h.satp, `${what}.satp`, 2, 2).forEach((x, i) => {
    word(x, `satp[${i}]`);
  });
  if (!PRIV_LEVELS.includes(h.priv as number)) fail(`${what}.priv is not one of ${PRIV_LEVELS.join(", ")}`);
  bool(h.virt, `${what}.virt`);
  bool(h.wfi, `${what}.wfi`);
  for (const k of [
    "mstatus",
    "mstatusHiBits",
    "misa",
    "medeleg",
    "mideleg",
    "mie",
    "mipSw",
    "mipHw",
    "mcounteren",
    "scounteren",
    "mcountinhibit",
    "menvcfg",
    "senvcfg",
  ]) {
    word(h[k], k);
  }
  for (const k of ["instret", "cycles", "executed"]) int(h[k], `${what}.${k}`, 0, SAFE);
  array(h.csr, `${what}.csr`, 0, MAX_CSRS).forEach((e, i) => {
    const t = array(e, `${what}.csr[${i}]`, 3, 3);
    int(t[0], `${what}.csr[${i}][0]`, 0, MAX_CSRS - 1);
    word(t[1], `csr[${i}][1]`);
    word(t[2], `csr[${i}][2]`);
  });
  obj(h.fpu, `${what}.fpu`);
  if (h.h !== undefined) {
    for (const [k, x] of Object.entries(obj(h.h, `${what}.h`))) int(x, `${what}.h.${k}`, -SAFE, SAFE);
  }
  return h as unknown as HartState;
}
