/**
 * The file under a disk image format: positional reads and writes and a durability
 * barrier. The qcow2 code in this package is written against it so that it stays free of
 * node: modules; `@visor/devices/node` binds it to a host file (NodeImageFile), tests bind
 * it to memory (MemoryImageFile).
 */
export interface ImageFile {
  /** The name errors use (the path as the user gave it). */
  readonly name: string;
  /** The file's length in bytes now. */
  size(): number;
  /** Fill `dst` with the bytes at `offset`; bytes past the end of the file read as zeros. */
  read(offset: number, dst: Uint8Array): void;
  /** Store `src` at `offset`, growing the file if needed. */
  write(offset: number, src: Uint8Array): void;
  /** Make every completed write durable (fsync). */
  sync(): void;
}

/** An ImageFile in memory: tests, the fuzz surface, browser use. Grows as written. */
export class MemoryImageFile implements ImageFile {
  readonly name: string;
  private buf: Uint8Array;
  private len: number;
  /** Number of sync() calls. */
  syncs = 0;

  constructor(name: string, contents: Uint8Array = new Uint8Array(0)) {
    this.name = name;
    this.buf = contents.slice();
    this.len = contents.length;
  }

  size(): number {
    return this.len;
  }

  /** A copy of the file's bytes. */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  read(offset: number, dst: Uint8Array): void {
    dst.fill(0);
    if (offset < this.len) dst.set(this.buf.subarray(offset, Math.min(this.len, offset + dst.length)));
  }

  write(offset: number, src: Uint8Array): void {
    const end = offset + src.length;
    if (end > this.buf.length) {
      const grown = new Uint8Array(Math.max(end, this.buf.length * 2));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(src, offset);
    this.len = Math.max(this.len, end);
  }

  sync(): void {
    this.syncs++;
  }
}
