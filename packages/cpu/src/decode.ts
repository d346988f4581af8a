/**
 * Instruction decoding: RV64IMAFDC + Zicsr + Zifencei (+ H-extension system instructions).
 *
 * Every instruction, 16- or 32-bit, decodes to one `op` id (the constants below) plus
 * register fields and one immediate, packed into two int32 words so a decoded page is a
 * flat Int32Array (decoded-instruction cache; see hart.ts):
 *
 *   w0 = op | C << 7 | rd << 8 | rs1 << 16 | rs2 << 24     (C = compressed, length 2)
 *   w1 = immediate (sign-extended), or the raw instruction for FP, CSR, AMO and ILLEGAL
 *
 * A destination of x0 decodes to register 32, a sink that is never read, so handlers need
 * no `rd !== 0` test. Compressed instructions decode directly to the ops of their 32-bit
 * equivalents (RISC-V unprivileged spec, chapter 16, tables 16.5–16.7).
 */

export const OP_ILLEGAL = 0;
export const OP_LUI = 1;
export const OP_AUIPC = 2;
export const OP_JAL = 3;
export const OP_JALR = 4;
export const OP_BEQ = 5;
export const OP_BNE = 6;
export const OP_BLT = 7;
export const OP_BGE = 8;
export const OP_BLTU = 9;
export const OP_BGEU = 10;
export const OP_LB = 11;
export const OP_LH = 12;
export const OP_LW = 13;
export const OP_LD = 14;
export const OP_LBU = 15;
export const OP_LHU = 16;
export const OP_LWU = 17;
export const OP_SB = 18;
export const OP_SH = 19;
export const OP_SW = 20;
export const OP_SD = 21;
export const OP_ADDI = 22;
export const OP_SLTI = 23;
export const OP_SLTIU = 24;
export const OP_XORI = 25;
export const OP_ORI = 26;
export const OP_ANDI = 27;
export const OP_SLLI = 28;
export const OP_SRLI = 29;
export const OP_SRAI = 30;
export const OP_ADD = 31;
export const OP_SUB = 32;
export const OP_SLL = 33;
export const OP_SLT = 34;
export const OP_SLTU = 35;
export const OP_XOR = 36;
export const OP_SRL = 37;
export const OP_SRA = 38;
export const OP_OR = 39;
export const OP_AND = 40;
export const OP_ADDIW = 41;
export const OP_SLLIW = 42;
export const OP_SRLIW = 43;
export const OP_SRAIW = 44;
export const OP_ADDW = 45;
export const OP_SUBW = 46;
export const OP_SLLW = 47;
export const OP_SRLW = 48;
export const OP_SRAW = 49;
export const OP_MUL = 50;
export const OP_MULH = 51;
export const OP_MULHSU = 52;
export const OP_MULHU = 53;
export const OP_DIV = 54;
export const OP_DIVU = 55;
export const OP_REM = 56;
export const OP_REMU = 57;
export const OP_MULW = 58;
export const OP_DIVW = 59;
export const OP_DIVUW = 60;
export const OP_REMW = 61;
export const OP_REMUW = 62;
export const OP_FENCE = 63;
export const OP_FENCE_I = 64;
export const OP_ECALL = 65;
export const OP_EBREAK = 66;
export const OP_MRET = 67;
export const OP_SRET = 68;
export const OP_WFI = 69;
export const OP_SFENCE_VMA = 70;
export const OP_CSR = 71; // w1 = raw instruction
export const OP_AMO_W = 72; // w1 = raw instruction (LR/SC/AMO*, 32-bit)
export const OP_AMO_D = 73;
export const OP_FLW = 74;
export const OP_FLD = 75;
export const OP_FSW = 76;
export const OP_FSD = 77;
export const OP_FP = 78; // w1 = raw instruction, executed by the Fpu
export const OP_HFENCE_VVMA = 79;
export const OP_HFENCE_GVMA = 80;
export const OP_HLSV = 81; // HLV/HLVX/HSV, w1 = raw instruction
export const OP_LI = 82; // addi rd, x0, imm
export const OP_MV = 83; // add rd, x0, rs2 / addi rd, rs, 0
export const OP_NOP = 84;
export const OP_COUNT = 85;

export const OP_NAMES: readonly string[] = [
  "illegal",
  "lui",
  "auipc",
  "jal",
  "jalr",
  "beq",
  "bne",
  "blt",
  "bge",
  "bltu",
  "bgeu",
  "lb",
  "lh",
  "lw",
  "ld",
  "lbu",
  "lhu",
  "lwu",
  "sb",
  "sh",
  "sw",
  "sd",
  "addi",
  "slti",
  "sltiu",
  "xori",
  "ori",
  "andi",
  "slli",
  "srli",
  "srai",
  "add",
  "sub",
  "sll",
  "slt",
  "sltu",
  "xor",
  "srl",
  "sra",
  "or",
  "and",
  "addiw",
  "slliw",
  "srliw",
  "sraiw",
  "addw",
  "subw",
  "sllw",
  "srlw",
  "sraw",
  "mul",
  "mulh",
  "mulhsu",
  "mulhu",
  "div",
  "divu",
  "rem",
  "remu",
  "mulw",
  "divw",
  "divuw",
  "remw",
  "remuw",
  "fence",
  "fence.i",
  "ecall",
  "ebreak",
  "mret",
  "sret",
  "wfi",
  "sfence.vma",
  "csr",
  "amo.w",
  "amo.d",
  "flw",
  "fld",
  "fsw",
  "fsd",
  "fp",
  "hfence.vvma",
  "hfence.gvma",
  "hlv/hsv",
  "li",
  "mv",
  "nop",
];

/** Register index used as the destination when an instruction names x0. */
export const X_SINK = 32;

/** Second word of the last decode (the immediate or raw instruction). */
export let decodedImm = 0;

function pack(op: number, rd: number, rs1: number, rs2: number, imm: number, compressed: boolean): number {
  decodedImm = imm | 0;
  return op | (compressed ? 0x80 : 0) | ((rd === 0 ? X_SINK : rd) << 8) | (rs1 << 16) | (rs2 << 24);
}

const ILLEGAL = (raw: number, c: boolean): number => pack(OP_ILLEGAL, 0, 0, 0, raw, c);

function immI(i: number): number {
  return i >> 20;
}
function immS(i: number): number {
  return ((i >> 25) << 5) | ((i >>> 7) & 0x1f);
}
function immB(i: number): number {
  return ((i >> 31) << 12) | (((i >>> 7) & 1) << 11) | (((i >>> 25) & 0x3f) << 5) | (((i >>> 8) & 0xf) << 1);
}
function immJ(i: number): number {
  return (
    ((i >> 31) << 20) | (((i >>> 12) & 0xff) << 12) | (((i >>> 20) & 1) << 11) | (((i >>> 21) & 0x3ff) << 1)
  );
}

/** Decode a 32-bit instruction. Returns w0; the immediate is left in `decodedImm`. */
export function decode32(i: number): number {
  const opcode = i & 0x7f;
  const rd = (i >>> 7) & 0x1f;
  const f3 = (i >>> 12) & 7;
  const rs1 = (i >>> 15) & 0x1f;
  const rs2 = (i >>> 20) & 0x1f;
  const f7 = i >>> 25;
  switch (opcode) {
    case 0x37:
      return pack(OP_LUI, rd, 0, 0, i & 0xfffff000, false);
    case 0x17:
      return pack(OP_AUIPC, rd, 0, 0, i & 0xfffff000, false);
    case 0x6f:
      return pack(OP_JAL, rd, 0, 0, immJ(i), false);
    case 0x67:
      return f3 === 0 ? pack(OP_JALR, rd, rs1, 0, immI(i), false) : ILLEGAL(i, false);
    case 0x63: {
      const ops = [OP_BEQ, OP_BNE, -1, -1, OP_BLT, OP_BGE, OP_BLTU, OP_BGEU];
      const op = ops[f3]!;
      return op < 0 ? ILLEGAL(i, false) : pack(op, 0, rs1, rs2, immB(i), false);
    }
    case 0x03: {
      const ops = [OP_LB, OP_LH, OP_LW, OP_LD, OP_LBU, OP_LHU, OP_LWU, -1];
      const op = ops[f3]!;
      return op < 0 ? ILLEGAL(i, false) : pack(op, rd, rs1, 0, immI(i), false);
    }
    case 0x23: {
      if (f3 > 3) return ILLEGAL(i, false);
      return pack(OP_SB + f3, 0, rs1, rs2, immS(i), false);
    }
    case 0x13: {
      const imm = immI(i);
      switch (f3) {
        case 0:
          if (rd === 0) return pack(OP_NOP, 0, 0, 0, 0, false);
          if (rs1 === 0) return pack(OP_LI, rd, 0, 0, imm, false);
          return pack(OP_ADDI, rd, rs1, 0, imm, false);
        case 2:
          return pack(OP_SLTI, rd, rs1, 0, imm, false);
        case 3:
          return pack(OP_SLTIU, rd, rs1, 0, imm, false);
        case 4:
          return pack(OP_XORI, rd, rs1, 0, imm, false);
        case 6:
          return pack(OP_ORI, rd, rs1, 0, imm, false);
        case 7:
          return pack(OP_ANDI, rd, rs1, 0, imm, false);
        case 1:
          return i >>> 26 === 0 ? pack(OP_SLLI, rd, rs1, 0, (i >>> 20) & 0x3f, false) : ILLEGAL(i, false);
        default: {
          const f6 = i >>> 26;
          if (f6 === 0) return pack(OP_SRLI, rd, rs1, 0, (i >>> 20) & 0x3f, false);
          if (f6 === 0x10) return pack(OP_SRAI, rd, rs1, 0, (i >>> 20) & 0x3f, false);
          return ILLEGAL(i, false);
        }
      }
    }
    case 0x1b: {
      if (f3 === 0) return pack(OP_ADDIW, rd, rs1, 0, immI(i), false);
      if (f3 === 1 && f7 === 0) return pack(OP_SLLIW, rd, rs1, 0, rs2, false);
      if (f3 === 5 && f7 === 0) return pack(OP_SRLIW, rd, rs1, 0, rs2, false);
      if (f3 === 5 && f7 === 0x20) return pack(OP_SRAIW, rd, rs1, 0, rs2, false);
      return ILLEGAL(i, false);
    }
    case 0x33: {
      let op = -1;
      if (f7 === 0) op = [OP_ADD, OP_SLL, OP_SLT, OP_SLTU, OP_XOR, OP_SRL, OP_OR, OP_AND][f3]!;
      else if (f7 === 0x20) op = f3 === 0 ? OP_SUB : f3 === 5 ? OP_SRA : -1;
      else if (f7 === 1) op = OP_MUL + f3;
      return op < 0 ? ILLEGAL(i, false) : pack(op, rd, rs1, rs2, 0, false);
    }
    case 0x3b: {
      let op = -1;
      if (f7 === 0) op = f3 === 0 ? OP_ADDW : f3 === 1 ? OP_SLLW : f3 === 5 ? OP_SRLW : -1;
      else if (f7 === 0x20) op = f3 === 0 ? OP_SUBW : f3 === 5 ? OP_SRAW : -1;
      else if (f7 === 1) op = [OP_MULW, -1, -1, -1, OP_DIVW, OP_DIVUW, OP_REMW, OP_REMUW][f3]!;
      return op < 0 ? ILLEGAL(i, false) : pack(op, rd, rs1, rs2, 0, false);
    }
    case 0x0f:
      if (f3 === 0) return pack(OP_FENCE, 0, 0, 0, 0, false);
      if (f3 === 1) return pack(OP_FENCE_I, 0, 0, 0, 0, false);
      return ILLEGAL(i, false);
    case 0x73: {
      if (f3 === 0) {
        if (i === 0x00000073) return pack(OP_ECALL, 0, 0, 0, i, false);
        if (i === 0x00100073) return pack(OP_EBREAK, 0, 0, 0, i, false);
        if (i === 0x30200073) return pack(OP_MRET, 0, 0, 0, i, false);
        if (i === 0x10200073) return pack(OP_SRET, 0, 0, 0, i, false);
        if (i === 0x10500073) return pack(OP_WFI, 0, 0, 0, i, false);
        if (rd === 0 && f7 === 0x09) return pack(OP_SFENCE_VMA, 0, rs1, rs2, i, false);
        if (rd === 0 && f7 === 0x11) return pack(OP_HFENCE_VVMA, 0, rs1, rs2, i, false);
        if (rd === 0 && f7 === 0x31) return pack(OP_HFENCE_GVMA, 0, rs1, rs2, i, false);
        return ILLEGAL(i, false);
      }
      if (f3 === 4) {
        if (f7 >= 0x30 && f7 <= 0x37) return pack(OP_HLSV, rd, rs1, rs2, i, false);
        return ILLEGAL(i, false);
      }
      return pack(OP_CSR, rd, rs1, 0, i, false);
    }
    case 0x2f:
      if (f3 === 2) return pack(OP_AMO_W, rd, rs1, rs2, i, false);
      if (f3 === 3) return pack(OP_AMO_D, rd, rs1, rs2, i, false);
      return ILLEGAL(i, false);
    case 0x07:
      // FP load: rd is an FP register; 0 is a real register here, not the sink.
      if (f3 === 2) return packF(OP_FLW, rd, rs1, 0, immI(i));
      if (f3 === 3) return packF(OP_FLD, rd, rs1, 0, immI(i));
      return ILLEGAL(i, false);
    case 0x27:
      if (f3 === 2) return packF(OP_FSW, 0, rs1, rs2, immS(i));
      if (f3 === 3) return packF(OP_FSD, 0, rs1, rs2, immS(i));
      return ILLEGAL(i, false);
    case 0x53:
    case 0x43:
    case 0x47:
    case 0x4b:
    case 0x4f:
      return packF(OP_FP, 0, 0, 0, i);
    default:
      return ILLEGAL(i, false);
  }
}

/** Pack without mapping rd 0 to the sink (FP destinations), for 32-bit or compressed. */
function packF(op: number, rd: number, rs1: number, rs2: number, imm: number, compressed = false): number {
  decodedImm = imm | 0;
  return op | (compressed ? 0x80 : 0) | (rd << 8) | (rs1 << 16) | (rs2 << 24);
}

const bit = (h: number, n: number): number => (h >>> n) & 1;
const bits = (h: number, hi: number, lo: number): number => (h >>> lo) & ((1 << (hi - lo + 1)) - 1);

/** Decode a 16-bit compressed instruction (RV64C). Returns w0; immediate in `decodedImm`. */
export function decode16(h: number): number {
  const q = h & 3;
  const f3 = (h >>> 13) & 7;
  const rdp = bits(h, 4, 2) + 8; // rd' / rs2'
  const rs1p = bits(h, 9, 7) + 8; // rs1' / rd'
  const rd = bits(h, 11, 7);
  const rs2 = bits(h, 6, 2);
  if (q === 0) {
    switch (f3) {
      case 0: {
        const imm = (bits(h, 12, 11) << 4) | (bits(h, 10, 7) << 6) | (bit(h, 6) << 2) | (bit(h, 5) << 3);
        if (imm === 0) return ILLEGAL(h, true);
        return pack(OP_ADDI, rdp, 2, 0, imm, true);
      }
      case 1:
        return packF(OP_FLD, rdp, rs1p, 0, (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6), true);
      case 2:
        return pack(OP_LW, rdp, rs1p, 0, (bits(h, 12, 10) << 3) | (bit(h, 6) << 2) | (bit(h, 5) << 6), true);
      case 3:
        return pack(OP_LD, rdp, rs1p, 0, (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6), true);
      case 5:
        return packF(OP_FSD, 0, rs1p, rdp, (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6), true);
      case 6:
        return pack(OP_SW, 0, rs1p, rdp, (bits(h, 12, 10) << 3) | (bit(h, 6) << 2) | (bit(h, 5) << 6), true);
      case 7:
        return pack(OP_SD, 0, rs1p, rdp, (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6), true);
      default:
        return ILLEGAL(h, true);
    }
  }
  if (q === 1) {
    const imm6 = ((bit(h, 12) << 31) >> 26) | rs2; // sign-extended imm[5:0]
    switch (f3) {
      case 0:
        if (rd === 0) return pack(OP_NOP, 0, 0, 0, 0, true);
        return pack(OP_ADDI, rd, rd, 0, imm6, true);
      case 1:
        if (rd === 0) return ILLEGAL(h, true);
        return pack(OP_ADDIW, rd, rd, 0, imm6, true);
      case 2:
        return rd === 0 ? pack(OP_NOP, 0, 0, 0, 0, true) : pack(OP_LI, rd, 0, 0, imm6, true);
      case 3: {
        if (rd === 2) {
          const imm =
            ((bit(h, 12) << 31) >> 22) |
            (bit(h, 6) << 4) |
            (bit(h, 5) << 6) |
            (bits(h, 4, 3) << 7) |
            (bit(h, 2) << 5);
          if (imm === 0) return ILLEGAL(h, true);
          return pack(OP_ADDI, 2, 2, 0, imm, true);
        }
        const imm = imm6 << 12;
        if (imm === 0) return ILLEGAL(h, true);
        return rd === 0 ? pack(OP_NOP, 0, 0, 0, 0, true) : pack(OP_LUI, rd, 0, 0, imm, true);
      }
      case 4: {
        const f2 = bits(h, 11, 10);
        const shamt = (bit(h, 12) << 5) | rs2;
        if (f2 === 0) return pack(OP_SRLI, rs1p, rs1p, 0, shamt, true);
        if (f2 === 1) return pack(OP_SRAI, rs1p, rs1p, 0, shamt, true);
        if (f2 === 2) return pack(OP_ANDI, rs1p, rs1p, 0, imm6, true);
        const f = bits(h, 6, 5);
        if (bit(h, 12) === 0) return pack([OP_SUB, OP_XOR, OP_OR, OP_AND][f]!, rs1p, rs1p, rdp, 0, true);
        if (f === 0) return pack(OP_SUBW, rs1p, rs1p, rdp, 0, true);
        if (f === 1) return pack(OP_ADDW, rs1p, rs1p, rdp, 0, true);
        return ILLEGAL(h, true);
      }
      case 5: {
        const imm =
          ((bit(h, 12) << 31) >> 20) |
          (bit(h, 11) << 4) |
          (bits(h, 10, 9) << 8) |
          (bit(h, 8) << 10) |
          (bit(h, 7) << 6) |
          (bit(h, 6) << 7) |
          (bits(h, 5, 3) << 1) |
          (bit(h, 2) << 5);
        return pack(OP_JAL, 0, 0, 0, imm, true);
      }
      default: {
        const imm =
          ((bit(h, 12) << 31) >> 23) |
          (bits(h, 11, 10) << 3) |
          (bits(h, 6, 5) << 6) |
          (bits(h, 4, 3) << 1) |
          (bit(h, 2) << 5);
        return pack(f3 === 6 ? OP_BEQ : OP_BNE, 0, rs1p, 0, imm, true);
      }
    }
  }
  if (q === 2) {
    switch (f3) {
      case 0: {
        const shamt = (bit(h, 12) << 5) | rs2;
        if (rd === 0) return pack(OP_NOP, 0, 0, 0, 0, true);
        return pack(OP_SLLI, rd, rd, 0, shamt, true);
      }
      case 1:
        return packF(OP_FLD, rd, 2, 0, (bit(h, 12) << 5) | (bits(h, 6, 5) << 3) | (bits(h, 4, 2) << 6), true);
      case 2:
        if (rd === 0) return ILLEGAL(h, true);
        return pack(OP_LW, rd, 2, 0, (bit(h, 12) << 5) | (bits(h, 6, 4) << 2) | (bits(h, 3, 2) << 6), true);
      case 3:
        if (rd === 0) return ILLEGAL(h, true);
        return pack(OP_LD, rd, 2, 0, (bit(h, 12) << 5) | (bits(h, 6, 5) << 3) | (bits(h, 4, 2) << 6), true);
      case 4:
        if (bit(h, 12) === 0) {
          if (rs2 === 0) return rd === 0 ? ILLEGAL(h, true) : pack(OP_JALR, 0, rd, 0, 0, true);
          return rd === 0 ? pack(OP_NOP, 0, 0, 0, 0, true) : pack(OP_MV, rd, 0, rs2, 0, true);
        }
        if (rs2 === 0) {
          if (rd === 0) return pack(OP_EBREAK, 0, 0, 0, h, true);
          return pack(OP_JALR, 1, rd, 0, 0, true);
        }
        return rd === 0 ? pack(OP_NOP, 0, 0, 0, 0, true) : pack(OP_ADD, rd, rd, rs2, 0, true);
      case 5:
        return packF(OP_FSD, 0, 2, rs2, (bits(h, 12, 10) << 3) | (bits(h, 9, 7) << 6), true);
      case 6:
        return pack(OP_SW, 0, 2, rs2, (bits(h, 12, 9) << 2) | (bits(h, 8, 7) << 6), true);
      default:
        return pack(OP_SD, 0, 2, rs2, (bits(h, 12, 10) << 3) | (bits(h, 9, 7) << 6), true);
    }
  }
  return ILLEGAL(h, true);
}
