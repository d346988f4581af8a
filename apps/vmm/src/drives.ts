/**
 * `visor run`'s disks: opening raw and qcow2 images with their backing chains,
 * --snapshot's temporary overlays (QEMU's -snapshot), and the overlay switch a live
 * backup uses (drive-snapshot.ts). The --disk option itself (format, read-only,
 * transport, rate limits) is parsed in drive-spec.ts.
 */
import { unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BlockBackend, RateLimiter } from "@visor/devices";
import {
  createQcow2Overlay,
  type DiskImage,
  ImageLockedError,
  openDiskImage,
  openOverlayOver,
} from "@visor/devices/node";
import type { DriveSpec } from "./drive-spec.ts";
import { UserError } from "./errors.ts";

export { type DriveSpec, parseDiskSpec, parseNetLimits } from "./drive-spec.ts";

/**
 * One disk of the VM: a BlockBackend the device holds for the VM's life, whose image can
 * change under it (the overlay switch) — the device never sees the switch, which happens
 * between two requests.
 */
export class Drive implements BlockBackend {
  readonly spec: DriveSpec;
  /** True for a --snapshot drive: its top image is a deleted temporary overlay. */
  readonly temporary: boolean;
  readonly rateLimiter: RateLimiter | undefined;
  private top: DiskImage;

  private constructor(spec: DriveSpec, top: DiskImage, temporary: boolean) {
    this.spec = spec;
    this.top = top;
    this.temporary = temporary;
    this.rateLimiter = spec.limits ? new RateLimiter(spec.limits) : undefined;
  }

  /**
   * Open the drive's image. `snapshot` (QEMU's -snapshot): a writable disk gets a
   * temporary qcow2 overlay, deleted at once (the open file lives on until exit), so the
   * guest's writes never reach the image. `deferLock`: see DiskImageOptions.
   */
  static open(spec: DriveSpec, options: { snapshot?: boolean; deferLock?: boolean } = {}): Drive {
    try {
      if (options.snapshot && !spec.readonly) {
        const base = openDiskImage(spec.path, {
          readonly: true,
          ...(spec.format ? { format: spec.format } : {}),
          deferLock: options.deferLock ?? false,
        });
        const tmp = join(
          tmpdir(),
          `visor-snapshot-${process.pid}-${Math.random().toString(36).slice(2)}.qcow2`,
        );
        try {
          createQcow2Overlay(tmp, {
            backingName: resolve(spec.path),
            backingFormat: base.format,
            size: base.size,
          });
        } catch (e) {
          base.close();
          throw e;
        }
        try {
          return new Drive(spec, openOverlayOver(tmp, base), true);
        } catch (e) {
          base.close();
          throw e;
        } finally {
          unlinkSync(tmp);
        }
      }
      const img = openDiskImage(spec.path, {
        readonly: spec.readonly,
        shareRw: spec.shareRw,
        ...(spec.format ? { format: spec.format } : {}),
        deferLock: options.deferLock ?? false,
      });
      return new Drive(spec, img, false);
    } catch (e) {
      // "PATH is in use by another process (locked)" names the file already.
      if (e instanceof ImageLockedError) throw new UserError(e.message);
      const msg = (e as Error).message;
      throw new UserError(msg.startsWith(spec.path) ? `--disk ${msg}` : `--disk ${spec.path}: ${msg}`);
    }
  }

  /** The image the guest writes to now (the newest overlay after a switch). */
  get image(): DiskImage {
    return this.top;
  }

  get size(): number {
    return this.top.size;
  }

  get readonly(): boolean {
    return this.spec.readonly;
  }

  read(offset: number, dst: Uint8Array): void {
    this.top.read(offset, dst);
  }

  write(offset: number, src: Uint8Array): void {
    this.top.write(offset, src);
  }

  flush(): void {
    this.top.flush();
  }

  lock(): void {
    this.top.lock();
  }

  close(): void {
    this.top.close();
  }

  /**
   * The overlay switch (QEMU's external snapshot, blockdev-snapshot-sync): create a qcow2
   * overlay at `overlayPath` whose backing file is the current image, make the guest's
   * writes go to it from the next request on, and freeze the current image (flushed,
   * read-only, read lock only). The frozen image is then a consistent copy of the disk at
   * this moment, which may be copied while the VM runs. Throws, with the drive unchanged,
   * if anything fails.
   */
  switchToOverlay(overlayPath: string): void {
    if (this.spec.readonly) throw new Error("the disk is read-only: its image can be copied as it is");
    if (this.temporary)
      throw new Error("the disk is a --snapshot disk: its writes are discarded at exit anyway");
    const path = resolve(overlayPath);
    const current = this.top;
    current.flush();
    createQcow2Overlay(path, {
      backingName: resolve(current.path),
      backingFormat: current.format,
      size: current.size,
    });
    let next: DiskImage & { closeOwn(): void };
    try {
      next = openOverlayOver(path, current);
    } catch (e) {
      unlinkSync(path);
      throw e;
    }
    try {
      current.freeze();
    } catch (e) {
      next.closeOwn();
      unlinkSync(path);
      throw e;
    }
    this.top = next;
  }
}
