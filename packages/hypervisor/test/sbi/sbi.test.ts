import { GuestMemory, gpa } from "@visor/memory";
import { beforeEach, describe, expect, it } from "vitest";
import {
  SBI_ERR_ALREADY_AVAILABLE,
  SBI_ERR_FAILED,
  SBI_ERR_INVALID_ADDRESS,
  SBI_ERR_INVALID_PARAM,
  SBI_ERR_NOT_SUPPORTED,
  SBI_EXT_BASE,
  SBI_EXT_DBCN,
  SBI_EXT_HSM,
  SBI_EXT_IPI,
  SBI_EXT_RFENCE,
  SBI_EXT_SRST,
  SBI_EXT_TIME,
  SBI_HSM_STATE_STARTED,
  SBI_HSM_STATE_STOPPED,
  SBI_HSM_STATE_SUSPENDED,
  SBI_IMPL_ID_VISOR,
  SBI_IMPL_VERSION,
  SBI_RFENCE_FULL,
  SBI_SUCCESS,
  type SbiHsmState,
} from "../../src/sbi/constants.ts";
import { Sbi, type SbiHost, type SbiRegs } from "../../src/sbi/sbi.ts";
import { SbiCallCounter } from "../../src/sbi/stats.ts";

const RAM_BASE = 0x8000_0000;
const RAM_SIZE = 0x1000;
const ALL = 0xffff_ffff_ffff_ffffn;

/** A host that records what the SBI asks of it. */
class FakeHost implements SbiHost {
  hartCount = 4;
  mvendorid?: bigint;
  log: unknown[][] = [];
  states: SbiHsmState[] = [
    SBI_HSM_STATE_STARTED,
    SBI_HSM_STATE_STOPPED,
    SBI_HSM_STATE_STOPPED,
    SBI_HSM_STATE_STOPPED,
  ];
  /** Guest RAM as the SBI sees it, and its bytes for the test to look at. */
  readonly memory = GuestMemory.allocate(RAM_BASE, RAM_SIZE);
  get ram(): Uint8Array {
    return this.memory.view(gpa(RAM_BASE), RAM_SIZE);
  }
  input: number[] = [];
  output: number[] = [];
  remoteHfenceGvma?: SbiHost["remoteHfenceGvma"];
  remoteHfenceVvma?: SbiHost["remoteHfenceVvma"];

  setTimer(hart: number, stime: bigint): void {
    this.log.push(["setTimer", hart, stime]);
  }
  sendIpi(hart: number): void {
    this.log.push(["sendIpi", hart]);
  }
  remoteFenceI(harts: readonly number[]): void {
    this.log.push(["fenceI", [...harts]]);
  }
  remoteSfenceVma(harts: readonly number[], start: bigint, size: bigint, asid: bigint | undefined): void {
    this.log.push(["sfenceVma", [...harts], start, size, asid]);
  }
  hartStart(hart: number, startAddr: number, opaque: bigint): void {
    this.log.push(["hartStart", hart, startAddr, opaque]);
    this.states[hart] = SBI_HSM_STATE_STARTED;
  }
  hartStop(hart: number): void {
    this.log.push(["hartStop", hart]);
    this.states[hart] = SBI_HSM_STATE_STOPPED;
  }
  hartStatus(hart: number): SbiHsmState {
    return this.states[hart]!;
  }
  hartSuspend(hart: number, retentive: boolean, resumeAddr: number, opaque: bigint): void {
    this.log.push(["hartSuspend", hart, retentive, resumeAddr, opaque]);
    this.states[hart] = SBI_HSM_STATE_SUSPENDED;
  }
  systemReset(type: number, reason: number): void {
    this.log.push(["systemReset", type, reason]);
  }
  consoleWrite(bytes: Uint8Array): void {
    this.output.push(...bytes);
  }
  consoleRead(max: number): Uint8Array {
    return Uint8Array.from(this.input.splice(0, max));
  }
}

class Regs implements SbiRegs {
  a: bigint[] = new Array(8).fill(0n);
  writes: number[] = [];
  get(i: number): bigint {
    return this.a[i]!;
  }
  set(i: number, v: bigint): void {
    expect(v >= 0n && v <= ALL).toBe(true);
    this.writes.push(i);
    this.a[i] = v;
  }
}

let host: FakeHost;
let stats: SbiCallCounter;
let sbi: Sbi;

beforeEach(() => {
  host = new FakeHost();
  stats = new SbiCallCounter();
  sbi = new Sbi(host, stats);
});

/** Makes an SBI call; returns a0 as a signed error and a1 as an unsigned value. */
function call(eid: number | bigint, fid: number | bigint, args: (number | bigint)[] = [], hart = 0, s = sbi) {
  const r = new Regs();
  for (const [i, v] of args.entries()) r.a[i] = BigInt.asUintN(64, BigInt(v));
  r.a[6] = BigInt(fid);
  r.a[7] = BigInt(eid);
  s.call(hart, r);
  return { error: Number(BigInt.asIntN(64, r.a[0]!)), value: r.a[1]!, regs: r };
}

describe("BASE (0x10)", () => {
  it("reports spec version 2.0, the Visor implementation ID and version", () => {
    expect(call(SBI_EXT_BASE, 0)).toMatchObject({ error: 0, value: 0x0200_0000n });
    expect(call(SBI_EXT_BASE, 1)).toMatchObject({ error: 0, value: BigInt(SBI_IMPL_ID_VISOR) });
    expect(call(SBI_EXT_BASE, 2)).toMatchObject({ error: 0, value: BigInt(SBI_IMPL_VERSION) });
    const custom = new Sbi(host, undefined, { implVersion: 0x10002 });
    expect(call(SBI_EXT_BASE, 2, [], 0, custom).value).toBe(0x10002n);
  });

  it("probes exactly the implemented extensions", () => {
    for (const eid of [
      SBI_EXT_BASE,
      SBI_EXT_TIME,
      SBI_EXT_IPI,
      SBI_EXT_RFENCE,
      SBI_EXT_HSM,
      SBI_EXT_SRST,
      SBI_EXT_DBCN,
    ]) {
      expect(call(SBI_EXT_BASE, 3, [eid])).toMatchObject({ error: 0, value: 1n });
    }
    for (const legacy of [0, 1, 2, 8]) expect(call(SBI_EXT_BASE, 3, [legacy]).value).toBe(1n);
    for (const missing of [
      3,
      4,
      5,
      6,
      7,
      0x504d55 /* PMU */,
      0x53555350 /* SUSP */,
      0xffff_ffff_0000_0010n,
    ]) {
      expect(call(SBI_EXT_BASE, 3, [missing])).toMatchObject({ error: 0, value: 0n });
    }
  });

  it("returns the machine IDs from the host, 0 when it has none", () => {
    expect(call(SBI_EXT_BASE, 4)).toMatchObject({ error: 0, value: 0n });
    expect(call(SBI_EXT_BASE, 5).value).toBe(0n);
    expect(call(SBI_EXT_BASE, 6).value).toBe(0n);
    host.mvendorid = 0x489n;
    expect(call(SBI_EXT_BASE, 4).value).toBe(0x489n);
  });

  it("answers NOT_SUPPORTED to an unknown function", () => {
    expect(call(SBI_EXT_BASE, 7).error).toBe(SBI_ERR_NOT_SUPPORTED);
    expect(call(SBI_EXT_BASE, ALL).error).toBe(SBI_ERR_NOT_SUPPORTED);
  });
});

describe("TIME (0x54494D45)", () => {
  it("programs the caller's timer with the full 64-bit value", () => {
    expect(call(SBI_EXT_TIME, 0, [0xfedc_ba98_7654_3210n], 2)).toMatchObject({ error: 0, value: 0n });
    expect(host.log).toEqual([["setTimer", 2, 0xfedc_ba98_7654_3210n]]);
    expect(call(SBI_EXT_TIME, 1).error).toBe(SBI_ERR_NOT_SUPPORTED);
  });
});

describe("IPI (0x735049)", () => {
  it("sends to the harts in hart_mask starting at hart_mask_base", () => {
    expect(call(SBI_EXT_IPI, 0, [0b101, 0]).error).toBe(SBI_SUCCESS);
    expect(call(SBI_EXT_IPI, 0, [0b11, 2]).error).toBe(SBI_SUCCESS);
    expect(host.log).toEqual([
      ["sendIpi", 0],
      ["sendIpi", 2],
      ["sendIpi", 2],
      ["sendIpi", 3],
    ]);
  });

  it("hart_mask_base = -1 means every hart; an empty mask is a no-op", () => {
    expect(call(SBI_EXT_IPI, 0, [0, ALL]).error).toBe(SBI_SUCCESS);
    expect(host.log.map((l) => l[1])).toEqual([0, 1, 2, 3]);
    host.log = [];
    expect(call(SBI_EXT_IPI, 0, [0, 0]).error).toBe(SBI_SUCCESS);
    expect(host.log).toEqual([]);
  });

  it("refuses masks naming harts that do not exist, sending nothing", () => {
    expect(call(SBI_EXT_IPI, 0, [0b1_0001, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(call(SBI_EXT_IPI, 0, [1, 4]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(call(SBI_EXT_IPI, 0, [1, ALL - 1n]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(call(SBI_EXT_IPI, 0, [1n << 63n, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(host.log).toEqual([]);
    expect(call(SBI_EXT_IPI, 1, [1, 0]).error).toBe(SBI_ERR_NOT_SUPPORTED);
  });
});

describe("RFENCE (0x52464E43)", () => {
  it("remote_fence_i on the named harts", () => {
    expect(call(SBI_EXT_RFENCE, 0, [0b110, 0]).error).toBe(SBI_SUCCESS);
    expect(host.log).toEqual([["fenceI", [1, 2]]]);
  });

  it("remote_sfence_vma and _asid pass the range and ASID; (0,0) and size -1 are full flushes", () => {
    expect(call(SBI_EXT_RFENCE, 1, [1, 0, 0x4000, 0x2000]).error).toBe(SBI_SUCCESS);
    expect(call(SBI_EXT_RFENCE, 1, [1, 0, 0, 0]).error).toBe(SBI_SUCCESS);
    expect(call(SBI_EXT_RFENCE, 2, [1, 0, 0x1234, ALL, 7]).error).toBe(SBI_SUCCESS);
    expect(host.log).toEqual([
      ["sfenceVma", [0], 0x4000n, 0x2000n, undefined],
      ["sfenceVma", [0], 0n, SBI_RFENCE_FULL, undefined],
      ["sfenceVma", [0], 0n, SBI_RFENCE_FULL, 7n],
    ]);
  });

  it("rejects a wrapping range and bad harts", () => {
    expect(call(SBI_EXT_RFENCE, 1, [1, 0, ALL - 0xfffn, 0x2000]).error).toBe(SBI_ERR_INVALID_ADDRESS);
    expect(call(SBI_EXT_RFENCE, 1, [1, 9, 0, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(call(SBI_EXT_RFENCE, 0, [1 << 5, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(host.log).toEqual([]);
  });

  it("the hfence variants are NOT_SUPPORTED unless the host implements them", () => {
    for (const fid of [3, 4, 5, 6])
      expect(call(SBI_EXT_RFENCE, fid, [1, 0, 0, 0, 1]).error).toBe(SBI_ERR_NOT_SUPPORTED);
    expect(call(SBI_EXT_RFENCE, 7, [1, 0]).error).toBe(SBI_ERR_NOT_SUPPORTED);
    host.remoteHfenceGvma = (harts, start, size, vmid) =>
      host.log.push(["gvma", [...harts], start, size, vmid]);
    host.remoteHfenceVvma = (harts, start, size, asid) =>
      host.log.push(["vvma", [...harts], start, size, asid]);
    expect(call(SBI_EXT_RFENCE, 3, [1, 1, 0x1000, 0x1000, 5]).error).toBe(SBI_SUCCESS);
    expect(call(SBI_EXT_RFENCE, 4, [1, 1, 0x1000, 0x1000, 5]).error).toBe(SBI_SUCCESS);
    expect(call(SBI_EXT_RFENCE, 5, [1, 1, 0, 0, 9]).error).toBe(SBI_SUCCESS);
    expect(call(SBI_EXT_RFENCE, 6, [1, 1, 0, ALL]).error).toBe(SBI_SUCCESS);
    expect(host.log).toEqual([
      ["gvma", [1], 0x1000n, 0x1000n, 5n],
      ["gvma", [1], 0x1000n, 0x1000n, undefined],
      ["vvma", [1], 0n, SBI_RFENCE_FULL, 9n],
      ["vvma", [1], 0n, SBI_RFENCE_FULL, undefined],
    ]);
  });
});

describe("HSM (0x48534D)", () => {
  it("hart_start starts a stopped hart at a RAM address with its opaque value", () => {
    expect(call(SBI_EXT_HSM, 0, [1, RAM_BASE + 0x100, 0xabcd])).toMatchObject({ error: 0 });
    expect(host.log).toEqual([["hartStart", 1, RAM_BASE + 0x100, 0xabcdn]]);
    expect(call(SBI_EXT_HSM, 2, [1])).toMatchObject({ error: 0, value: BigInt(SBI_HSM_STATE_STARTED) });
  });

  it("hart_start refuses started harts, unknown harts and non-RAM addresses", () => {
    expect(call(SBI_EXT_HSM, 0, [0, RAM_BASE, 0]).error).toBe(SBI_ERR_ALREADY_AVAILABLE);
    expect(call(SBI_EXT_HSM, 0, [4, RAM_BASE, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(call(SBI_EXT_HSM, 0, [ALL, RAM_BASE, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(call(SBI_EXT_HSM, 0, [1, 0x1000, 0]).error).toBe(SBI_ERR_INVALID_ADDRESS);
    expect(call(SBI_EXT_HSM, 0, [1, RAM_BASE + RAM_SIZE, 0]).error).toBe(SBI_ERR_INVALID_ADDRESS);
    expect(call(SBI_EXT_HSM, 0, [1, 1n << 60n, 0]).error).toBe(SBI_ERR_INVALID_ADDRESS);
    expect(host.log).toEqual([]);
  });

  it("hart_stop stops the caller; a hart that is not started cannot", () => {
    expect(call(SBI_EXT_HSM, 1, [], 0).error).toBe(SBI_SUCCESS);
    expect(host.log).toEqual([["hartStop", 0]]);
    expect(call(SBI_EXT_HSM, 1, [], 2).error).toBe(SBI_ERR_FAILED);
  });

  it("hart_get_status reports each hart and refuses unknown ones", () => {
    expect(call(SBI_EXT_HSM, 2, [0]).value).toBe(BigInt(SBI_HSM_STATE_STARTED));
    expect(call(SBI_EXT_HSM, 2, [3]).value).toBe(BigInt(SBI_HSM_STATE_STOPPED));
    expect(call(SBI_EXT_HSM, 2, [4]).error).toBe(SBI_ERR_INVALID_PARAM);
  });

  it("hart_suspend: default retentive is WFI-like, default non-retentive resumes at an address", () => {
    expect(call(SBI_EXT_HSM, 3, [0, 0, 0], 0).error).toBe(SBI_SUCCESS);
    // 0x80000000 sign-extended by a 32-bit caller still means default non-retentive.
    expect(call(SBI_EXT_HSM, 3, [0xffff_ffff_8000_0000n, RAM_BASE + 8, 42], 0).error).toBe(SBI_SUCCESS);
    expect(host.log).toEqual([
      ["hartSuspend", 0, true, 0, 0n],
      ["hartSuspend", 0, false, RAM_BASE + 8, 42n],
    ]);
  });

  it("hart_suspend refuses reserved and platform-specific types and bad resume addresses", () => {
    for (const t of [1, 0x0fff_ffff, 0x1000_0000, 0x7fff_ffff, 0x8000_0001, 0x9000_0000]) {
      expect(call(SBI_EXT_HSM, 3, [t, RAM_BASE, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    }
    expect(call(SBI_EXT_HSM, 3, [0x8000_0000, 0x10, 0]).error).toBe(SBI_ERR_INVALID_ADDRESS);
    expect(host.log).toEqual([]);
    expect(call(SBI_EXT_HSM, 4).error).toBe(SBI_ERR_NOT_SUPPORTED);
  });
});

describe("SRST (0x53525354)", () => {
  it("passes shutdown, cold and warm reboot with a valid reason to the host", () => {
    expect(call(SBI_EXT_SRST, 0, [0, 0]).error).toBe(SBI_SUCCESS);
    expect(call(SBI_EXT_SRST, 0, [1, 1]).error).toBe(SBI_SUCCESS);
    expect(call(SBI_EXT_SRST, 0, [0xffff_ffff_0000_0002n, 0]).error).toBe(SBI_SUCCESS);
    expect(host.log).toEqual([
      ["systemReset", 0, 0],
      ["systemReset", 1, 1],
      ["systemReset", 2, 0],
    ]);
  });

  it("refuses reserved and vendor types and reasons", () => {
    for (const [type, reason] of [
      [3, 0],
      [0xefff_ffff, 0],
      [0xf000_0000, 0],
      [0, 2],
      [0, 0xe000_0000],
      [0, 0xf000_0000],
    ]) {
      expect(call(SBI_EXT_SRST, 0, [type!, reason!]).error).toBe(SBI_ERR_INVALID_PARAM);
    }
    expect(host.log).toEqual([]);
    expect(call(SBI_EXT_SRST, 1).error).toBe(SBI_ERR_NOT_SUPPORTED);
  });
});

describe("DBCN (0x4442434E)", () => {
  it("console_write writes guest memory by physical address and returns the count", () => {
    host.ram.set(
      [..."hello"].map((c) => c.charCodeAt(0)),
      0x10,
    );
    expect(call(SBI_EXT_DBCN, 0, [5, RAM_BASE + 0x10, 0])).toMatchObject({ error: 0, value: 5n });
    expect(String.fromCharCode(...host.output)).toBe("hello");
    expect(call(SBI_EXT_DBCN, 0, [0, 0, 0])).toMatchObject({ error: 0, value: 0n });
  });

  it("console_write refuses memory that is not (entirely) RAM", () => {
    expect(call(SBI_EXT_DBCN, 0, [4, 0x1000, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(call(SBI_EXT_DBCN, 0, [0x20, RAM_BASE + RAM_SIZE - 0x10, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(call(SBI_EXT_DBCN, 0, [4, RAM_BASE, 1]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(call(SBI_EXT_DBCN, 0, [4, ALL, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(call(SBI_EXT_DBCN, 0, [ALL, 0x10, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(host.output).toEqual([]);
  });

  it("console_write may be partial: at most consoleChunk bytes per call", () => {
    const small = new Sbi(host, undefined, { consoleChunk: 16 });
    expect(call(SBI_EXT_DBCN, 0, [100, RAM_BASE, 0], 0, small)).toMatchObject({ error: 0, value: 16n });
    expect(host.output.length).toBe(16);
  });

  it("console_read copies pending input into guest memory, 0 when there is none", () => {
    host.input = [0x61, 0x62, 0x63];
    expect(call(SBI_EXT_DBCN, 1, [10, RAM_BASE + 0x20, 0])).toMatchObject({ error: 0, value: 3n });
    expect([...host.ram.subarray(0x20, 0x23)]).toEqual([0x61, 0x62, 0x63]);
    expect(call(SBI_EXT_DBCN, 1, [10, RAM_BASE + 0x20, 0])).toMatchObject({ error: 0, value: 0n });
    host.input = [1, 2, 3, 4];
    expect(call(SBI_EXT_DBCN, 1, [2, RAM_BASE, 0]).value).toBe(2n);
    expect(host.input).toEqual([3, 4]);
  });

  it("console_read to a non-RAM buffer fails without consuming input", () => {
    host.input = [0x61];
    expect(call(SBI_EXT_DBCN, 1, [1, 0x10, 0]).error).toBe(SBI_ERR_INVALID_PARAM);
    expect(host.input).toEqual([0x61]);
  });

  it("console_write_byte writes the low byte", () => {
    expect(call(SBI_EXT_DBCN, 2, [0x1_41]).error).toBe(SBI_SUCCESS);
    expect(host.output).toEqual([0x41]);
    expect(call(SBI_EXT_DBCN, 3).error).toBe(SBI_ERR_NOT_SUPPORTED);
  });
});

describe("legacy extensions (0x00 .. 0x08)", () => {
  it("set_timer, console_putchar, console_getchar and shutdown return in a0 only", () => {
    const r1 = call(0x00, 0, [0x1234_5678_9an], 1);
    expect(host.log).toEqual([["setTimer", 1, 0x1234_5678_9an]]);
    expect(r1.error).toBe(0);
    expect(r1.regs.writes).toEqual([0]);
    call(0x01, 0, [0x21a]); // only the low byte
    expect(host.output).toEqual([0x1a]);
    host.input = [0x71];
    expect(call(0x02, 0).regs.a[0]).toBe(0x71n);
    expect(call(0x02, 0).regs.a[0]).toBe(ALL); // -1: no input
    call(0x08, 0);
    expect(host.log.at(-1)).toEqual(["systemReset", 0, 0]);
  });

  it("the hart-mask-by-virtual-address calls (0x03 .. 0x07) and reserved 0x09..0x0f are NOT_SUPPORTED", () => {
    for (const eid of [3, 4, 5, 6, 7, 9, 0xf]) expect(call(eid, 0, [0]).error).toBe(SBI_ERR_NOT_SUPPORTED);
    expect(host.log).toEqual([]);
  });
});

describe("dispatch and statistics", () => {
  it("answers NOT_SUPPORTED to unknown extensions", () => {
    expect(call(0x504d55, 0).error).toBe(SBI_ERR_NOT_SUPPORTED);
    expect(call(ALL, 0).error).toBe(SBI_ERR_NOT_SUPPORTED);
    expect(call(0x1_0000_0010n, 0).error).toBe(SBI_ERR_NOT_SUPPORTED);
  });

  it("counts calls by the spec's extension and function names, with errors", () => {
    call(SBI_EXT_TIME, 0, [1]);
    call(SBI_EXT_TIME, 0, [2]);
    call(SBI_EXT_IPI, 0, [1, 9]);
    call(SBI_EXT_BASE, 3, [SBI_EXT_HSM]);
    call(0x01, 0, [0x41]);
    call(0x504d55, 2);
    expect(stats.count("TIME", "sbi_set_timer")).toBe(2);
    expect(stats.count("BASE", "sbi_probe_extension")).toBe(1);
    expect(stats.count("LEGACY", "sbi_console_putchar")).toBe(1);
    expect(stats.total).toBe(6);
    expect(stats.rows()).toEqual([
      { extension: "TIME", fn: "sbi_set_timer", count: 2, errors: 0 },
      { extension: "0x504d55", fn: "fid 2", count: 1, errors: 1 },
      { extension: "BASE", fn: "sbi_probe_extension", count: 1, errors: 0 },
      { extension: "IPI", fn: "sbi_send_ipi", count: 1, errors: 1 },
      { extension: "LEGACY", fn: "sbi_console_putchar", count: 1, errors: 0 },
    ]);
    stats.reset();
    expect(stats.rows()).toEqual([]);
    expect(stats.total).toBe(0);
  });

  it("works without a stats sink and rejects a host with no harts", () => {
    expect(call(SBI_EXT_BASE, 0, [], 0, new Sbi(host)).error).toBe(0);
    host.hartCount = 0;
    expect(() => new Sbi(host)).toThrow("sbi: hart count 0 must be a positive integer");
  });
});
