/**
 * A consistent backup of a running VM's disk: the overlay switch (QEMU's external
 * snapshot). `snapshotDrive` puts a new qcow2 overlay over disk `index`'s current image;
 * the guest writes into the overlay from its next request, and the image below is frozen
 * (flushed, read-only, read lock) so it can be copied while the VM runs. The control
 * socket's `PUT /drives/{drive_id}/snapshot {"overlay_path": ...}` calls it.
 *
 * After the copy, the chain is base <- overlay; `qemu-img commit OVERLAY` (with the VM
 * stopped) folds the overlay back into the base.
 */
import type { Drive } from "./drives.ts";

/** Switch disk `index` (0-based, in --disk order) of `drives` to a new overlay at `overlayPath`. */
export async function snapshotDrive(
  drives: readonly Drive[],
  index: number,
  overlayPath: string,
): Promise<void> {
  const drive = drives[index];
  if (!Number.isInteger(index) || drive === undefined) {
    throw new Error(`no disk ${index} (the VM has ${drives.length} disk${drives.length === 1 ? "" : "s"})`);
  }
  if (typeof overlayPath !== "string" || overlayPath === "")
    throw new Error("overlay_path must be a file path");
  // Synchronous: it runs between two guest requests (requests are served inside a notify).
  drive.switchToOverlay(overlayPath);
}

/** `snapshotDrive` bound to one VM's drives: the `(index, overlayPath)` form the control socket takes. */
export function driveSnapshotter(
  drives: readonly Drive[],
): (index: number, overlayPath: string) => Promise<void> {
  return (index, overlayPath) => snapshotDrive(drives, index, overlayPath);
}
