/*
 * The cpu package's warm-up program (see README.md): M-mode, no paging, loaded at
 * 0x80000000 by ../src/jit/warm.ts. exercise() runs every instruction class of the
 * interpreter, then a loop that a translating hart compiles and enters, then ebreak.
 */
	.text
	.globl _start
_start:
	li	t0, 0x6000		/* mstatus.FS: the FPU on */
	csrs	mstatus, t0
	la	sp, stack_top
	la	a0, scratch
	li	a1, 0			/* no fault address: M-mode has no unmapped page */
	li	a2, 0			/* no MMIO */
	call	exercise
	li	t0, 12000		/* hot after WARM_HOT jumps (warm.ts), then long enough for its batch to compile (BATCH_WAIT) */
1:	addi	t0, t0, -1
	bnez	t0, 1b
	ebreak

	.bss
	.balign 4096
scratch:
	.space	16384
	.space	4096
stack_top:
