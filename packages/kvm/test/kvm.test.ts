/// <reference types="node" />
import { describe, expect, it } from "vitest";
import {
  decodeRegs,
  decodeSregs,
  encodeRegs,
  encodeSregs,
  exitReasonName,
  GDT_CODE64,
  GDT_DATA,
  GuestMapping,
  KVM_CAP,
  KVM_EXIT,
  KVM_GET_REGS,
  KVM_GET_SUPPORTED_CPUID,
  KVM_IRQ_LINE,
  KVM_RUN,
  KVM_SET_USER_MEMORY_REGION,
  Kvm,
  KvmError,
  KvmRun,
  kvmStatus,
  segmentFromGdt,
} from "../src/index.ts";

const status = kvmStatus();
const noKvm = status.ok ? "" : ` (skipped: ${status.reason})`;

describe("ABI numbers", () => {
  it("ioctl numbers match <linux/kvm.h> on x86-64", () => {
    expect(KVM_RUN).toBe(0xae80);
    expect(KVM_SET_USER_MEMORY_REGION).toBe(0x4020ae46);
    expect(KVM_IRQ_LINE).toBe(0x4008ae61);
    expect(KVM_GET_REGS).toBe(0x8090ae81);
    expect(KVM_GET_SUPPORTED_CPUID).toBe(0xc008ae05);
    expect(exitReasonName(KVM_EXIT.HLT)).toBe("hlt");
    expect(exitReasonName(999)).toBe("exit-999");
  });

  it("register structs round-trip through their byte layouts", () => {
    const b = new Uint8Array(144).map((_, i) => i);
    expect(encodeRegs(decodeRegs(b))).toEqual(b);
    const s = new Uint8Array(312).map((_, i) => (i * 7) & 0xff);
    // padding bytes of kvm_segment / kvm_dtable are not fields: zero them before comparing
    for (let seg = 0; seg < 8; seg++) s[seg * 24 + 23] = 0;
    for (const dt of [192, 208]) s.fill(0, dt + 10, dt + 16);
    expect(encodeSregs(decodeSregs(s))).toEqual(s);
  });

  it("the long-mode descriptors decode to flat 64-bit segments", () => {
    const cs = segmentFromGdt(GDT_CODE64, 8);
    expect(cs).toMatchObject({ base: 0n, limit: 0xffffffff, l: 1, db: 0, present: 1, s: 1, type: 0xb, g: 1 });
    const ds = segmentFromGdt(GDT_DATA, 0x10);
    expect(ds).toMatchObject({ l: 0, db: 1, type: 3, limit: 0xffffffff });
  });
});

describe("kvm_run from a hostile guest's point of view", () => {
  const page = () => new KvmRun(new Uint8Array(4096));
  it("an I/O exit whose data lies outside the page is refused, not read", () => {
    const r = page();
    r.dv.setUint8(32, 1); // out
    r.dv.setUint8(33, 1); // size
    r.dv.setUint16(34, 0x3f8, true);
    r.dv.setUint32(36, 1, true); // count
    r.dv.setBigUint64(40, 4096n, true); // data offset: one past the page
    expect(() => r.io()).toThrow(/outside kvm_run/);
    r.dv.setBigUint64(40, 4000n, true);
    r.dv.setUint32(36, 1000, true); // rep outsb of 1000 bytes from offset 4000
    expect(() => r.io()).toThrow(/outside kvm_run/);
    r.dv.setBigUint64(40, 2n ** 63n, true);
    expect(() => r.io()).toThrow(/outside kvm_run/);
  });
  it("an internal error's data words are read up to the array's 16, whatever ndata says", () => {
    const r = page();
    r.dv.setUint32(32, 1, true); // suberror: emulation failure
    r.dv.setUint32(36, 0xffff_ffff, true); // ndata: lying
    r.dv.setBigUint64(40, 0x1n, true);
    const e = r.internalError();
    expect(e.suberror).toBe(1);
    expect(e.data).toHaveLength(16);
    expect(e.data[0]).toBe(1n);
  });

  it("odd I/O sizes and MMIO lengths are refused", () => {
    const r = page();
    r.dv.setUint8(33, 3);
    r.dv.setUint32(36, 1, true);
    r.dv.setBigUint64(40, 64n, true);
    expect(() => r.io()).toThrow(/size 3/);
    r.dv.setUint32(48, 0, true);
    expect(() => r.mmio()).toThrow(/length 0/);
    r.dv.setUint32(48, 9, true);
    expect(() => r.mmio()).toThrow(/length 9/);
  });
});

describe("KVM", () => {
  it("a missing device is a one-line reason, not a throw", () => {
    const s = kvmStatus("/nonexistent/kvm");
    expect(s.ok).toBe(false);
    if (!s.ok)
      expect(s.reason).toMatch(/^KVM is not usable here: open \/nonexistent\/kvm: No such file or directory/);
  });

  it.skipIf(!status.ok)(`a VM with an irqchip and PIT, CPUID and two vCPUs${noKvm}`, () => {
    const kvm = Kvm.open();
    expect(kvm.checkExtension(KVM_CAP.USER_MEMORY)).toBeGreaterThan(0);
    const cpuid = kvm.supportedCpuid();
    expect(cpuid.some((e) => e.function === 0)).toBe(true);
    const vm = kvm.createVm();
    vm.setTssAddress(0xfffb_d000);
    vm.createIrqchip();
    vm.createPit2();
    const mem = new GuestMapping(1 << 20);
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memorySize: mem.size, userspaceAddr: mem.address });
    const v0 = vm.createVcpu(0);
    const v1 = vm.createVcpu(1);
    expect(() => vm.createVcpu(1)).toThrow(KvmError); // the same id twice
    v0.setCpuid2(cpuid);
    v0.setFpu(0x37f, 0x1f80);
    const lapic = v0.getLapic();
    v0.setLapic(lapic);
    vm.setIrqLine(4, true);
    vm.setIrqLine(4, false);
    v1.close();
    v0.close();
    vm.close();
    mem.unmap();
    kvm.close();
  });

  it.skipIf(!status.ok)(`a guest's MMIO write exits with its address, length and data${noKvm}`, () => {
    const kvm = Kvm.open();
    const vm = kvm.createVm();
    const mem = new GuestMapping(0x10000);
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memorySize: mem.size, userspaceAddr: mem.address });
    // real mode: mov ax, 0x1234; mov [0], ax with DS based at 0xf0000 (beyond the 64 KiB of RAM); hlt
    new Uint8Array(mem.buffer).set([0xb8, 0x34, 0x12, 0xa3, 0x00, 0x00, 0xf4], 0x1000);
    const vcpu = vm.createVcpu(0);
    const s = vcpu.getSregs();
    s.cs.base = 0n;
    s.cs.selector = 0;
    s.ds.base = 0xf0000n; // DS:0 = 0xf0000, past the end of RAM: MMIO
    s.ds.selector = 0xf000;
    vcpu.setSregs(s);
    const r = vcpu.getRegs();
    r.rip = 0x1000n;
    r.rflags = 2n;
    vcpu.setRegs(r);
    expect(exitReasonName(vcpu.run())).toBe("mmio");
    const m = vcpu.kvmRun.mmio();
    expect(m).toEqual({ physAddr: 0xf0000n, len: 2, isWrite: true });
    expect(vcpu.kvmRun.mmioData(2)).toBe(0x1234);
    expect(exitReasonName(vcpu.run())).toBe("hlt");
    vcpu.close();
    vm.close();
    mem.unmap();
    kvm.close();
  });
});
