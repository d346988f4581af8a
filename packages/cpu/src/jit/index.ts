/**
 * The binary translator's second tier: the translation cache (one per RAM, shared by its
 * harts like the CodeCache) and each hart's part of it (helpers, instances, hot counters).
 *
 * How code gets here (hart.ts `run`):
 * - `on`: the interpreter counts taken backward branches and jumps per target (a hashed
 *   counter of the target pc: loop heads); when a target has been reached HOT_THRESHOLD
 *   times, the region from it is translated (translate.ts) and compiled to a WebAssembly
 *   module. Translated code jumps to other translated code directly (the chain cache).
 * - `always`: every instruction the interpreter decodes for the first time starts a region.
 * A translated entry is marked in the decoded page itself: its slot's first word becomes
 * `~id` (negative; decoded words are never negative), so the interpreter finds translated
 * code with the same test it already makes for undecoded slots, and costs nothing more
 * when there is none. The entry keeps the slot's decoded instruction for the interpreter
 * (an entry whose first block does not fit the run's remaining budget is interpreted).
 *
 * Coherence: a translation belongs to its physical page's decoded slots. Whatever drops a
 * page from the CodeCache (a store into it, DMA, loaders, fence-free self-modifying code,
 * snapshot restore) drops its translations too. A code page is never in a write TLB, so
 * translated code leaves before any store into code and the interpreter does the store;
 * an AMO that writes code through the general path leaves right after it (EXIT_TRAP).
 *
 * Bounds: at most MAX_LIVE_BYTES of module bytes are live; past that the whole cache is
 * flushed (as v86 does), and hot code is translated again.
 */
import { type WasmTable, wasmApi } from "@visor/memory";
import type { CodeCache } from "../code-cache.ts";
import { CHAIN_SIZE, type HartCore, ST_CHAIN, TLB_MASK } from "../core.ts";
import * as D from "../decode.ts";
import { fpFastPath } from "../fp-fast.ts";
import { execOne } from "../system.ts";
import {
  EXIT_HELPER,
  EXIT_TRAP,
  type Region,
  regionModule,
  trampolineModule,
  translateRegion,
} from "./translate.ts";
import type { JitMode, JitStats } from "./types.ts";

export { EXIT_BEFORE, EXIT_HELPER, EXIT_PC, EXIT_TRAP } from "./translate.ts";

/**
 * Backward branches and jumps taken to one target (hashed) before its region is
 * translated: loops. Measured on the bundled guest's boot (docs/binary-translation.md):
 * kernel code that runs a few thousand times costs more to compile than it saves, and
 * loops that run longer gain 7-20x, so only targets reached this often are translated.
 */
export const HOT_THRESHOLD = 16384;
/** Hot counters per hart (a hash of target pc >> 1). */
export const HOT_SIZE = 4096;
export const HOT_MASK = HOT_SIZE - 1;
/**
 * Regions waiting to be compiled are compiled together, as one module, when this many
 * are queued or when the oldest has waited BATCH_WAIT instructions of its hart: looked at
 * whenever a target gets hot, and a queued region's entry counts as hot again after
 * BATCH_RECHECK more jumps to it, so its own loop brings its batch in (nothing is added
 * to every `run`).
 */
export const BATCH_MAX = 64;
/**
 * While a region waits, its loop runs interpreted, about 10 ns an instruction slower than
 * translated; a module costs 75-80 µs that a batch shares. Waiting 20 000 instructions
 * (about 0.2 ms) is worth it when a second region joins in that time.
 */
export const BATCH_WAIT = 20_000;
/** Jumps to a queued region's entry between looks at whether its batch is due. */
export const BATCH_RECHECK = 256;
/** Live module bytes at most; past it the cache is flushed. */
export const MAX_LIVE_BYTES = 24 * 1024 * 1024;

type RegionFn = (n: number, limit: number, entry: number, vLo: number, vHi: number, fpOk: number) => number;
type EnterFn = (
  index: number,
  n: number,
  limit: number,
  entry: number,
  vLo: number,
  vHi: number,
  fpOk: number,
) => number;

let trampoline: object | undefined;

/**
 * A hart's chain table and trampoline. Each hart has its own: the table holds only its
 * region instances, so they, their memories and the table go when the hart does. (One
 * table for the whole process kept every dead hart's instances and memories alive; a
 * fuzzer creating thousands of harts crashed.)
 */
interface Shared {
  table: WasmTable;
  enter: EnterFn;
  free: number[];
  used: number;
}

function hartTable(): Shared {
  const table = new wasmApi!.Table({ element: "anyfunc", initial: 64 });
  trampoline ??= new wasmApi!.Module(trampolineModule());
  const inst = new wasmApi!.Instance(trampoline, { m: { tbl: table } });
  return { table, enter: inst.exports.enter as EnterFn, free: [], used: 0 };
}

/** One compiled module of region functions and its instance for each hart slot. */
class Batch {
  readonly module: object;
  readonly instances: (Record<string, unknown> | undefined)[] = [];
  constructor(module: object) {
    this.module = module;
  }
}

class CompiledRegion {
  readonly batch: Batch;
  /** The region's function in its batch (exported as f<index>). */
  readonly index: number;
  readonly bytes: number;
  readonly pageIdx: number;
  /** One function per hart slot (each hart has its own state memory and helpers). */
  readonly fns: (RegionFn | undefined)[] = [];
  /** Each hart's table index of its function (for chaining), by slot. */
  readonly tidx: number[] = [];
  readonly ids: number[] = [];
  constructor(batch: Batch, index: number, bytes: number, pageIdx: number) {
    this.batch = batch;
    this.index = index;
    this.bytes = bytes;
    this.pageIdx = pageIdx;
  }
}

/** A region translated and waiting in the queue for its batch to compile. */
interface Queued {
  region: Region;
  dv: DataView;
  pageOff: number;
  /** The page's decoded slots when it was translated (a page dropped since has new ones). */
  dec: Int32Array;
}

/** An entry into a compiled region at one decoded slot. */
export class Entry {
  readonly region: CompiledRegion;
  readonly dec: Int32Array;
  readonly slot: number;
  /** Block index to enter at, and its instruction count (the budget it needs). */
  readonly bb: number;
  readonly min: number;
  /** The slot's decoded instruction (for the interpreter when the entry is not taken). */
  readonly w: number;
  readonly imm: number;
  readonly hasFp: boolean;
  /** The entry's RAM offset (the chain cache's key). */
  readonly key: number;
  /** Its chain cache value for a hart: table index * 512 + block (set when instantiated). */
  constructor(
    region: CompiledRegion,
    dec: Int32Array,
    slot: number,
    bb: number,
    min: number,
    w: number,
    imm: number,
    hasFp: boolean,
  ) {
    this.region = region;
    this.dec = dec;
    this.slot = slot;
    this.bb = bb;
    this.min = min;
    this.w = w;
    this.imm = imm;
    this.hasFp = hasFp;
    this.key = region.pageIdx * 4096 + slot;
  }
}

/** csrrs/csrrc with rs1 = x0, csrrsi/csrrci with uimm = 0: a CSR read that writes nothing. */
function csrReadOnly(raw: number): boolean {
  const f3 = (raw >>> 12) & 7;
  return (f3 & 3) >= 2 && ((raw >>> 15) & 31) === 0;
}

const perf = (globalThis as { performance?: { now(): number } }).performance;
const now = (): number => (perf !== undefined ? perf.now() : Date.now());

const cacheOf = new WeakMap<CodeCache, TranslationCache>();

/** The translations of one RAM's code. */
export class TranslationCache {
  readonly entries: (Entry | undefined)[] = [];
  private readonly free: number[] = [];
  private readonly byPage = new Map<number, CompiledRegion[]>();
  private slots = 0;
  private readonly harts: HartJit[] = [];
  regions = 0;
  translatedInstructions = 0;
  /** A double from the start (see HartJit.executed). */
  translateMs = 0.5;
  invalidations = 0;
  evictions = 0;
  liveRegions = 0;
  liveBytes = 0;
  /** Live module bytes at most (tests lower it). */
  maxLiveBytes = MAX_LIVE_BYTES;
  /** Modules compiled (each holds a batch of regions). */
  modules = 0;
  /** A module failed to compile (a translator bug): translation stops, the interpreter goes on. */
  broken = "";
  private readonly code: CodeCache;
  private queue: Queued[] = [];
  /** RAM offsets of the block starts of queued regions. */
  private readonly queuedKeys = new Set<number>();
  /** When the oldest queued region was queued: its hart's executed count (see compileHot). */
  queuedAt = 0;

  static of(code: CodeCache): TranslationCache {
    let t = cacheOf.get(code);
    if (t === undefined) {
      t = new TranslationCache(code);
      cacheOf.set(code, t);
    }
    return t;
  }

  private constructor(code: CodeCache) {
    this.code = code;
    this.translateMs = 0;
    code.onDropPage((idx) => this.dropPage(idx, false));
  }

  /**
   * Translate the region at byte `off` of the page at RAM offset `pageOff` (decoded slots
   * `dec`), compile it and mark its entries; returns the entry id at `off`, or -1. Regions
   * already queued are compiled with it, in one module.
   */
  compile(dv: DataView, pageOff: number, off: number, dec: Int32Array): number {
    const have = dec[off]!;
    if (have < 0) return ~have;
    if (!this.enqueue(dv, pageOff, off, dec, false)) return -1;
    this.compileQueue();
    const now = dec[off]!;
    return now < 0 ? ~now : -1;
  }

  /** Regions translated and not compiled yet. */
  get queued(): number {
    return this.queue.length;
  }

  /** A block of a queued region starts at RAM offset `key`. */
  isQueued(key: number): boolean {
    return this.queuedKeys.has(key);
  }

  /**
   * Translate the region at byte `off` of the page at RAM offset `pageOff` and queue it
   * for compiling. With `ranOnly`, the region holds only instructions that have run
   * (their slots are decoded): code the interpreter never reached (error paths, the
   * other side of a branch not yet taken) stays out, and the module is smaller. A later
   * exit there counts toward translating it on its own (hart.ts). False when nothing was
   * queued (translated or queued already, or not translatable).
   */
  enqueue(dv: DataView, pageOff: number, off: number, dec: Int32Array, ranOnly: boolean): boolean {
    if (dec[off]! < 0 || this.broken !== "" || wasmApi === undefined) return false;
    const key = pageOff + off;
    if (this.queuedKeys.has(key)) return false;
    const t0 = now();
    const region = translateRegion(dv, pageOff, off, ranOnly ? dec : undefined);
    if (region !== undefined) {
      this.queue.push({ region, dv, pageOff, dec });
      // its other blocks are not requested again while it waits
      for (const st of region.starts) this.queuedKeys.add(pageOff + st);
    }
    this.translateMs += now() - t0;
    return region !== undefined;
  }

  /**
   * Compile every queued region as one module and mark the entries of those whose page
   * still has the decoded slots it was translated from (a page written or dropped since
   * gets none: its code may have changed).
   */
  compileQueue(): void {
    const q = this.queue;
    if (q.length === 0) return;
    this.queue = [];
    this.queuedKeys.clear();
    if (this.broken !== "") return;
    const t0 = now();
    let module: object;
    try {
      module = new wasmApi!.Module(regionModule(q.map((x) => x.region.body)));
    } catch (e) {
      this.broken = `a translated region failed to compile (${e instanceof Error ? e.message : String(e)})`;
      return;
    }
    this.modules++;
    const batch = new Batch(module);
    for (let i = 0; i < q.length; i++) {
      const { region, dv, pageOff, dec } = q[i]!;
      const pageIdx = Math.floor(pageOff / 4096);
      if (this.code.pages[pageIdx] !== dec) continue;
      if (this.liveBytes + region.body.length > this.maxLiveBytes) this.flush();
      const cr = new CompiledRegion(batch, i, region.body.length, pageIdx);
      let list = this.byPage.get(pageIdx);
      if (list === undefined) {
        list = [];
        this.byPage.set(pageIdx, list);
      }
      list.push(cr);
      for (let bi = 0; bi < region.starts.length; bi++) {
        const s = region.starts[bi]!;
        if (dec[s]! < 0) continue; // another region's entry already
        let w = dec[s]!;
        let imm = dec[s + 1]!;
        if (w === 0) {
          const h = dv.getUint16(pageOff + s, true);
          w = (h & 3) !== 3 ? D.decode16(h) : D.decode32(dv.getInt32(pageOff + s, true));
          imm = D.decodedImm;
        }
        const id = this.free.length > 0 ? this.free.pop()! : this.entries.length;
        this.entries[id] = new Entry(cr, dec, s, bi, region.lengths[bi]!, w, imm, region.hasFp);
        cr.ids.push(id);
        dec[s] = ~id;
        dec[s + 1] = imm;
      }
      this.regions++;
      this.liveRegions++;
      this.liveBytes += cr.bytes;
      this.translatedInstructions += region.count;
    }
    this.translateMs += now() - t0;
  }

  /** The function of `e`'s region for hart `h` (its batch instantiated on first use, and put in its chain table). */
  fn(e: Entry, h: HartJit): RegionFn | undefined {
    const r = e.region;
    let f = r.fns[h.slot];
    if (f === undefined) {
      const b = r.batch;
      let ex = b.instances[h.slot];
      if (ex === undefined) {
        try {
          ex = new wasmApi!.Instance(b.module, h.imports).exports;
        } catch (err) {
          // A translator bug or an engine limit: stop translating, give every slot back to
          // the interpreter, and say why in jitStats.unavailable.
          this.broken = `a translated region failed to instantiate (${err instanceof Error ? err.message : String(err)})`;
          this.flush();
          return undefined;
        }
        b.instances[h.slot] = ex;
      }
      f = ex[`f${r.index}`] as RegionFn;
      r.fns[h.slot] = f;
      r.tidx[h.slot] = h.tableAdd(f);
    }
    return f;
  }

  attach(h: HartJit): number {
    this.harts.push(h);
    return this.slots++;
  }

  private dropRegion(cr: CompiledRegion): void {
    for (const h of this.harts) {
      const t = cr.tidx[h.slot];
      if (t !== undefined) h.tableDrop(t);
    }
    for (const id of cr.ids) {
      const e = this.entries[id];
      if (e === undefined) continue;
      if (e.dec[e.slot] === ~id) {
        e.dec[e.slot] = e.w;
        e.dec[e.slot + 1] = e.imm;
      }
      this.entries[id] = undefined;
      this.free.push(id);
    }
    cr.ids.length = 0;
    this.liveRegions--;
    this.liveBytes -= cr.bytes;
  }

  /** Drop the translations of page `idx` (its code was written or dropped). */
  dropPage(idx: number, evict: boolean): void {
    const list = this.byPage.get(idx);
    if (list === undefined) return;
    this.byPage.delete(idx);
    for (const cr of list) {
      this.dropRegion(cr);
      if (evict) this.evictions++;
      else this.invalidations++;
    }
  }

  /** Drop everything (the cache is full). */
  flush(): void {
    for (const idx of [...this.byPage.keys()]) this.dropPage(idx, true);
  }
}

/** Why translation cannot run for this hart, or "". */
export function unavailableReason(c: HartCore): string {
  if (wasmApi === undefined) return "this host has no WebAssembly";
  if (c.stateMemory === undefined) return "no WebAssembly memory for the hart's state";
  if (c.ram.memory === undefined)
    return "RAM is not a WebAssembly memory (above 2 GiB, or given as a plain buffer)";
  if (c.tlbSets.some((t) => t.stOffset < 0)) return "TLB pages are not in the state memory";
  return "";
}

/** One hart's side of the translator. */
export class HartJit {
  readonly cache: TranslationCache;
  readonly always: boolean;
  readonly slot: number;
  readonly hot = new Int32Array(HOT_SIZE).fill(HOT_THRESHOLD);
  readonly imports: Record<string, Record<string, unknown>>;
  /**
   * Guest instructions executed in translated code. It passes 2^31 in long runs, so it is a
   * double field from the start: a field that changes from small integer to double
   * changes its object's hidden class, which throws the optimized interpreter loop away.
   */
  executed = 0.5;
  /** Entries from the interpreter (a double from the start, as `executed`). */
  entries = 0.5;

  /** This hart's chain table (its region instances) and trampoline. */
  private readonly shared: Shared;
  private readonly st: Int32Array;
  /** Calls the region function at a table index (translate.ts trampolineModule). */
  readonly enter: EnterFn;

  constructor(c: HartCore, mode: JitMode) {
    this.cache = TranslationCache.of(c.code);
    this.always = mode === "always";
    this.shared = hartTable();
    this.st = c.st;
    this.clearChain();
    this.enter = this.shared.enter;
    this.slot = this.cache.attach(this);
    this.executed = 0;
    this.entries = 0;
    this.imports = {
      m: { ram: c.ram.memory, st: c.stateMemory, tbl: this.shared.table },
      h: {
        general: (w: number, imm: number, pcLo: number, pcHi: number, n: number): number => {
          if (fpFastPath(c, w, imm)) return 0;
          c.pcLo = pcLo;
          c.pcHi = pcHi;
          c.runN = n;
          const traps = c.stats.traps;
          const gen = c.code.generation;
          const brk = execOne(c, w, imm, pcLo, pcHi);
          const nextLo = (pcLo + 4 - ((w >>> 6) & 2)) | 0;
          const nextHi = (pcHi + (nextLo >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
          if (c.pcLo !== nextLo || c.pcHi !== nextHi || c.stats.traps !== traps || c.exit !== null) {
            return brk ? EXIT_TRAP : EXIT_HELPER; // a trap, or control went elsewhere
          }
          if (c.code.generation !== gen) return EXIT_TRAP; // it wrote code (an AMO): look again
          // The interpreter looks around after every CSR instruction; after a read nothing
          // changed that it would see, so translated code goes on.
          if (!brk || ((w & 0x7f) === D.OP_CSR && csrReadOnly(imm))) return 0;
          return EXIT_TRAP;
        },
      },
    };
  }

  tableAdd(f: RegionFn): number {
    const sh = this.shared;
    let i = sh.free.pop();
    if (i === undefined) {
      i = sh.used++;
      if (i >= sh.table.length) sh.table.grow(sh.table.length);
    }
    sh.table.set(i, f);
    return i;
  }

  /** A region is gone: its table slot is free, and no chain may lead there any more. */
  tableDrop(i: number): void {
    this.shared.table.set(i, null);
    this.shared.free.push(i);
    this.clearChain();
  }

  private clearChain(): void {
    const base = ST_CHAIN >> 2;
    for (let i = 0; i < CHAIN_SIZE; i++) this.st[base + 2 * i] = -1;
  }

  /**
   * Queue the region at (pcLo, pcHi) for translation if its page is in the fetch TLB now;
   * `n` is the instructions run so far in the hart's current `run`.
   */
  compileHot(c: HartCore, pcLo: number, pcHi: number, n: number): void {
    const h = (pcLo >>> 1) & HOT_MASK;
    const ti = (pcLo >>> 12) & TLB_MASK;
    if (c.xTag[2 * ti] !== (pcLo & ~0xfff) || c.xTag[2 * ti + 1] !== pcHi) {
      this.hot[h] = 0; // not fetched yet: try again at the next jump here
      return;
    }
    this.hot[h] = HOT_THRESHOLD;
    const pageOff = c.xPage[ti]!;
    const t = this.cache;
    const first = t.queued === 0;
    if (t.enqueue(c.ram.dv, pageOff, pcLo & 0xffe, c.code.page(pageOff), true) && first)
      t.queuedAt = c.executed + n;
    this.compileDue(c, n);
    // Still waiting for its batch: look again after a few more jumps here.
    if (t.isQueued(pageOff + (pcLo & 0xffe))) this.hot[h] = BATCH_RECHECK;
  }

  /** Compile the queued regions if there are BATCH_MAX of them or the oldest has waited BATCH_WAIT instructions. */
  private compileDue(c: HartCore, n: number): void {
    const t = this.cache;
    if (t.queued >= BATCH_MAX || (t.queued > 0 && c.executed + n - t.queuedAt >= BATCH_WAIT))
      t.compileQueue();
  }

  stats(mode: JitMode): JitStats {
    const t = this.cache;
    return {
      mode,
      unavailable: t.broken,
      regions: t.regions,
      translatedInstructions: t.translatedInstructions,
      modules: t.modules,
      translateMs: t.translateMs,
      executedTranslated: this.executed,
      entries: this.entries,
      invalidations: t.invalidations,
      evictions: t.evictions,
      liveRegions: t.liveRegions,
      liveBytes: t.liveBytes,
    };
  }
}
