/*
 * Visor warm-up guest: entry, RISC-V Linux Image header, trap entry and the U-mode
 * trampoline. The workload is warmup.c; see README.md in this directory.
 */
#include "linux-image.h"

	.section .text.head, "ax"
	.globl _start
_start:
	LINUX_IMAGE_HEADER _start, entry, _end

	.text
entry:
	la	sp, kstack_top
	la	t0, trap_entry
	csrw	stvec, t0
	la	t0, tstack_top
	csrw	sscratch, t0
	call	kmain
1:	j	1b

/* Every trap: save the registers on the trap stack (sscratch), call trap_c(frame). */
	.balign 4
trap_entry:
	csrrw	sp, sscratch, sp
	addi	sp, sp, -256
	sd	x1, 8(sp)
	sd	x3, 24(sp)
	sd	x4, 32(sp)
	sd	x5, 40(sp)
	sd	x6, 48(sp)
	sd	x7, 56(sp)
	sd	x8, 64(sp)
	sd	x9, 72(sp)
	sd	x10, 80(sp)
	sd	x11, 88(sp)
	sd	x12, 96(sp)
	sd	x13, 104(sp)
	sd	x14, 112(sp)
	sd	x15, 120(sp)
	sd	x16, 128(sp)
	sd	x17, 136(sp)
	sd	x18, 144(sp)
	sd	x19, 152(sp)
	sd	x20, 160(sp)
	sd	x21, 168(sp)
	sd	x22, 176(sp)
	sd	x23, 184(sp)
	sd	x24, 192(sp)
	sd	x25, 200(sp)
	sd	x26, 208(sp)
	sd	x27, 216(sp)
	sd	x28, 224(sp)
	sd	x29, 232(sp)
	sd	x30, 240(sp)
	sd	x31, 248(sp)
	csrr	t0, scause
	li	t1, 8			/* ecall from U-mode: the user function is done */
	beq	t0, t1, user_done
	mv	a0, sp
	call	trap_c
	ld	x1, 8(sp)
	ld	x3, 24(sp)
	ld	x4, 32(sp)
	ld	x5, 40(sp)
	ld	x6, 48(sp)
	ld	x7, 56(sp)
	ld	x8, 64(sp)
	ld	x9, 72(sp)
	ld	x10, 80(sp)
	ld	x11, 88(sp)
	ld	x12, 96(sp)
	ld	x13, 104(sp)
	ld	x14, 112(sp)
	ld	x15, 120(sp)
	ld	x16, 128(sp)
	ld	x17, 136(sp)
	ld	x18, 144(sp)
	ld	x19, 152(sp)
	ld	x20, 160(sp)
	ld	x21, 168(sp)
	ld	x22, 176(sp)
	ld	x23, 184(sp)
	ld	x24, 192(sp)
	ld	x25, 200(sp)
	ld	x26, 208(sp)
	ld	x27, 216(sp)
	ld	x28, 224(sp)
	ld	x29, 232(sp)
	ld	x30, 240(sp)
	ld	x31, 248(sp)
	addi	sp, sp, 256
	csrrw	sp, sscratch, sp
	sret

/*
 * run_user(fn, user_sp): run fn in U-mode on user_sp; returns when it executes ecall.
 * The S-mode callee-saved state waits in kctx.
 */
	.globl run_user
run_user:
	la	t0, kctx
	sd	ra, 0(t0)
	sd	sp, 8(t0)
	sd	s0, 16(t0)
	sd	s1, 24(t0)
	sd	s2, 32(t0)
	sd	s3, 40(t0)
	sd	s4, 48(t0)
	sd	s5, 56(t0)
	sd	s6, 64(t0)
	sd	s7, 72(t0)
	sd	s8, 80(t0)
	sd	s9, 88(t0)
	sd	s10, 96(t0)
	sd	s11, 104(t0)
	csrw	sepc, a0
	li	t0, 0x100		/* sstatus.SPP = 0: sret goes to U-mode */
	csrc	sstatus, t0
	mv	sp, a1
	sret

user_done:
	la	t0, tstack_top
	csrw	sscratch, t0
	la	t0, kctx
	ld	ra, 0(t0)
	ld	sp, 8(t0)
	ld	s0, 16(t0)
	ld	s1, 24(t0)
	ld	s2, 32(t0)
	ld	s3, 40(t0)
	ld	s4, 48(t0)
	ld	s5, 56(t0)
	ld	s6, 64(t0)
	ld	s7, 72(t0)
	ld	s8, 80(t0)
	ld	s9, 88(t0)
	ld	s10, 96(t0)
	ld	s11, 104(t0)
	ret

/* user_exit: the last thing a U-mode function does. */
	.globl user_exit
user_exit:
	ecall
1:	j	1b

	.bss
	.balign 16
kctx:	.space 112
	.balign 16
	.space 16384
kstack_top:
	.space 8192
tstack_top:
