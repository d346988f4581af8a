/// <reference types="node" />
import { closeSync, openSync, readSync, realpathSync, rmSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { looksLikeQcow2, Qcow2Image, qcow2Create } from "../block/qcow2.ts";
import type { BlockBackend } from "../virtio/block-backend.ts";
import { FileBlockBackend } from "./file-block-backend.ts";
import { fileErrorReason } from "./file-error.ts";
import { NodeImageFile } from "./image-file.ts";

/*
 * Disk images on the host: raw files and qcow2 images with their backing chains, opened
 * the way QEMU opens them.
 *
 * Format: given (`format`), or probed from the first bytes (the qcow2 magic, else raw).
 * Probing has QEMU's known danger: a guest that writes a qcow2 header at the start of a
 * raw disk would, at the next boot, have the image read as qcow2, with a backing file of
 * its choosing (any host file). As QEMU does, a raw image whose format was probed refuses
 * a guest write that puts the qcow2 magic in its first bytes; give format=raw to allow it.
 *
 * Backing files: a relative name is relative to the directory of the image that names it
 * (as QEMU resolves it). The format is the one the overlay records (qemu-img create -F);
 * without one the backing file is probed, and one that looks like qcow2 is refused (the
 * same danger, one level down). Chains are at most MAX_BACKING_CHAIN images deep, and a
 * chain that names an image twice is refused. Backing files are opened read-only with a
 * read lock (writers kept out, other readers welcome).
 */

export type DiskFormat = "raw" | "qcow2";

/** The deepest backing chain opened (the top image counts). */
export const MAX_BACKING_CHAIN = 16;

export interface DiskImageOptions {
  /** raw or qcow2; probed from the file when not given. */
  format?: DiskFormat;
  /** Open read-only; the device then refuses writes. */
  readonly?: boolean;
  /** A read-only disk that takes no lock (QEMU's share-rw=on); see FileBlockBackend. */
  shareRw?: boolean;
  /** Open without locking; call lock() later (an incoming migration's disks). */
  deferLock?: boolean;
}

/** An open disk image: a BlockBackend with the host-side operations visor needs. */
export interface DiskImage extends BlockBackend {
  readonly path: string;
  readonly format: DiskFormat;
  /** Take the image locks of the whole chain (after deferLock). */
  lock(): void;
  /**
   * Stop writing: flush, keep only a read lock, refuse further writes. The image is then
   * consistent on disk and may be copied while the VM runs on an overlay above it.
   */
  freeze(): void;
  /** Flush (if writable) and close every file of the chain. */
  close(): void;
}

/** The format the first bytes of `path` say: qcow2 by its magic, raw otherwise. */
export function probeDiskFormat(path: string): DiskFormat {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new Error(`${path}: ${fileErrorReason(e)}`);
  }
  try {
    const head = new Uint8Array(4);
    const n = readSync(fd, head, 0, 4, 0);
    return n === 4 && looksLikeQcow2(head) ? "qcow2" : "raw";
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/** Open a disk image (and its backing chain); errors are one line naming the file. */
export function openDiskImage(path: string, options: DiskImageOptions = {}): DiskImage {
  return openChained(path, options, 1, new Set());
}

function openChained(path: string, options: DiskImageOptions, depth: number, seen: Set<string>): DiskImage {
  if (depth > MAX_BACKING_CHAIN)
    throw new Error(`${path}: backing chain deeper than ${MAX_BACKING_CHAIN} images`);
  let real: string;
  try {
    real = realpathSync(path);
  } catch (e) {
    throw new Error(`${path}: ${fileErrorReason(e)}`);
  }
  if (seen.has(real)) throw new Error(`${path}: the backing chain loops (this image is already in it)`);
  const format = options.format ?? probeDiskFormat(path);
  if (format === "raw") return new RawDisk(path, options, options.format === undefined);
  return new Qcow2Disk(path, options, depth, new Set([...seen, real]));
}

/** A raw image file. */
class RawDisk implements DiskImage {
  readonly format = "raw";
  readonly path: string;
  private readonly file: FileBlockBackend;
  private readonly probed: boolean;

  constructor(path: string, options: DiskImageOptions, probed: boolean) {
    this.path = path;
    this.probed = probed;
    this.file = new FileBlockBackend(path, {
      readonly: options.readonly ?? false,
      shareRw: options.shareRw ?? false,
      deferLock: options.deferLock ?? false,
    });
  }

  get size(): number {
    return this.file.size;
  }

  get readonly(): boolean {
    return this.file.readonly;
  }

  read(offset: number, dst: Uint8Array): void {
    this.file.read(offset, dst);
  }

  write(offset: number, src: Uint8Array): void {
    if (this.probed && offset < 4 && writesQcow2Magic(this.file, offset, src)) {
      throw new Error(
        `${this.path}: refused a write that would make this raw image look like qcow2 (its format was probed; give format=raw to allow it)`,
      );
    }
    this.file.write(offset, src);
  }

  flush(): void {
    this.file.flush();
  }

  lock(): void {
    this.file.lock();
  }

  freeze(): void {
    this.file.freeze();
  }

  close(): void {
    this.file.close();
  }
}

/** Would writing `src` at `offset` (< 4) leave the qcow2 magic in bytes 0..3? */
function writesQcow2Magic(file: BlockBackend, offset: number, src: Uint8Array): boolean {
  const head = new Uint8Array(4);
  if (offset > 0 || src.length < 4) file.read(0, head.subarray(0, Math.min(4, file.size)));
  head.set(src.subarray(0, 4 - offset), offset);
  return looksLikeQcow2(head);
}

/** A qcow2 image over a host file, its backing chain opened below it. */
class Qcow2Disk implements DiskImage {
  readonly format = "qcow2";
  readonly path: string;
  image!: Qcow2Image;
  private readonly file: NodeImageFile;
  private readonly backing: DiskImage[] = [];
  private readonly lockMode: "write" | "read" | "none";
  private closed = false;
  /** Opened without its lock (deferLock): the metadata is read again when lock() takes it. */
  private deferred: boolean;
  private readonly readonlyOpen: boolean;

  /**
   * `below`: an image already open to use as the backing file (an overlay switch puts a
   * new overlay over the running image); it is then this image's to close.
   */
  constructor(path: string, options: DiskImageOptions, depth: number, seen: Set<string>, below?: DiskImage) {
    this.path = path;
    const readonly = options.readonly ?? false;
    if (options.shareRw && !readonly) throw new Error(`${path}: share-rw is for read-only disks`);
    this.lockMode = readonly ? (options.shareRw ? "none" : "read") : "write";
    this.file = new NodeImageFile(path, { readonly });
    this.deferred = options.deferLock ?? false;
    this.readonlyOpen = readonly;
    try {
      if (!options.deferLock) this.file.lock(this.lockMode);
      this.image = Qcow2Image.open(this.file, {
        readonly,
        openBacking: (name, format) => {
          if (below !== undefined) return below;
          if (name.startsWith("json:"))
            throw new Error(`${path}: backing file '${name.slice(0, 40)}' (json:) is not supported`);
          const where = isAbsolute(name) ? name : join(dirname(path), name);
          let fmt = format;
          if (fmt === undefined) {
            if (probeDiskFormat(where) === "qcow2") {
              throw new Error(
                `${path}: its backing file ${name} has no recorded format and looks like qcow2; record it: qemu-img rebase -u -F qcow2 -b ${name} ${path}`,
              );
            }
            fmt = "raw";
          }
          const b = openChained(
            where,
            {
              format: fmt,
              readonly: true,
              shareRw: options.shareRw ?? false,
              deferLock: options.deferLock ?? false,
            },
            depth + 1,
            seen,
          );
          this.backing.push(b);
          return b;
        },
      });
      if (below !== undefined) this.backing.push(below);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  get size(): number {
    return this.image.size;
  }

  get readonly(): boolean {
    return this.image.readonly;
  }

  read(offset: number, dst: Uint8Array): void {
    this.image.read(offset, dst);
  }

  write(offset: number, src: Uint8Array): void {
    this.image.write(offset, src);
  }

  flush(): void {
    this.image.flush();
  }

  lock(): void {
    this.file.lock(this.lockMode);
    for (const b of this.backing) b.lock();
    if (this.deferred) {
      // Until now another process (a migrating VM's sender) may have been writing the
      // image: what was read at open (L1 table, refcount table, header) may be stale.
      // Read it again, now that nobody else may write, over the same backing files.
      this.deferred = false;
      const below = this.backing[0];
      this.image = Qcow2Image.open(this.file, {
        readonly: this.readonlyOpen,
        openBacking: () => {
          if (below === undefined)
            throw new Error(`${this.path}: gained a backing file while it was unlocked`);
          return below;
        },
      });
    }
  }

  freeze(): void {
    if (this.image.readonly) return;
    this.image.freeze();
    if (this.lockMode === "write") this.file.downgradeLock();
  }

  /** Close this image's own file only, leaving the backing images open (an aborted overlay switch). */
  closeOwn(): void {
    if (this.closed) return;
    this.closed = true;
    this.file.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      // (image is unset when the constructor failed)
      if (this.image !== undefined && !this.image.readonly) this.image.flush();
    } finally {
      this.file.close();
      for (const b of this.backing) b.close();
    }
  }
}

/**
 * Open the qcow2 overlay at `path` (made by createQcow2Overlay) over `below`, an image
 * already open, instead of opening the backing file the overlay names. The overlay then
 * owns `below` (closing the overlay closes it). If opening fails, `below` stays open.
 */
export function openOverlayOver(path: string, below: DiskImage): DiskImage & { closeOwn(): void } {
  return new Qcow2Disk(path, { format: "qcow2" }, 1, new Set(), below);
}

export interface CreateOverlayOptions {
  /** The image below: stored in the overlay as given (relative names are relative to the overlay's directory). */
  backingName: string;
  backingFormat: DiskFormat;
  /** Virtual size in bytes (the backing image's). */
  size: number;
}

/**
 * Create a new qcow2 overlay at `path` (which must not exist) over a backing image, as
 * `qemu-img create -f qcow2 -b BACKING -F FORMAT path` does. Removed again if writing it fails.
 */
export function createQcow2Overlay(path: string, options: CreateOverlayOptions): void {
  const file = new NodeImageFile(path, { create: true });
  try {
    qcow2Create(file, {
      size: options.size,
      backing: { name: options.backingName, format: options.backingFormat },
    });
    file.close();
  } catch (e) {
    file.close();
    rmSync(path, { force: true });
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}
