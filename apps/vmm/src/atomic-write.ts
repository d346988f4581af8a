/**
 * Replace a file so that a crash at any moment leaves either the old file or the whole new
 * one: write a temporary file in the same directory, fsync it, rename it over the target,
 * and fsync the directory (so the rename itself is on disk).
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** The file system calls used, replaceable in tests (to simulate a failing write). */
export interface AtomicWriteFs {
  writeSync(fd: number, data: Uint8Array, offset: number, length: number): number;
}

const nodeFs: AtomicWriteFs = {
  writeSync: (fd, data, offset, length) => writeSync(fd, data, offset, length),
};

export function writeFileAtomic(path: string, data: Uint8Array, fs: AtomicWriteFs = nodeFs): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}`);
  // "wx": never follow or reuse something already at the temporary name; owner-only.
  const fd = openSync(tmp, "wx", 0o600);
  try {
    try {
      let done = 0;
      while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // already renamed or never created
    }
    throw e;
  }
  syncDirectory(dir);
}

/** fsync a directory, where the platform can (Windows cannot open one). */
function syncDirectory(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, "r");
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // some file systems refuse fsync on a directory; the rename stands
  } finally {
    closeSync(fd);
  }
}
