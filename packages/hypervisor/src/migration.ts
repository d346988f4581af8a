/**
 * Pre-copy live migration over any byte stream (visor run uses a TCP socket).
 *
 * The sender turns on guest RAM's dirty-page log and sends every page that is not zero
 * while the VM keeps running; then, round after round, the pages written since the last
 * round. When a round finds few enough dirty pages (or after `maxRounds`), it takes the
 * rest in one go between two instruction slices, with the VM paused: the last dirty
 * pages, the hypervisor's own pages (its G-stage or shadow tables, which its page walks
 * update without the log), and the machine's state. Once all of it is sent the VM stops
 * here and goes on at the receiver, which builds it with Machine.restoreState; if
 * sending fails, it resumes here. The VM is paused only for that last step: the
 * "downtime" the statistics report.
 *
 * The stream: "VISORMIG", a u32 version (2), then records of a u8 type and a u32
 * length: first type 3, the machine's configuration (JSON MachineConfigState), so the
 * receiver knows how much RAM to expect and can refuse a machine whose devices do not
 * match its own before any of it arrives; then type 1 records of pages (u32 page
 * number, 4096 bytes, repeated, at most BATCH per record); last type 2, the final
 * MachineState as JSON, after which the stream ends.
 *
 * The receiver takes the stream as untrusted input: a record header is checked against
 * the largest legal record of its type before a byte of its body is buffered, pages
 * must lie inside the announced machine's RAM, and the final state goes through the
 * same checks as a snapshot file's (validateMachineState). The stream carries guest
 * state only: the receiver brings its own disks and network links. Authentication and
 * encryption are the transport's (the Node transport, src/node/migration-net.ts, uses TLS).
 */
import { type GuestRam, MAX_GUEST_MEMORY } from "@visor/memory";
import type { Machine, RestoreOptions } from "./machine.ts";
import { Machine as MachineClass } from "./machine.ts";
import {
  MAX_STATE_BYTES,
  type MachineConfigState,
  type MachineState,
  ramBytes,
  validateMachineConfig,
  validateMachineState,
} from "./snapshot.ts";

const MAGIC = "VISORMIG";
export const MIGRATION_VERSION = 2;
const HEADER_BYTES = 12;
const RECORD_HEAD = 5;
const PAGE = 4096;
const REC_PAGES = 1;
const REC_STATE = 2;
const REC_CONFIG = 3;
/** Pages per record: 1 MiB. */
const BATCH = 256;
/** The configuration record: a few hundred bytes; 64 KiB is plenty. */
const MAX_CONFIG_BYTES = 64 << 10;
/** The largest body each record type may have. */
const MAX_RECORD: Record<number, number> = {
  [REC_PAGES]: BATCH * (4 + PAGE),
  [REC_STATE]: MAX_STATE_BYTES,
  [REC_CONFIG]: MAX_CONFIG_BYTES,
};
/** The largest legal record, header included. */
export const MIGRATION_MAX_RECORD = RECORD_HEAD + Math.max(...Object.values(MAX_RECORD));
/**
 * The most guest RAM a stream may announce by default: the largest machine visor builds
 * (MAX_GUEST_MEMORY). The receiver buffers pages until the final state arrives, so this
 * also bounds what an authenticated sender can make it hold.
 */
export const MIGRATION_DEFAULT_MAX_MEMORY = MAX_GUEST_MEMORY;

export interface MigrationOptions {
  /** Stop pre-copying when a round finds at most this many dirty pages. Default 256 (1 MiB). */
  threshold?: number;
  /** Give up converging after this many rounds and copy the rest paused. Default 30. */
  maxRounds?: number;
  /** Caller data stored with the state (opaque; never a host resource: visor run sends none). */
  meta?: unknown;
  /** Let the VM run this long between rounds; default 10 ms. */
  roundIntervalMs?: number;
  /**
   * What to wait for between rounds instead of `roundIntervalMs` (a test waits for the
   * guest to retire a number of instructions, so the rounds do not depend on the host's
   * speed).
   */
  betweenRounds?: () => Promise<void>;
  /**
   * Called as the migration goes: after each record sent, after each round's count of
   * dirty pages, when the paused step starts and when everything is sent. A control plane
   * reports it (visor run's GET /migrate). It gets a copy; it must not throw.
   */
  onProgress?: (p: MigrationProgress) => void;
}

export interface MigrationStats {
  /** Rounds of copying while the VM ran, the first (all of RAM) included. */
  rounds: number;
  pages: number;
  bytes: number;
  /** Pages left for the paused step, and how long the VM was paused. */
  finalPages: number;
  downtimeMs: number;
}

/** Where a migration is (MigrationOptions.onProgress). */
export interface MigrationProgress extends MigrationStats {
  /** "copying": rounds while the VM runs; "paused": the last step; "done": all of it sent. */
  phase: "copying" | "paused" | "done";
  /** Dirty pages found by the last round's count (what the next round would send); 0 before. */
  dirtyPages: number;
  /** The guest's RAM in pages. */
  guestPages: number;
}

/**
 * Send `machine` through `send` (which resolves once the bytes are on their way; it may
 * apply back-pressure). Call while machine.run() is in progress: the copying happens in
 * the gaps where the run loop yields to the host. Resolves when everything is sent; the
 * machine's run() then resolves with { kind: "stopped" }. If `send` fails, the dirty log
 * is turned off, the VM goes on running (even when the failure comes in the paused step),
 * and the error is thrown.
 */
export async function migrate(
  machine: Machine,
  send: (chunk: Uint8Array) => Promise<void>,
  opts: MigrationOptions = {},
): Promise<MigrationStats> {
  const ram = machine.ram;
  const threshold = opts.threshold ?? 256;
  const maxRounds = opts.maxRounds ?? 30;
  const interval = opts.roundIntervalMs ?? 10;
  const between = opts.betweenRounds ?? (() => new Promise<void>((r) => setTimeout(r, interval)));
  const stats: MigrationStats = { rounds: 0, pages: 0, bytes: 0, finalPages: 0, downtimeMs: 0 };
  const guestPages = (machine.guestRamEnd - ram.base) / PAGE;
  let phase: MigrationProgress["phase"] = "copying";
  let dirtyPages = 0;
  const report = () => opts.onProgress?.({ ...stats, phase, dirtyPages, guestPages });
  const out = async (chunk: Uint8Array) => {
    stats.bytes += chunk.length;
    await send(chunk);
    report();
  };
  ram.enableDirtyLog();
  try {
    const head = new Uint8Array(HEADER_BYTES);
    for (let i = 0; i < 8; i++) head[i] = MAGIC.charCodeAt(i);
    new DataView(head.buffer).setUint32(8, MIGRATION_VERSION, true);
    await out(head);
    await out(record(REC_CONFIG, new TextEncoder().encode(JSON.stringify(machine.configState))));
    // Round 1: all of RAM that is not zero, the VM running meanwhile.
    await sendPages(ram, nonZeroPages(ram, 0, guestPages), out, stats);
    stats.rounds = 1;
    for (;;) {
      await between();
      if (machine.exited) throw new Error("migration: the VM stopped before it could move");
      dirtyPages = countDirty(ram, guestPages);
      report();
      if (stats.rounds >= maxRounds || dirtyPages <= threshold) break;
      await sendPages(ram, dirtyGuestPages(ram, guestPages), out, stats);
      stats.rounds++;
    }
    // The paused step: no guest instruction runs until the rest is sent. Only then does
    // the VM stop here; if sending fails, it runs on here as if nothing had happened.
    const t0 = performance.now();
    const resume = machine.pause();
    phase = "paused";
    report();
    try {
      const last = dirtyGuestPages(ram, guestPages);
      const hv = nonZeroPages(ram, guestPages, ram.size / PAGE);
      const state = machine.saveState(opts.meta);
      stats.finalPages = last.length + hv.length;
      stats.pages += stats.finalPages;
      for (const r of encodePages(ram, [...last, ...hv])) await out(r);
      await out(record(REC_STATE, new TextEncoder().encode(JSON.stringify(state))));
      machine.stop();
    } finally {
      resume();
    }
    ram.disableDirtyLog();
    stats.downtimeMs = performance.now() - t0;
    phase = "done";
    dirtyPages = 0;
    report();
    return stats;
  } catch (e) {
    ram.disableDirtyLog();
    throw e;
  }
}

export interface ReceiverOptions {
  /** Refuse a machine with more guest RAM than this. Default MIGRATION_DEFAULT_MAX_MEMORY. */
  maxMemory?: number;
  /**
   * Called with the sender's machine configuration as soon as it arrives, before any RAM:
   * throw to refuse it (visor run checks its own disks and network devices against it).
   */
  checkConfig?: (config: MachineConfigState) => void;
}

/**
 * Builds the migrated machine from the bytes a `migrate` sent, fed in as they arrive.
 * Memory stays bounded by the announced machine's RAM plus one record.
 */
export class MigrationReceiver {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private headerSeen = false;
  private config: MachineConfigState | undefined;
  private ramPages = 0;
  private readonly pages = new Map<number, Uint8Array>();
  private state: MachineState | undefined;
  private readonly maxMemory: number;
  private readonly checkConfig: ((config: MachineConfigState) => void) | undefined;
  /** Bytes received so far. */
  bytes = 0;

  constructor(opts: ReceiverOptions = {}) {
    this.maxMemory = opts.maxMemory ?? MIGRATION_DEFAULT_MAX_MEMORY;
    this.checkConfig = opts.checkConfig;
  }

  /** True once the final state has arrived. */
  get done(): boolean {
    return this.state !== undefined;
  }

  /** Bytes held of a record not yet whole: at most one record (MIGRATION_MAX_RECORD). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Pages held so far (at most the announced machine's RAM). */
  get pageCount(): number {
    return this.pages.size;
  }

  /** Take the next bytes of the stream. Throws a one-line "migration: ..." on a malformed stream. */
  push(chunk: Uint8Array): void {
    if (this.done) throw new Error("migration: data after the end of the stream");
    this.bytes += chunk.length;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (!this.headerSeen) {
      const head = this.take(HEADER_BYTES);
      if (head === undefined) return;
      if (String.fromCharCode(...head.subarray(0, 8)) !== MAGIC)
        throw new Error("migration: not a visor migration stream");
      const v = new DataView(head.buffer, head.byteOffset, HEADER_BYTES).getUint32(8, true);
      if (v !== MIGRATION_VERSION)
        throw new Error(
          `migration: stream version ${v} is not supported (this visor reads ${MIGRATION_VERSION})`,
        );
      this.headerSeen = true;
    }
    while (!this.done) {
      const head = this.peek(RECORD_HEAD);
      if (head === undefined) return;
      const type = head[0]!;
      const len = new DataView(head.buffer, head.byteOffset, RECORD_HEAD).getUint32(1, true);
      // Refused on the header alone: nothing of an oversized body is ever buffered.
      const max = MAX_RECORD[type];
      if (max === undefined) throw new Error(`migration: unknown record type ${type}`);
      if (len > max)
        throw new Error(`migration: record of ${len} bytes exceeds the largest legal one (${max})`);
      if ((type === REC_CONFIG) !== (this.config === undefined)) {
        throw new Error(
          type === REC_CONFIG
            ? "migration: a second machine configuration"
            : "migration: no machine configuration before the machine",
        );
      }
      const rec = this.take(RECORD_HEAD + len);
      if (rec === undefined) return;
      const body = rec.subarray(RECORD_HEAD);
      if (type === REC_CONFIG) this.takeConfig(body);
      else if (type === REC_PAGES) this.takePages(body);
      else this.takeState(body);
    }
    if (this.buffered !== 0) throw new Error("migration: data after the end of the stream");
  }

  private takeConfig(body: Uint8Array): void {
    const config = asMigration(() => validateMachineConfig(parseJson(body, "machine configuration")));
    if (config.memory > this.maxMemory) {
      throw new Error(
        `migration: the machine has ${config.memory} bytes of RAM, more than ${this.maxMemory}`,
      );
    }
    this.checkConfig?.(config);
    this.config = config;
    this.ramPages = ramBytes(config) / PAGE;
  }

  private takePages(body: Uint8Array): void {
    if (body.length % (4 + PAGE) !== 0) throw new Error("migration: malformed page record");
    const bdv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    for (let o = 0; o < body.length; o += 4 + PAGE) {
      const p = bdv.getUint32(o, true);
      if (p >= this.ramPages) {
        throw new Error(`migration: page ${p} lies outside the machine's ${this.ramPages} pages`);
      }
      this.pages.set(p, body.slice(o + 4, o + 4 + PAGE));
    }
  }

  private takeState(body: Uint8Array): void {
    const state = asMigration(() => validateMachineState(parseJson(body, "machine state")));
    if (JSON.stringify(state.config) !== JSON.stringify(this.config)) {
      throw new Error("migration: the machine state does not match the announced configuration");
    }
    this.state = state;
  }

  /** The first `n` buffered bytes without consuming them, or undefined if fewer are here. */
  private peek(n: number): Uint8Array | undefined {
    if (this.buffered < n) return undefined;
    if (this.chunks[0]!.length < n) {
      // Join only as many chunks as needed: each byte is copied about once per record.
      const joined = new Uint8Array(this.buffered);
      let o = 0;
      for (const c of this.chunks) {
        joined.set(c, o);
        o += c.length;
      }
      this.chunks = [joined];
    }
    return this.chunks[0]!.subarray(0, n);
  }

  /** Consume and return the first `n` buffered bytes, or undefined if fewer are here. */
  private take(n: number): Uint8Array | undefined {
    const b = this.peek(n);
    if (b === undefined) return undefined;
    const first = this.chunks[0]!;
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return b;
  }

  /** The migrated state's `meta` (available once done). */
  get meta(): unknown {
    return this.state?.meta;
  }

  /** The sender's machine configuration, once its record has arrived. */
  get machineConfig(): MachineConfigState | undefined {
    return this.config;
  }

  /** The machine, ready to run (once done), with the receiver's own disks and network. */
  machine(opts: RestoreOptions): Promise<Machine> {
    const state = this.state;
    if (state === undefined) throw new Error("migration: the stream ended before the machine state");
    const pages = this.pages;
    return MachineClass.restoreState(
      state,
      (ram) => {
        const count = ram.size / PAGE;
        for (const [p, data] of pages) {
          if (p >= count) throw new Error(`migration: page ${p} lies outside the machine's RAM`);
          ram.u8.set(data, p * PAGE);
        }
      },
      opts,
    );
  }
}

/** The state checks speak of a snapshot; in a stream they are the migration's errors. */
function asMigration<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.startsWith("snapshot: ") ? `migration: ${msg.slice("snapshot: ".length)}` : msg);
  }
}

function parseJson(body: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw new Error(`migration: corrupt ${what} (not JSON)`);
  }
}

function record(type: number, body: Uint8Array): Uint8Array {
  const r = new Uint8Array(5 + body.length);
  r[0] = type;
  new DataView(r.buffer).setUint32(1, body.length, true);
  r.set(body, 5);
  return r;
}

function encodePages(ram: GuestRam, pages: number[]): Uint8Array[] {
  const records: Uint8Array[] = [];
  for (let i = 0; i < pages.length; i += BATCH) {
    const batch = pages.slice(i, i + BATCH);
    const body = new Uint8Array(batch.length * (4 + PAGE));
    const dv = new DataView(body.buffer);
    batch.forEach((p, j) => {
      dv.setUint32(j * (4 + PAGE), p, true);
      body.set(ram.u8.subarray(p * PAGE, (p + 1) * PAGE), j * (4 + PAGE) + 4);
    });
    records.push(record(REC_PAGES, body));
  }
  return records;
}

/** Send pages batch by batch, copying each batch when it is sent (the VM runs in between). */
async function sendPages(
  ram: GuestRam,
  pages: number[],
  out: (c: Uint8Array) => Promise<void>,
  stats: MigrationStats,
): Promise<void> {
  for (let i = 0; i < pages.length; i += BATCH) {
    const batch = pages.slice(i, i + BATCH);
    const [rec] = encodePages(ram, batch);
    // Counted before the send, so the progress it reports includes these pages.
    stats.pages += batch.length;
    await out(rec!);
  }
}

function nonZeroPages(ram: GuestRam, from: number, to: number): number[] {
  const words = new Int32Array(ram.buffer);
  const pages: number[] = [];
  for (let p = from; p < to; p++) {
    for (let i = p * 1024; i < (p + 1) * 1024; i++) {
      if (words[i] !== 0) {
        pages.push(p);
        break;
      }
    }
  }
  return pages;
}

/** Dirty guest pages (the log also covers the hypervisor's pages, sent at the end). */
function dirtyGuestPages(ram: GuestRam, guestPages: number): number[] {
  return ram.fetchAndClearDirty().filter((p) => p < guestPages);
}

function countDirty(ram: GuestRam, guestPages: number): number {
  let n = 0;
  const d = ram.dirty;
  const words = Math.ceil(guestPages / 32);
  for (let w = 0; w < words; w++) {
    let x = d[w]!;
    while (x !== 0) {
      x &= x - 1;
      n++;
    }
  }
  return n;
}
