// Hart.run's typed exits: every kind from a real trap, with its fields; the non-trap
// exits are shared constants (no allocation per run).
import { GuestRam, hpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import {
  csr as C,
  EXIT_BUDGET,
  EXIT_M,
  EXIT_STOP,
  EXIT_WFI,
  Hart,
  type HartExit,
  isTrapExit,
  type PhysBus,
  trapExit,
} from "../src/index.ts";

const BASE = 0x8000_0000;
const HOLE = 0x4000_0000; // no device there

const INSN = {
  ecall: 0x00000073,
  ebreak: 0x00100073,
  wfi: 0x10500073,
  loop: 0x0000006f, // j .
  illegal: 0x00000000,
  ldHole: 0x0002b303, // ld t1, 0(t0)
  sdHole: 0x0062b023, // sd t1, 0(t0)
  lwDevice: 0x0002a303, // lw t1, 0(t0)
  amoaddW: 0x0062a3af, // amoadd.w t2, t1, (t0)
};
const T0 = 5;

function setup(program: number[], bus?: Partial<PhysBus>): { ram: GuestRam; hart: Hart } {
  const ram = new GuestRam(BASE, 1 << 20);
  for (let i = 0; i < program.length; i++) ram.write32(hpa(BASE + 4 * i), program[i]!);
  const hart = new Hart({
    ram,
    bus: { read: () => -1, write: () => false, read64: () => undefined, write64: () => false, ...bus },
  });
  hart.exitMask = EXIT_M;
  return { ram, hart };
}

function expectTrap(e: HartExit, kind: string, cause: number): void {
  expect(e.kind).toBe(kind);
  expect(isTrapExit(e)).toBe(true);
  if (isTrapExit(e)) expect(e.cause).toBe(cause);
}

describe("Hart.run exits", () => {
  it("budget, wfi and stop are shared constants", () => {
    const { hart } = setup([INSN.loop]);
    expect(hart.run(100)).toBe(EXIT_BUDGET);
    expect(isTrapExit(EXIT_BUDGET)).toBe(false);
    const w = setup([INSN.wfi]);
    expect(w.hart.run(100)).toBe(EXIT_WFI);
    expect(w.hart.waiting).toBe(true);
    // A device callback asks the hart to stop.
    let h: Hart | undefined;
    const s = setup([0x100002b7 /* lui t0, 0x10000 */, INSN.lwDevice, INSN.loop], {
      read: () => {
        h!.requestStop();
        return 0;
      },
    });
    h = s.hart;
    expect(s.hart.run(1000)).toBe(EXIT_STOP);
    expect(EXIT_STOP.kind).toBe("stop");
  });

  it("ecall: the mode it came from", () => {
    const { hart } = setup([INSN.ecall]);
    const e = hart.run(10);
    expectTrap(e, "ecall", C.CAUSE_MACHINE_ECALL);
    expect(e.kind === "ecall" && e.priv).toBe(C.PRV_M);
    expect(hart.pc).toBe(BigInt(BASE)); // still at the instruction
  });

  it("breakpoint: the address", () => {
    const { hart } = setup([0x00000013 /* nop */, INSN.ebreak]);
    const e = hart.run(10);
    expectTrap(e, "breakpoint", C.CAUSE_BREAKPOINT);
    expect(e.kind === "breakpoint" && e.addr).toBe(BigInt(BASE + 4));
  });

  it("illegal instruction: its bits", () => {
    const { hart } = setup([0xffffffff]);
    const e = hart.run(10);
    expectTrap(e, "illegal-instruction", C.CAUSE_ILLEGAL_INSTRUCTION);
    expect(e.kind === "illegal-instruction" && e.insn).toBe(0xffffffff);
  });

  it("access faults: load, store and fetch, with the address", () => {
    for (const [insn, access, cause] of [
      [INSN.ldHole, "load", C.CAUSE_LOAD_ACCESS],
      [INSN.sdHole, "store", C.CAUSE_STORE_ACCESS],
    ] as const) {
      const { hart } = setup([0x400002b7 /* lui t0, 0x40000 */, insn]);
      const e = hart.run(10);
      expectTrap(e, "access-fault", cause);
      expect(e.kind === "access-fault" && e.access).toBe(access);
      expect(e.kind === "access-fault" && e.addr).toBe(BigInt(HOLE));
    }
    const { hart } = setup([0x400002b7 /* lui t0, 0x40000 */, 0x00028067 /* jr t0 */]);
    const e = hart.run(10);
    expectTrap(e, "access-fault", C.CAUSE_FETCH_ACCESS);
    expect(e.kind === "access-fault" && e.access).toBe("fetch");
  });

  it("misaligned: an AMO at an odd address", () => {
    const { hart } = setup([INSN.amoaddW]);
    hart.setX(T0, BigInt(BASE + 0x1001));
    const e = hart.run(10);
    expectTrap(e, "misaligned", C.CAUSE_MISALIGNED_STORE);
    expect(e.kind === "misaligned" && e.addr).toBe(BigInt(BASE + 0x1001));
  });

  it("page fault: S-mode with an empty Sv39 root faults on its first fetch", () => {
    const { hart } = setup([]);
    const root = BASE + 0x8000; // zeroed: every PTE invalid
    hart.boot({ pc: 0x1000n, priv: C.PRV_S, exitMask: EXIT_M });
    hart.setSatp(8, root / 4096);
    const e = hart.run(10);
    expectTrap(e, "page-fault", C.CAUSE_FETCH_PAGE_FAULT);
    expect(e.kind === "page-fault" && e.access).toBe("fetch");
    expect(e.kind === "page-fault" && e.addr).toBe(0x1000n);
  });

  it("interrupt: an M-level line with the host as M-mode", () => {
    const { hart } = setup([INSN.loop]);
    hart.boot({ pc: BigInt(BASE), priv: C.PRV_S, csrs: [[C.CSR_MIE, BigInt(C.MIP_MTIP)]], exitMask: EXIT_M });
    expect(hart.run(10).kind).toBe("budget");
    hart.setIrq(C.IRQ_MTI, true);
    const e = hart.run(10);
    expectTrap(e, "interrupt", C.IRQ_MTI);
  });

  it("a cause the hart never raises has no exit kind", () => {
    expect(() => trapExit(14, false, 0, 0, 0, 0)).toThrow(/no exit kind/);
  });
});

describe("host calls", () => {
  it("setPending raises a software-pending bit; a WFI ends once it is enabled", () => {
    const { hart } = setup([INSN.wfi, INSN.loop]);
    hart.boot({ pc: BigInt(BASE), priv: C.PRV_M, csrs: [[C.CSR_MIE, BigInt(C.MIP_SSIP)]] });
    expect(hart.run(10).kind).toBe("wfi");
    hart.setPending(C.IRQ_SSI, true);
    expect(hart.waiting).toBe(false);
    expect(hart.getCsr(C.CSR_MIP) & BigInt(C.MIP_SSIP)).not.toBe(0n);
    hart.setPending(C.IRQ_SSI, false);
    expect(hart.getCsr(C.CSR_MIP)).toBe(0n);
  });

  it("getCsr/setCsr apply WARL rules and refuse missing CSRs", () => {
    const { hart } = setup([]);
    hart.setCsr(C.CSR_MEDELEG, 0xffffn);
    expect(hart.getCsr(C.CSR_MEDELEG)).toBe(0xb3ffn);
    expect(() => hart.getCsr(0x7ff)).toThrow(/no CSR/);
    expect(() => hart.setCsr(C.CSR_MHARTID, 1n)).toThrow(/cannot write/);
    expect(() => hart.injectVsTrap(C.CAUSE_ILLEGAL_INSTRUCTION, 0n)).toThrow(/V=1/);
  });

  it("boot refuses V=1 without the hypervisor extension", () => {
    const { hart } = setup([]);
    expect(() => hart.boot({ pc: 0n, priv: C.PRV_S, virt: true })).toThrow(/hypervisor/);
  });
});
