/**
 * CSR numbers, status bits and trap causes, named as in the RISC-V privileged spec
 * (v1.12, tables 2.2–2.6 and chapter 3; hypervisor extension chapter 8).
 */

// Unprivileged
export const CSR_FFLAGS = 0x001;
export const CSR_FRM = 0x002;
export const CSR_FCSR = 0x003;
export const CSR_CYCLE = 0xc00;
export const CSR_TIME = 0xc01;
export const CSR_INSTRET = 0xc02;

// Supervisor
export const CSR_SSTATUS = 0x100;
export const CSR_SIE = 0x104;
export const CSR_STVEC = 0x105;
export const CSR_SCOUNTEREN = 0x106;
export const CSR_SENVCFG = 0x10a;
export const CSR_SSCRATCH = 0x140;
export const CSR_SEPC = 0x141;
export const CSR_SCAUSE = 0x142;
export const CSR_STVAL = 0x143;
export const CSR_SIP = 0x144;
export const CSR_STIMECMP = 0x14d;
export const CSR_SATP = 0x180;

// Hypervisor and virtual supervisor
export const CSR_HSTATUS = 0x600;
export const CSR_HEDELEG = 0x602;
export const CSR_HIDELEG = 0x603;
export const CSR_HIE = 0x604;
export const CSR_HTIMEDELTA = 0x605;
export const CSR_HCOUNTEREN = 0x606;
export const CSR_HGEIE = 0x607;
export const CSR_HENVCFG = 0x60a;
export const CSR_HTVAL = 0x643;
export const CSR_HIP = 0x644;
export const CSR_HVIP = 0x645;
export const CSR_HTINST = 0x64a;
export const CSR_HGATP = 0x680;
export const CSR_HGEIP = 0xe12;
export const CSR_VSSTATUS = 0x200;
export const CSR_VSIE = 0x204;
export const CSR_VSTVEC = 0x205;
export const CSR_VSSCRATCH = 0x240;
export const CSR_VSEPC = 0x241;
export const CSR_VSCAUSE = 0x242;
export const CSR_VSTVAL = 0x243;
export const CSR_VSIP = 0x244;
export const CSR_VSATP = 0x280;

// Machine
export const CSR_MVENDORID = 0xf11;
export const CSR_MARCHID = 0xf12;
export const CSR_MIMPID = 0xf13;
export const CSR_MHARTID = 0xf14;
export const CSR_MCONFIGPTR = 0xf15;
export const CSR_MSTATUS = 0x300;
export const CSR_MISA = 0x301;
export const CSR_MEDELEG = 0x302;
export const CSR_MIDELEG = 0x303;
export const CSR_MIE = 0x304;
export const CSR_MTVEC = 0x305;
export const CSR_MCOUNTEREN = 0x306;
export const CSR_MENVCFG = 0x30a;
export const CSR_MCOUNTINHIBIT = 0x320;
export const CSR_MSCRATCH = 0x340;
export const CSR_MEPC = 0x341;
export const CSR_MCAUSE = 0x342;
export const CSR_MTVAL = 0x343;
export const CSR_MIP = 0x344;
export const CSR_MTINST = 0x34a;
export const CSR_MTVAL2 = 0x34b;
export const CSR_PMPCFG0 = 0x3a0;
export const CSR_PMPADDR0 = 0x3b0;
export const CSR_MCYCLE = 0xb00;
export const CSR_MINSTRET = 0xb02;
export const CSR_TSELECT = 0x7a0;
export const CSR_TDATA1 = 0x7a1;

// mstatus / sstatus bits (low word)
export const MSTATUS_SIE = 1 << 1;
export const MSTATUS_MIE = 1 << 3;
export const MSTATUS_SPIE = 1 << 5;
export const MSTATUS_UBE = 1 << 6;
export const MSTATUS_MPIE = 1 << 7;
export const MSTATUS_SPP = 1 << 8;
export const MSTATUS_VS = 3 << 9;
export const MSTATUS_MPP_SHIFT = 11;
export const MSTATUS_MPP = 3 << 11;
export const MSTATUS_FS_SHIFT = 13;
export const MSTATUS_FS = 3 << 13;
export const MSTATUS_XS = 3 << 15;
export const MSTATUS_MPRV = 1 << 17;
export const MSTATUS_SUM = 1 << 18;
export const MSTATUS_MXR = 1 << 19;
export const MSTATUS_TVM = 1 << 20;
export const MSTATUS_TW = 1 << 21;
export const MSTATUS_TSR = 1 << 22;
// mstatus high word (bit n of the high word is mstatus bit 32+n)
export const MSTATUSH_UXL = 3 << 0; // UXL = 2 (64-bit), read-only
export const MSTATUSH_SXL = 3 << 2; // SXL = 2
export const MSTATUSH_GVA = 1 << 6;
export const MSTATUSH_MPV = 1 << 7;
export const MSTATUSH_SD = 1 << 31;

// hstatus bits (hypervisor extension, §8.2.1)
export const HSTATUS_VSBE = 1 << 5;
export const HSTATUS_GVA = 1 << 6;
export const HSTATUS_SPV = 1 << 7;
export const HSTATUS_SPVP = 1 << 8;
export const HSTATUS_HU = 1 << 9;
export const HSTATUS_VTVM = 1 << 20;
export const HSTATUS_VTW = 1 << 21;
export const HSTATUS_VTSR = 1 << 22;

// Interrupt bits (mip / mie)
export const IRQ_SSI = 1;
export const IRQ_VSSI = 2;
export const IRQ_MSI = 3;
export const IRQ_STI = 5;
export const IRQ_VSTI = 6;
export const IRQ_MTI = 7;
export const IRQ_SEI = 9;
export const IRQ_VSEI = 10;
export const IRQ_MEI = 11;
export const IRQ_SGEI = 12;
export const MIP_SSIP = 1 << IRQ_SSI;
export const MIP_VSSIP = 1 << IRQ_VSSI;
export const MIP_MSIP = 1 << IRQ_MSI;
export const MIP_STIP = 1 << IRQ_STI;
export const MIP_VSTIP = 1 << IRQ_VSTI;
export const MIP_MTIP = 1 << IRQ_MTI;
export const MIP_SEIP = 1 << IRQ_SEI;
export const MIP_VSEIP = 1 << IRQ_VSEI;
export const MIP_MEIP = 1 << IRQ_MEI;
export const MIP_SGEIP = 1 << IRQ_SGEI;

// Exception causes
export const CAUSE_MISALIGNED_FETCH = 0;
export const CAUSE_FETCH_ACCESS = 1;
export const CAUSE_ILLEGAL_INSTRUCTION = 2;
export const CAUSE_BREAKPOINT = 3;
export const CAUSE_MISALIGNED_LOAD = 4;
export const CAUSE_LOAD_ACCESS = 5;
export const CAUSE_MISALIGNED_STORE = 6;
export const CAUSE_STORE_ACCESS = 7;
export const CAUSE_USER_ECALL = 8;
export const CAUSE_SUPERVISOR_ECALL = 9;
export const CAUSE_VIRTUAL_SUPERVISOR_ECALL = 10;
export const CAUSE_MACHINE_ECALL = 11;
export const CAUSE_FETCH_PAGE_FAULT = 12;
export const CAUSE_LOAD_PAGE_FAULT = 13;
export const CAUSE_STORE_PAGE_FAULT = 15;
export const CAUSE_FETCH_GUEST_PAGE_FAULT = 20;
export const CAUSE_LOAD_GUEST_PAGE_FAULT = 21;
export const CAUSE_VIRTUAL_INSTRUCTION = 22;
export const CAUSE_STORE_GUEST_PAGE_FAULT = 23;

/** The interrupt bit of mcause/scause (bit 63: bit 31 of the high word). */
export const CAUSE_INTERRUPT_HI = 0x80000000 | 0;

export const PRV_U = 0;
export const PRV_S = 1;
export const PRV_M = 3;

/** Names of exception causes, for traces and errors. */
export const EXCEPTION_NAMES: Record<number, string> = {
  0: "instruction address misaligned",
  1: "instruction access fault",
  2: "illegal instruction",
  3: "breakpoint",
  4: "load address misaligned",
  5: "load access fault",
  6: "store address misaligned",
  7: "store access fault",
  8: "ecall from U-mode",
  9: "ecall from S-mode",
  10: "ecall from VS-mode",
  11: "ecall from M-mode",
  12: "instruction page fault",
  13: "load page fault",
  15: "store page fault",
  20: "instruction guest-page fault",
  21: "load guest-page fault",
  22: "virtual instruction",
  23: "store guest-page fault",
};

/** Interrupts in priority order (privileged spec §3.1.9; the VS ones after, §8.2). */
export const IRQ_PRIORITY: readonly number[] = [
  IRQ_MEI,
  IRQ_MSI,
  IRQ_MTI,
  IRQ_SEI,
  IRQ_SSI,
  IRQ_STI,
  IRQ_SGEI,
  IRQ_VSEI,
  IRQ_VSSI,
  IRQ_VSTI,
];

/** The highest-priority interrupt whose bit is set in `pending`, or -1. */
export function highestIrq(pending: number): number {
  for (const irq of IRQ_PRIORITY) if ((pending & (1 << irq)) !== 0) return irq;
  return -1;
}
