/**
 * The page cache: one MemObject per host file identity (device, inode, size, mtime), so
 * that every mapping of a file (every process running /bin/busybox) shares the same
 * physical pages. Text pages are never written (private mappings copy on write), which
 * also keeps their decoded instructions in the hart's code cache across fork and exec.
 */
import type { FileCtx, HostFileDesc } from "./files.ts";
import type { HostStat } from "./host.ts";
import { type Frames, MemObject, PAGE } from "./mm.ts";

/** How many unused cached files to keep. */
const KEEP_UNUSED = 32;

export class PageCache {
  private readonly frames: Frames;
  private readonly ctx: FileCtx;
  private readonly map = new Map<string, MemObject>();
  hits = 0;
  misses = 0;

  constructor(frames: Frames, ctx: FileCtx) {
    this.frames = frames;
    this.ctx = ctx;
  }

  private static key(st: HostStat): string {
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  }

  /** The cached object of an open host file (the object keeps its own reference to the file). */
  get(desc: HostFileDesc): MemObject {
    const st = desc.host.stat();
    const key = PageCache.key(st);
    const hit = this.map.get(key);
    if (hit !== undefined) {
      this.hits++;
      return hit;
    }
    this.misses++;
    desc.refs++;
    const ctx = this.ctx;
    const obj = new MemObject(this.frames, Math.ceil(st.size / PAGE), {
      readAt: (pos, dst) => {
        let n = 0;
        while (n < dst.length) {
          const r = desc.host.read(dst.subarray(n), pos + n);
          if (r <= 0) break;
          n += r;
        }
        return n;
      },
      writeAt: (pos, src) => {
        const size = desc.host.stat().size;
        const len = Math.max(0, Math.min(src.length, size - pos));
        if (len > 0) desc.host.write(src.subarray(0, len), pos);
      },
      release: () => desc.decRef(ctx),
    });
    obj.key = key;
    this.map.set(key, obj);
    this.trim(KEEP_UNUSED);
    return obj;
  }

  /** Forget every cached version of a file (after the guest wrote or truncated it). */
  invalidate(st: HostStat): void {
    const prefix = `${st.dev}:${st.ino}:`;
    for (const [k, obj] of this.map) {
      if (!k.startsWith(prefix)) continue;
      this.map.delete(k);
      obj.key = undefined;
      if (obj.users <= 0) obj.free();
    }
  }

  /** Drop unused objects beyond `keep`; returns true if any frames were freed. */
  trim(keep: number): boolean {
    let unused = 0;
    for (const obj of this.map.values()) if (obj.users <= 0) unused++;
    let freed = false;
    for (const [k, obj] of this.map) {
      if (unused <= keep) break;
      if (obj.users > 0) continue;
      this.map.delete(k);
      obj.key = undefined;
      obj.free();
      unused--;
      freed = true;
    }
    return freed;
  }

  get size(): number {
    return this.map.size;
  }
}
