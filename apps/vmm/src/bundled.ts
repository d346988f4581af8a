/**
 * Where the bundled guests lie: riscv64 (the kernel and initramfs `visor run` boots by
 * default) and x86_64 (what `visor run --accel kvm` boots). In the repository they are
 * guests/ARCH, three levels above this module (src/); the build (tsup.config.ts) copies
 * them into dist/guests/ARCH, so an installed package, which has only dist/, finds them
 * beside its code.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** The directory of guest ARCH: beside the built code if the build put it there, else the repository's. */
function guestDir(arch: string, marker: string): string {
  const beside = join(here, "guests", arch);
  return existsSync(join(beside, marker)) ? beside : resolve(here, "../../../guests", arch);
}

/** The directory with Image.gz and initramfs.cpio.gz. */
export const BUNDLED_GUEST_DIR = guestDir("riscv64", "Image.gz");
/** The directory with the x86-64 guest's bzImage and initramfs.cpio.gz. */
export const X86_GUEST_DIR = guestDir("x86_64", "bzImage");
export const BUNDLED_KERNEL = join(BUNDLED_GUEST_DIR, "Image.gz");
export const BUNDLED_INITRD = join(BUNDLED_GUEST_DIR, "initramfs.cpio.gz");
