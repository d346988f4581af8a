/**
 * Where the bundled riscv64 guest (the kernel and initramfs `visor run` boots by default)
 * lies. In the repository it is guests/riscv64, three levels above this module (src/);
 * the build (tsup.config.ts) copies those two files into dist/guests/riscv64, so an
 * installed package, which has only dist/, finds them beside its code.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const BESIDE = join(here, "guests/riscv64");
const IN_REPOSITORY = resolve(here, "../../../guests/riscv64");

/** The directory with Image.gz and initramfs.cpio.gz (the repository's when neither has them). */
export const BUNDLED_GUEST_DIR = existsSync(join(BESIDE, "Image.gz")) ? BESIDE : IN_REPOSITORY;
export const BUNDLED_KERNEL = join(BUNDLED_GUEST_DIR, "Image.gz");
export const BUNDLED_INITRD = join(BUNDLED_GUEST_DIR, "initramfs.cpio.gz");
