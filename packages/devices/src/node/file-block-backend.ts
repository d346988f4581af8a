/// <reference types="node" />
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";
import type { BlockBackend } from "../virtio/block-backend.ts";
import { downgradeImageLock, type ImageLockMode, lockImage } from "./image-lock.ts";

export interface FileBlockOptions {
  /** Open read-only; the device then refuses writes. */
  readonly?: boolean;
  /**
   * A read-only disk that lets another process write the image meanwhile (QEMU's
   * share-rw=on): it takes no lock. Without it a reader keeps writers out.
   */
  shareRw?: boolean;
  /**
   * Open without locking yet; call lock() before the guest uses the disk. An incoming
   * migration opens its disks early (to fail fast on a bad path) and locks them once the
   * sender has let go of them, as QEMU's inactive images do.
   */
  deferLock?: boolean;
}

/**
 * A disk image file (raw format) with synchronous positional reads and writes; flush()
 * is fsync. Opened read-write unless `readonly`, in which case the file is opened
 * read-only and the device refuses writes.
 *
 * The image is locked as QEMU locks it (see image-lock.ts): one writer and no reader, or
 * any number of readers; a second writer, or a reader next to a writer, gets
 * "PATH is in use by another process (locked)". The kernel drops the lock when the file
 * is closed or the process ends.
 */
export class FileBlockBackend implements BlockBackend {
  readonly path: string;
  readonly size: number;
  private ro: boolean;
  private fd: number;
  private readonly lockMode: ImageLockMode;

  constructor(path: string, options: FileBlockOptions = {}) {
    this.path = path;
    this.ro = options.readonly ?? false;
    if (options.shareRw && !this.ro) {
      throw new Error(`disk image ${path}: share-rw is for read-only disks`);
    }
    let fd: number;
    try {
      fd = openSync(path, this.ro ? "r" : "r+");
    } catch (e) {
      throw new Error(`cannot open disk image ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      throw new Error(`disk image ${path} is not a regular file`);
    }
    this.lockMode = this.ro ? (options.shareRw ? "none" : "read") : "write";
    this.fd = fd;
    this.size = st.size;
    if (!options.deferLock) {
      try {
        this.lock();
      } catch (e) {
        this.close();
        throw e;
      }
    }
  }

  get readonly(): boolean {
    return this.ro;
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
    if (this.ro) throw new Error(`${this.path} is read-only`);
    let done = 0;
    while (done < src.length) {
      done += writeSync(this.openFd(), src, done, src.length - done, offset + done);
    }
  }

  flush(): void {
    if (!this.ro) fsyncSync(this.openFd());
  }

  /**
   * Stop writing: fsync, then hold a read lock instead of the write lock (another process
   * may now read the image, none may write it) and refuse writes. The image an overlay
   * switch moves away from is frozen this way.
   */
  freeze(): void {
    if (this.ro) return;
    this.flush();
    if (this.lockMode === "write") downgradeImageLock(this.openFd(), this.path);
    this.ro = true;
  }

  /** Take the image lock (see image-lock.ts); throws ImageLockedError if another process holds it. */
  lock(): void {
    lockImage(this.openFd(), this.path, this.lockMode);
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
