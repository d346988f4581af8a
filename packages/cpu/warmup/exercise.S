/*
 * exercise(scratch): every RV64GC instruction the interpreter has a case for, each with
 * operands that take every branch inside that case (shift amounts below and above 32,
 * equal and different high words, zero divisors, overflow, page-crossing and misaligned
 * accesses, page faults and MMIO on each load and store). Called from start.S in M-mode
 * (the cpu package's warm-up) and from the hypervisor's warm-up guest (warmup.c) in S-mode
 * and in U-mode: exercise(scratch, fault, mmio) with scratch a page-aligned 16 KiB buffer,
 * fault an unmapped address (0: skip) and mmio a device register (0: skip).
 */
	.text
	.globl exercise
	.option push
	.option norvc
exercise:
	addi	sp, sp, -112
	sd	ra, 0(sp)
	sd	s0, 8(sp)
	sd	s1, 16(sp)
	sd	s2, 24(sp)
	sd	s3, 32(sp)
	sd	s4, 40(sp)
	sd	s5, 48(sp)
	sd	s6, 56(sp)
	sd	s7, 64(sp)
	sd	s8, 72(sp)
	sd	s9, 80(sp)
	sd	s10, 88(sp)
	sd	s11, 96(sp)
	mv	s11, a0
	sd	a1, 104(sp)
	mv	t0, a2
	addi	sp, sp, -16
	sd	t0, 0(sp)

	/* Operand pairs: (s0,s1) small, (s2,s3) negative and a shift >= 32, (s4,s5) wide and -1,
	 * (s6,s7) equal high words, (s8,zero) a zero divisor, (s9,s10) INT_MIN and -1. */
	li	s0, 5
	li	s1, 3
	li	s2, -7
	li	s3, 40
	li	s4, 0x123456789abcdef0
	li	s5, -1
	li	s6, 0x100000000
	li	s7, 0x1ffffffff
	li	s8, 77
	li	s9, 0x8000000000000000
	li	s10, -1
	li	a6, 0x7fffffff		/* (a6,a7): the low words overflow int32 */
	li	a7, 0xffffffff80000000

.macro X_R3 op
	\op	t0, s0, s1
	\op	t1, s2, s3
	\op	t2, s4, s5
	\op	t3, s6, s7
	\op	t4, s8, zero
	\op	t5, s9, s10
	\op	t6, s5, s4
	\op	a1, s7, s6
	\op	a2, s1, s0
	\op	a3, s3, s2
	\op	a4, a6, a7
	\op	a4, a7, a6
	\op	a4, a6, a6
.endm
.macro X_I op
	\op	t0, s0, 3
	\op	t1, s2, -5
	\op	t2, s4, 2047
	\op	t3, s6, -2048
	\op	t4, s9, 1
	\op	t5, s5, 0
	\op	t6, a6, 2047
	\op	t6, a7, -1
.endm
.macro X_SH op
	\op	t0, s0, 3
	\op	t1, s2, 31
	\op	t2, s4, 32
	\op	t3, s6, 63
	\op	t4, s9, 0
	\op	t5, s5, 40
.endm
.macro X_SHW op
	\op	t0, s0, 3
	\op	t1, s2, 31
	\op	t2, s4, 0
	\op	t3, s7, 16
.endm

	li	a5, 3
1:
	X_R3	add
	X_R3	sub
	X_R3	sll
	X_R3	slt
	X_R3	sltu
	X_R3	xor
	X_R3	srl
	X_R3	sra
	X_R3	or
	X_R3	and
	X_R3	mul
	X_R3	mulh
	X_R3	mulhsu
	X_R3	mulhu
	X_R3	div
	X_R3	divu
	X_R3	rem
	X_R3	remu
	X_R3	addw
	X_R3	subw
	X_R3	sllw
	X_R3	srlw
	X_R3	sraw
	X_R3	mulw
	X_R3	divw
	X_R3	divuw
	X_R3	remw
	X_R3	remuw
	X_I	addi
	X_I	slti
	X_I	sltiu
	X_I	xori
	X_I	ori
	X_I	andi
	X_I	addiw
	X_SH	slli
	X_SH	srli
	X_SH	srai
	X_SHW	slliw
	X_SHW	srliw
	X_SHW	sraiw
	lui	t0, 0x80000
	lui	t1, 0x7ffff
	auipc	t2, 0
	auipc	t3, 0xfffff

	/* Branches, taken and not, with equal and different high words. */
.macro X_BR op
	\op	s0, s1, 2f
2:	\op	s1, s0, 2f
2:	\op	s2, s3, 2f
2:	\op	s3, s2, 2f
2:	\op	s6, s7, 2f
2:	\op	s7, s6, 2f
2:	\op	s0, s0, 2f
2:	\op	s5, s4, 2f
2:	\op	s9, zero, 2f
2:
.endm
	X_BR	beq
	X_BR	bne
	X_BR	blt
	X_BR	bge
	X_BR	bltu
	X_BR	bgeu
/* Each kind taken backward too (a loop's back edge): the interpreter counts those for the
 * translator, a path the forward branches above never take. */
.macro X_BRB op, a, b
	j	3f
2:	j	4f
3:	\op	\a, \b, 2b
4:
.endm
	X_BRB	beq, s0, s0
	X_BRB	bne, s0, s1
	X_BRB	blt, s1, s0
	X_BRB	bge, s0, s1
	X_BRB	bltu, s1, s0
	X_BRB	bgeu, s0, s1
	X_BRB	blt, s2, s0
	X_BRB	bltu, s0, s2
	jal	t0, 2f
2:	la	t1, 2f
	jalr	t0, 0(t1)
2:	la	t1, 2f + 1		/* jalr clears bit 0 */
	jalr	t0, -1(t1)
2:
	/* A 32-bit instruction across a page boundary (its second half fetched through the
	 * next page's translation, never cached): 4092 bytes of padding jumped over, a
	 * compressed nop at the page's last word, then an addi at its last two bytes. */
	j	7f
	.balign	4096
	.skip	4092
7:	.option	push
	.option	rvc
	c.nop
	.option	pop
	addi	t0, t0, 1
	/* A byte load that misses the data TLB and succeeds (this page was only ever fetched). */
	la	t1, 7b
	lbu	t2, 0(t1)
	/* Loads and stores of every width: aligned, misaligned, and across a page. */
	li	t0, 4096
	add	a4, s11, t0		/* a4: a page boundary inside the buffer */
.macro X_LS off
	sb	s4, \off(a4)
	sh	s4, \off(a4)
	sw	s4, \off(a4)
	sd	s4, \off(a4)
	lb	t0, \off(a4)
	lbu	t1, \off(a4)
	lh	t2, \off(a4)
	lhu	t3, \off(a4)
	lw	t4, \off(a4)
	lwu	t5, \off(a4)
	ld	t6, \off(a4)
	sd	s5, \off(a4)
	lb	t0, \off(a4)
	lh	t2, \off(a4)
	lw	t4, \off(a4)
.endm
	X_LS	0
	X_LS	8
	X_LS	-1
	X_LS	-3
	X_LS	-7
	X_LS	5
	X_LS	-2048
	X_LS	2040

	/* Atomics, word and doubleword, and LR/SC that succeed and that fail. */
	addi	a4, s11, 64
	sd	s0, 0(a4)
.macro X_AMO op
	\op\().w	t0, s1, (a4)
	\op\().d	t1, s2, (a4)
	\op\().w.aqrl	t2, s5, (a4)
	\op\().d.aq	t3, s9, (a4)
.endm
	X_AMO	amoswap
	X_AMO	amoadd
	X_AMO	amoxor
	X_AMO	amoand
	X_AMO	amoor
	X_AMO	amomin
	X_AMO	amomax
	X_AMO	amominu
	X_AMO	amomaxu
	lr.w	t0, (a4)
	sc.w	t1, s0, (a4)
	lr.d	t0, (a4)
	sc.d	t1, s1, (a4)
	sc.d	t1, s1, (a4)		/* no reservation: fails */
	lr.d.aq	t0, (a4)
	sd	s2, 8(a4)		/* a store elsewhere */
	sc.d.rl	t1, s3, (a4)

	/* Floating point. */
	addi	a4, s11, 256
	sd	s4, 0(a4)
	sd	s5, 8(a4)
	li	t0, 0x400921fb54442d18	/* pi */
	sd	t0, 16(a4)
	li	t0, 0x40490fdb		/* pi as a single */
	sw	t0, 24(a4)
	fld	fs0, 16(a4)
	fld	fs1, 0(a4)
	flw	fs2, 24(a4)
	fcvt.d.l fs3, s2
	fcvt.s.l fs4, s1
	fmv.d.x	fs5, zero
	fmv.w.x	fs6, s5			/* a NaN single */
	fmv.d.x	fs7, s5			/* a NaN double */
.macro X_FD3 op
	\op	ft0, fs0, fs3
	\op	ft1, fs3, fs5
	\op	ft2, fs0, fs7
	\op	ft3, fs5, fs5
.endm
.macro X_FS3 op
	\op	ft0, fs2, fs4
	\op	ft1, fs4, fs5
	\op	ft2, fs2, fs6
	\op	ft3, fs2, fs0
.endm
	X_FD3	fadd.d
	X_FD3	fsub.d
	X_FD3	fmul.d
	X_FD3	fdiv.d
	X_FD3	fmin.d
	X_FD3	fmax.d
	X_FD3	fsgnj.d
	X_FD3	fsgnjn.d
	X_FD3	fsgnjx.d
	X_FS3	fadd.s
	X_FS3	fsub.s
	X_FS3	fmul.s
	X_FS3	fdiv.s
	X_FS3	fmin.s
	X_FS3	fmax.s
	X_FS3	fsgnj.s
	X_FS3	fsgnjn.s
	X_FS3	fsgnjx.s
	fmadd.d	ft0, fs0, fs3, fs0
	fmsub.d	ft0, fs0, fs3, fs0
	fnmadd.d ft0, fs0, fs3, fs0
	fnmsub.d ft0, fs0, fs3, fs0
	fmadd.s	ft0, fs2, fs4, fs2
	fmsub.s	ft0, fs2, fs4, fs2
	fnmadd.s ft0, fs2, fs4, fs2
	fnmsub.s ft0, fs2, fs4, fs2
	fsqrt.d	ft0, fs0
	fsqrt.d	ft0, fs3
	fsqrt.s	ft0, fs2
	fsqrt.s	ft0, fs4
.macro X_FCMP op, a, b
	\op	t0, \a, \b
.endm
	X_FCMP	feq.d, fs0, fs3
	X_FCMP	flt.d, fs0, fs3
	X_FCMP	fle.d, fs3, fs0
	X_FCMP	feq.d, fs7, fs0
	X_FCMP	flt.d, fs7, fs0
	X_FCMP	feq.s, fs2, fs4
	X_FCMP	flt.s, fs2, fs4
	X_FCMP	fle.s, fs6, fs2
	fclass.d t0, fs0
	fclass.d t0, fs7
	fclass.s t0, fs2
	fclass.s t0, fs6
	fcvt.w.d t0, fs0
	fcvt.wu.d t0, fs3
	fcvt.l.d t0, fs0
	fcvt.lu.d t0, fs0
	fcvt.w.d t0, fs0, rtz
	fcvt.l.d t0, fs3, rup
	fcvt.w.s t0, fs2
	fcvt.wu.s t0, fs4
	fcvt.l.s t0, fs2, rdn
	fcvt.lu.s t0, fs2, rmm
	fcvt.d.w fs8, s2
	fcvt.d.wu fs8, s2
	fcvt.d.lu fs8, s4
	fcvt.s.w fs9, s2
	fcvt.s.wu fs9, s2
	fcvt.s.lu fs9, s4
	fcvt.s.d fs9, fs0
	fcvt.d.s fs8, fs2
	fmv.x.d	t0, fs0
	fmv.x.w	t0, fs2
	fsd	fs0, 32(a4)
	fsw	fs2, 40(a4)
	li	t0, 4093
	add	t0, s11, t0
	fsd	fs0, 0(t0)		/* misaligned and across a page */
	fld	ft0, 0(t0)
	frcsr	t0
	fscsr	t0

	/* Each load and store once more on an unmapped page (the trap handler skips it) and on
	 * a device register. */
	ld	a4, 16+104(sp)
	beqz	a4, 3f
	jal	t6, access_int
	jal	t6, access_rest
3:	ld	a4, 0(sp)
	beqz	a4, 3f
	jal	t6, access_int		/* MMIO exits decode integer loads and stores only */
3:
	addi	a5, a5, -1
	bnez	a5, 1b
	.option pop

	/* Compressed forms (the decoder expands each one differently). */
	.option push
	.option rvc
	addi	a4, s11, 512
	c.li	a0, 5
	c.addi	a0, -3
	c.addiw	a0, 7
	c.lui	a1, 0x12
	c.slli	a1, 3
	c.srli	a1, 1
	c.srai	a1, 2
	c.andi	a1, 15
	c.mv	a2, a1
	c.add	a2, a0
	c.sub	a2, a1
	c.xor	a2, a0
	c.or	a2, a1
	c.and	a2, a0
	c.subw	a2, a1
	c.addw	a2, a0
	mv	a3, a4
	c.sw	a0, 0(a3)
	c.sd	a1, 8(a3)
	c.lw	a0, 0(a3)
	c.ld	a1, 8(a3)
	c.fsd	fs0, 16(a3)
	c.fld	fs1, 16(a3)
	c.addi16sp sp, -32
	c.addi4spn a0, sp, 16
	c.sdsp	a1, 0(sp)
	c.swsp	a0, 8(sp)
	c.fsdsp	fs0, 16(sp)
	c.ldsp	a1, 0(sp)
	c.lwsp	a0, 8(sp)
	c.fldsp	fs1, 16(sp)
	c.addi16sp sp, 32
	c.beqz	a0, 2f
2:	c.bnez	a0, 2f
2:	c.j	2f
2:	la	a0, 2f
	c.jalr	a0
2:	la	a0, 2f
	c.jr	a0
2:	c.nop
	.option pop

	addi	sp, sp, 16
	ld	ra, 0(sp)
	ld	s0, 8(sp)
	ld	s1, 16(sp)
	ld	s2, 24(sp)
	ld	s3, 32(sp)
	ld	s4, 40(sp)
	ld	s5, 48(sp)
	ld	s6, 56(sp)
	ld	s7, 64(sp)
	ld	s8, 72(sp)
	ld	s9, 80(sp)
	ld	s10, 88(sp)
	ld	s11, 96(sp)
	addi	sp, sp, 112
	ret

/* Every integer load and store at a4; returns through t6. */
access_int:
	lb	t0, 0(a4)
	lbu	t0, 0(a4)
	lh	t0, 0(a4)
	lhu	t0, 0(a4)
	lw	t0, 0(a4)
	lwu	t0, 0(a4)
	ld	t0, 0(a4)
	sb	t0, 0(a4)
	sh	t0, 0(a4)
	sw	t0, 0(a4)
	sd	t0, 0(a4)
	jr	t6

/* FP loads and stores, AMOs and LR/SC at a4; returns through t6. */
access_rest:
	flw	ft0, 0(a4)
	fld	ft0, 0(a4)
	fsw	ft0, 0(a4)
	fsd	ft0, 0(a4)
	amoadd.w t0, t0, (a4)
	amoadd.d t0, t0, (a4)
	lr.d	t0, (a4)
	sc.d	t0, t0, (a4)
	jr	t6
