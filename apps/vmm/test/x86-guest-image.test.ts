/**
 * The bundled x86-64 guest (guests/x86_64) as committed: a bzImage a 64-bit loader can
 * place (boot-protocol header), an initramfs whose /init is the committed init.sh and
 * whose busybox is a static x86-64 binary, and, where QEMU is installed, a boot to the
 * `visor.run` command on QEMU's microvm machine (no ACPI: the CPUs come from the MP table,
 * the virtio-mmio disk from the command line).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";

const GUEST = join(import.meta.dirname, "../../../guests/x86_64");
const BZIMAGE = join(GUEST, "bzImage");
const INITRAMFS = join(GUEST, "initramfs.cpio.gz");

interface CpioEntry {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  data: Buffer;
}

/** Parse a newc ("070701") cpio archive up to its TRAILER!!! entry. */
function readNewc(buf: Buffer): CpioEntry[] {
  const entries: CpioEntry[] = [];
  let off = 0;
  const align4 = (n: number) => (n + 3) & ~3;
  for (;;) {
    if (off + 110 > buf.length) throw new Error(`cpio: truncated header at ${off}`);
    const magic = buf.toString("latin1", off, off + 6);
    if (magic !== "070701") throw new Error(`cpio: bad magic ${JSON.stringify(magic)} at ${off}`);
    // 13 fields of 8 hex digits after the magic: ino mode uid gid nlink mtime filesize
    // devmajor devminor rdevmajor rdevminor namesize check.
    const field = (i: number) =>
      Number.parseInt(buf.toString("latin1", off + 6 + 8 * i, off + 14 + 8 * i), 16);
    const mode = field(1);
    const uid = field(2);
    const gid = field(3);
    const mtime = field(5);
    const size = field(6);
    const nameSize = field(11);
    const name = buf.toString("latin1", off + 110, off + 110 + nameSize - 1);
    const dataStart = align4(off + 110 + nameSize);
    if (name === "TRAILER!!!") return entries;
    entries.push({ name, mode, uid, gid, mtime, data: buf.subarray(dataStart, dataStart + size) });
    off = align4(dataStart + size);
  }
}

const hasQemu = spawnSync("qemu-system-x86_64", ["--version"], { stdio: "ignore" }).status === 0;

describe("guests/x86_64", () => {
  it("bzImage is a relocatable boot-protocol image with a 64-bit entry point, Linux 6.1", () => {
    const img = readFileSync(BZIMAGE);
    // Linux boot protocol header (Documentation/x86/boot.rst): "HdrS" at 0x202.
    expect(img.toString("latin1", 0x202, 0x206)).toBe("HdrS");
    expect(img.readUInt16LE(0x206)).toBeGreaterThanOrEqual(0x020c); // xloadflags exist from 2.12
    expect(img.readUInt16LE(0x236) & 1).toBe(1); // XLF_KERNEL_64
    expect(img[0x234]).toBe(1); // relocatable_kernel
    const setupBytes = (img[0x1f1]! + 1) * 512;
    expect(img.length).toBeGreaterThan(setupBytes + 1_000_000); // a kernel, not a stub
    const versionAt = img.readUInt16LE(0x20e) + 0x200;
    expect(img.toString("latin1", versionAt, versionAt + 8)).toBe("6.1.192 ");
  });

  it("initramfs holds the committed init.sh as /init, a static x86-64 busybox and the empty directories, owned by root", () => {
    const entries = readNewc(gunzipSync(readFileSync(INITRAMFS)));
    const byName = new Map(entries.map((e) => [e.name, e]));
    const init = byName.get("init");
    expect(init, "/init").toBeDefined();
    expect(init!.data.equals(readFileSync(join(GUEST, "init.sh")))).toBe(true);
    expect(init!.mode & 0o777).toBe(0o755);

    const busybox = byName.get("bin/busybox")!.data;
    expect(busybox.toString("latin1", 0, 4)).toBe("\x7fELF");
    expect(busybox[4]).toBe(2); // ELFCLASS64
    expect(busybox.readUInt16LE(18)).toBe(62); // EM_X86_64
    const phoff = Number(busybox.readBigUInt64LE(32));
    const phentsize = busybox.readUInt16LE(54);
    const phnum = busybox.readUInt16LE(56);
    const types = Array.from({ length: phnum }, (_, i) => busybox.readUInt32LE(phoff + i * phentsize));
    expect(types).not.toContain(3); // PT_INTERP: a dynamic binary would need a loader the guest lacks

    for (const dir of ["dev", "etc", "mnt", "proc", "root", "sbin", "sys", "tmp", "usr/bin", "usr/sbin"]) {
      expect(byName.get(dir)?.mode, dir).toBe(0o040755);
    }
    for (const e of entries) {
      expect([e.uid, e.gid], e.name).toEqual([0, 0]);
      expect(e.mtime, e.name).toBe(entries[0]!.mtime); // one fixed time: a reproducible archive
    }
  });

  it.skipIf(!hasQemu)(
    "boots on qemu-system-x86_64 -M microvm (TCG) with 2 CPUs from the MP table and a virtio-mmio disk (skipped without qemu-system-x86)",
    () => {
      const r = spawnSync(
        "qemu-system-x86_64",
        [
          ...["-accel", "tcg", "-M", "microvm,x-option-roms=off,rtc=off,acpi=off"],
          ...["-m", "128M", "-smp", "2", "-nographic", "-no-reboot"],
          ...["-kernel", BZIMAGE, "-initrd", INITRAMFS],
          ...["-drive", `id=d,file=${INITRAMFS},format=raw,if=none,readonly=on`],
          ...["-device", "virtio-blk-device,drive=d"],
          ...["-append", "console=ttyS0 quiet reboot=t panic=-1 visor.run=uname+-m;nproc;ls+/dev/vda"],
        ],
        { encoding: "utf8", input: "", timeout: 110_000 },
      );
      expect(r.error, r.stderr).toBeUndefined();
      expect(r.stdout).toContain("visor guest: Linux 6.1.192 up");
      expect(r.stdout).toMatch(/^x86_64\r?\n2\r?\n\/dev\/vda\r?$/m);
      expect(r.status, r.stderr).toBe(0);
    },
  );
});
