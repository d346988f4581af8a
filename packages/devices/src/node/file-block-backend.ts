/// <reference types="node" />
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";
import type { BlockBackend } from "../virtio/block-backend.ts";

/**
 * A disk image file (raw format) with synchronous positional reads and writes; flush()
 * is fsync. Opened read-write unless `readonly`, in which case the file is opened
 * read-only and the device refuses writes.
 */
export class FileBlockBackend implements BlockBackend {
  readonly path: string;
  readonly size: number;
  readonly readonly: boolean;
  private fd: number;

  constructor(path: string, options: { readonly?: boolean } = {}) {
    this.path = path;
    this.readonly = options.readonly ?? false;
    let fd: number;
    try {
      fd = openSync(path, this.readonly ? "r" : "r+");
    } catch (e) {
      throw new Error(`cannot open disk image ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      throw new Error(`disk image ${path} is not a regular file`);
    }
    this.fd = fd;
    this.size = st.size;
  }

  read(offset: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const n = readSync(this.openFd(), dst, done, dst.length - done, offset + done);
      if (n === 0) throw new Error(`${this.path}: unexpected end of file at byte ${offset + done}`);
      done += n;
    }
  }

  write(offset: number, src: Uint8Array): void {
    if (this.readonly) throw new Error(`${this.path} is read-only`);
    let done = 0;
    while (done < src.length) {
      done += writeSync(this.openFd(), src, done, src.length - done, offset + done);
    }
  }

  flush(): void {
    if (!this.readonly) fsyncSync(this.openFd());
  }

  /** Close the file; further I/O fails (and the guest sees IOERR). */
  close(): void {
    if (this.fd >= 0) {
      closeSync(this.fd);
      this.fd = -1;
    }
  }

  private openFd(): number {
    if (this.fd < 0) throw new Error(`${this.path} is closed`);
    return this.fd;
  }
}
