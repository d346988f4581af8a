/// <reference types="node" />
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";
import type { ImageFile } from "../block/image-file.ts";
import { fileErrorReason } from "./file-error.ts";
import { downgradeImageLock, type ImageLockMode, lockImage } from "./image-lock.ts";

/** A host file as an ImageFile: synchronous positional I/O on one descriptor. */
export class NodeImageFile implements ImageFile {
  readonly name: string;
  readonly writable: boolean;
  private fd: number;

  /**
   * Open `path` (read-write unless `readonly`); `create` makes a new file and fails if one
   * exists. Throws an Error naming the path.
   */
  constructor(path: string, options: { readonly?: boolean; create?: boolean } = {}) {
    this.name = path;
    this.writable = !options.readonly;
    let fd: number;
    try {
      fd = openSync(path, options.create ? "wx+" : options.readonly ? "r" : "r+", 0o644);
    } catch (e) {
      throw new Error(`${path}: ${fileErrorReason(e)}`);
    }
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      throw new Error(`${path}: not a regular file`);
    }
    this.fd = fd;
  }

  size(): number {
    return fstatSync(this.openFd()).size;
  }

  read(offset: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const n = readSync(this.openFd(), dst, done, dst.length - done, offset + done);
      if (n === 0) {
        dst.fill(0, done);
        return;
      }
      done += n;
    }
  }

  write(offset: number, src: Uint8Array): void {
    if (!this.writable) throw new Error(`${this.name} is read-only`);
    let done = 0;
    while (done < src.length) done += writeSync(this.openFd(), src, done, src.length - done, offset + done);
  }

  sync(): void {
    if (this.writable) fsyncSync(this.openFd());
  }

  /** Take (or change to) the image lock `mode`; see image-lock.ts. */
  lock(mode: ImageLockMode): void {
    lockImage(this.openFd(), this.name, mode);
  }

  /** From a write lock to a read lock (see downgradeImageLock). */
  downgradeLock(): void {
    downgradeImageLock(this.openFd(), this.name);
  }

  close(): void {
    if (this.fd >= 0) {
      closeSync(this.fd);
      this.fd = -1;
    }
  }

  private openFd(): number {
    if (this.fd < 0) throw new Error(`${this.name} is closed`);
    return this.fd;
  }
}
