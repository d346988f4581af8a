/**
 * The registers a debugger sees, their GDB numbers and the target description
 * (target.xml) that names them.
 *
 * The numbering is GDB's for RISC-V (gdb/riscv-tdep.h): x0-x31 are 0-31, pc is 32,
 * f0-f31 are 33-64, a CSR is 65 + its CSR number (fflags 66, frm 67, fcsr 68, mstatus
 * 65 + 0x300), and the virtual `priv` register is 65 + 4096. The `g` packet carries
 * x0-x31 and pc; gdb reads everything else with `p`.
 */
import * as C from "../csr.ts";
import type { Hart } from "../hart.ts";

export const PC_REGNUM = 32;
export const FIRST_FP_REGNUM = 33;
export const FIRST_CSR_REGNUM = 65;
export const PRIV_REGNUM = FIRST_CSR_REGNUM + 4096;

const ABI_NAMES = [
  "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
  "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
]; // biome-ignore format: a table

/** The FP CSRs, always present with the FPU. */
const FP_CSRS: readonly [string, number][] = [
  ["fflags", C.CSR_FFLAGS],
  ["frm", C.CSR_FRM],
  ["fcsr", C.CSR_FCSR],
];

/** The machine and supervisor CSRs shown for a whole machine (`visor run`). */
const SYSTEM_CSRS: readonly [string, number][] = [
  ["sstatus", C.CSR_SSTATUS],
  ["sie", C.CSR_SIE],
  ["stvec", C.CSR_STVEC],
  ["sscratch", C.CSR_SSCRATCH],
  ["sepc", C.CSR_SEPC],
  ["scause", C.CSR_SCAUSE],
  ["stval", C.CSR_STVAL],
  ["sip", C.CSR_SIP],
  ["satp", C.CSR_SATP],
  ["mstatus", C.CSR_MSTATUS],
  ["misa", C.CSR_MISA],
  ["medeleg", C.CSR_MEDELEG],
  ["mideleg", C.CSR_MIDELEG],
  ["mie", C.CSR_MIE],
  ["mtvec", C.CSR_MTVEC],
  ["mscratch", C.CSR_MSCRATCH],
  ["mepc", C.CSR_MEPC],
  ["mcause", C.CSR_MCAUSE],
  ["mtval", C.CSR_MTVAL],
  ["mip", C.CSR_MIP],
  ["mhartid", C.CSR_MHARTID],
];

/** Which registers a stub offers: the CSRs and `priv` only for a whole machine. */
export interface RegisterSet {
  system: boolean;
}

/** The target description: RV64 integer, FP and (for a machine) CSR and virtual features. */
export function targetXml(set: RegisterSet): string {
  const lines = [
    '<?xml version="1.0"?>',
    '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
    "<target>",
    "<architecture>riscv:rv64</architecture>",
    '<feature name="org.gnu.gdb.riscv.cpu">',
  ];
  for (let i = 0; i < 32; i++) {
    const type = i === 1 ? "code_ptr" : i === 2 || i === 8 ? "data_ptr" : "int";
    lines.push(`<reg name="${ABI_NAMES[i]}" bitsize="64" type="${type}" regnum="${i}"/>`);
  }
  lines.push(`<reg name="pc" bitsize="64" type="code_ptr" regnum="${PC_REGNUM}"/>`, "</feature>");
  lines.push('<feature name="org.gnu.gdb.riscv.fpu">');
  for (let i = 0; i < 32; i++) {
    lines.push(`<reg name="f${i}" bitsize="64" type="ieee_double" regnum="${FIRST_FP_REGNUM + i}"/>`);
  }
  for (const [name, n] of FP_CSRS) {
    lines.push(
      `<reg name="${name}" bitsize="32" type="int" regnum="${FIRST_CSR_REGNUM + n}" group="float"/>`,
    );
  }
  lines.push("</feature>");
  if (set.system) {
    lines.push('<feature name="org.gnu.gdb.riscv.csr">');
    for (const [name, n] of SYSTEM_CSRS) {
      lines.push(
        `<reg name="${name}" bitsize="64" type="int" regnum="${FIRST_CSR_REGNUM + n}" group="system"/>`,
      );
    }
    lines.push("</feature>", '<feature name="org.gnu.gdb.riscv.virtual">');
    lines.push(`<reg name="priv" bitsize="64" type="int" regnum="${PRIV_REGNUM}" group="system"/>`);
    lines.push("</feature>");
  }
  lines.push("</target>");
  return `${lines.join("\n")}\n`;
}

/** The size in bytes of register `n`, or 0 when this set has no such register. */
export function registerSize(set: RegisterSet, n: number): number {
  if (n >= 0 && n < FIRST_CSR_REGNUM - 1) return 8;
  if (FP_CSRS.some(([, c]) => FIRST_CSR_REGNUM + c === n)) return 4;
  if (!set.system) return 0;
  if (n === PRIV_REGNUM || SYSTEM_CSRS.some(([, c]) => FIRST_CSR_REGNUM + c === n)) return 8;
  return 0;
}

/**
 * The CSR a debugger's supervisor CSR means: under V=1 (a guest kernel in VS-mode, `visor
 * run --virt nested`) the guest's own, the VS copy at 0x200-0x2ff, as the guest's `csrr`
 * would read it (RISC-V privileged spec, "Hypervisor and Virtual Supervisor CSRs").
 */
function csrFor(hart: Hart, csr: number): number {
  return hart.virt && csr >= 0x100 && csr <= 0x1ff ? csr + 0x100 : csr;
}

/** Read register `n` of `hart`; undefined when there is no such register. */
export function readRegister(set: RegisterSet, hart: Hart, n: number): bigint | undefined {
  if (registerSize(set, n) === 0) return undefined;
  if (n < PC_REGNUM) return hart.getX(n);
  if (n === PC_REGNUM) return hart.pc;
  if (n < FIRST_CSR_REGNUM) return hart.getF(n - FIRST_FP_REGNUM);
  if (n === PRIV_REGNUM) return BigInt(hart.priv);
  try {
    return hart.getCsr(csrFor(hart, n - FIRST_CSR_REGNUM));
  } catch {
    return undefined;
  }
}

/** Write register `n`; false when there is no such register or it cannot be written. */
export function writeRegister(set: RegisterSet, hart: Hart, n: number, v: bigint): boolean {
  if (registerSize(set, n) === 0) return false;
  if (n < PC_REGNUM) hart.setX(n, v);
  else if (n === PC_REGNUM) hart.pc = v;
  else if (n < FIRST_CSR_REGNUM) hart.setF(n - FIRST_FP_REGNUM, v);
  else if (n === PRIV_REGNUM) {
    if (v !== BigInt(C.PRV_U) && v !== BigInt(C.PRV_S) && v !== BigInt(C.PRV_M)) return false;
    hart.setPrivilege(Number(v));
  } else {
    try {
      hart.setCsr(csrFor(hart, n - FIRST_CSR_REGNUM), v);
    } catch {
      return false;
    }
  }
  return true;
}
