/*
 * The 64-byte RISC-V Linux Image header (Linux Documentation/riscv/boot-image-header.rst),
 * for the project's small guests that boot the way a Linux kernel does: put
 *
 *     _start:
 *       LINUX_IMAGE_HEADER _start, entry, _end
 *
 * first in the image. code0 jumps over the header to `entry`; code1 is 0; text_offset
 * 2 MiB; image_size covers everything up to `end` (.bss included); flags 0 (little-endian);
 * version 0.2; the deprecated magic "RISCV\0\0\0" and magic2 "RSC\x05"; no PE/COFF header.
 * Used by packages/hypervisor/warmup, packages/hypervisor/test/fixtures/hostile and
 * apps/bench/fixtures (the exits guest).
 */
.macro LINUX_IMAGE_HEADER start, entry, end
  .option push
  .option norvc
  j \entry                  /* code0 */
  .word 0                   /* code1 */
  .dword 0x200000           /* text_offset */
  .dword \end - \start      /* image_size */
  .dword 0                  /* flags: little-endian */
  .word 2                   /* version 0.2 */
  .word 0                   /* res1 */
  .dword 0                  /* res2 */
  .ascii "RISCV\0\0\0"      /* magic (deprecated) */
  .ascii "RSC\x05"          /* magic2 */
  .word 0                   /* res3: no PE/COFF header */
  .option pop
.endm
