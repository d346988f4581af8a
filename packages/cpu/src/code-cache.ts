import { type GuestRam, PAGE_SIZE } from "@visor/memory";

/**
 * Page index of a RAM byte offset. RAM offsets go past 4 GiB, so no 32-bit shift here: it
 * would wrap, and a page above 4 GiB would share its decoded slots with one below.
 */
function pageIndex(off: number): number {
  return Math.floor(off / PAGE_SIZE);
}

/**
 * Decoded-instruction cache shared by every hart on one RAM: one Int32Array of decoded
 * slots per 4 KiB physical page that has been executed from (two int32 words per
 * halfword, see decode.ts). It stays coherent with memory by construction:
 * - a hart never keeps a page that has decoded instructions in its write TLB, so every
 *   store to such a page takes the slow path, which drops the page's decoded slots;
 * - writes that bypass the CPUs (device DMA, loaders) arrive through
 *   `GuestRam.onExternalWrite` and drop the pages they touch.
 * So `fence.i` has nothing left to do.
 */
export class CodeCache {
  readonly pages: (Int32Array | undefined)[];
  /** Called with a RAM byte offset of a page when it becomes a code page. */
  private readonly listeners: ((pageOff: number) => void)[] = [];
  /** Called with a page index when its decoded slots are dropped (translations go with them). */
  private readonly dropListeners: ((pageIdx: number) => void)[] = [];
  /** Bumped whenever any page is dropped; harts compare it to drop their current page. */
  generation = 0;
  invalidations = 0;

  constructor(ram: GuestRam) {
    this.pages = new Array(pageIndex(ram.size)).fill(undefined);
    // V8 treats a field that has only ever been initialized as a constant, and the
    // optimized interpreter loop (hart.ts `run` reads `generation` between slices) then
    // depends on it: the first page dropped, in the middle of a boot, threw that code away
    // and the loop ran unoptimized until V8 compiled it again. Two different values here
    // make the field a variable from the start (--trace-generalization shows it).
    this.generation = 1;
    this.generation = 0;
    this.invalidations = 1;
    this.invalidations = 0;
    const prev = ram.onExternalWrite;
    ram.onExternalWrite = (off, len) => {
      prev?.(off, len);
      this.invalidateRange(off, len);
    };
  }

  onNewCodePage(listener: (pageOff: number) => void): void {
    this.listeners.push(listener);
  }

  onDropPage(listener: (pageIdx: number) => void): void {
    this.dropListeners.push(listener);
  }

  private dropped(idx: number): void {
    for (const l of this.dropListeners) l(idx);
  }

  /** The decoded page for the RAM page at byte offset `pageOff`, created empty if needed. */
  page(pageOff: number): Int32Array {
    const idx = pageIndex(pageOff);
    let p = this.pages[idx];
    if (p === undefined) {
      p = new Int32Array(4096);
      this.pages[idx] = p;
      for (const l of this.listeners) l(pageOff);
    }
    return p;
  }

  isCode(pageOff: number): boolean {
    return this.pages[pageIndex(pageOff)] !== undefined;
  }

  invalidatePage(pageOff: number): void {
    const idx = pageIndex(pageOff);
    if (this.pages[idx] !== undefined) {
      this.pages[idx] = undefined;
      this.generation++;
      this.invalidations++;
      this.dropped(idx);
    }
  }

  invalidateRange(off: number, len: number): void {
    if (len <= 0) return;
    const last = pageIndex(off + len - 1);
    for (let p = pageIndex(off); p <= last; p++) {
      if (this.pages[p] !== undefined) {
        this.pages[p] = undefined;
        this.generation++;
        this.invalidations++;
        this.dropped(p);
      }
    }
  }

  clear(): void {
    for (let i = 0; i < this.pages.length; i++) if (this.pages[i] !== undefined) this.dropped(i);
    this.pages.fill(undefined);
    this.generation++;
  }
}
