/**
 * A minimal writer for the cpio "newc" format (magic 070701), the format of a Linux
 * initramfs (Linux Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte
 * ASCII header of 13 eight-digit hex fields, the NUL-terminated name, padding to 4 bytes,
 * the data, padding to 4 bytes; the archive ends with an entry named "TRAILER!!!".
 *
 * The kernel unpacks several archives placed one after another, which is how the bench
 * adds its guest programs to the bundled initramfs without rebuilding it.
 */

export interface CpioEntry {
  /** Path inside the archive, without a leading slash. */
  name: string;
  /** Full st_mode: type bits and permissions (0o040755 directory, 0o100755 executable). */
  mode: number;
  data?: Uint8Array;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cpio: field value ${n} out of range`);
  return n.toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Build a newc archive (uid/gid 0, mtime 0, one link each) from `entries`, in order. */
export function cpioNewc(entries: readonly CpioEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  let ino = 1;
  const add = (name: string, mode: number, data: Uint8Array): void => {
    if (name.startsWith("/") || name.length === 0) throw new Error(`cpio: bad entry name '${name}'`);
    const type = mode & S_IFMT;
    if (name !== "TRAILER!!!" && type !== S_IFDIR && type !== S_IFREG)
      throw new Error(`cpio: '${name}': only directories and regular files are supported`);
    const nameBytes = enc.encode(`${name}\0`);
    const fields = [
      ino++,
      mode,
      0, // uid
      0, // gid
      type === S_IFDIR ? 2 : 1, // nlink
      0, // mtime
      data.length,
      0, // devmajor
      0, // devminor
      0, // rdevmajor
      0, // rdevminor
      nameBytes.length,
      0, // check
    ];
    const header = enc.encode(`070701${fields.map(hex8).join("")}`);
    parts.push(header, nameBytes, new Uint8Array(pad4(header.length + nameBytes.length)));
    parts.push(data, new Uint8Array(pad4(data.length)));
  };
  for (const e of entries) add(e.name, e.mode, e.data ?? new Uint8Array(0));
  add("TRAILER!!!", 0, new Uint8Array(0));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
