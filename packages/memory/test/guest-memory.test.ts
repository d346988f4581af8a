import { describe, expect, it } from "vitest";
import {
  GuestMemory,
  GuestRam,
  gpa,
  gpaFromHiLo,
  gpaFromU64,
  HvRegion,
  hpa,
  PTE_R,
  PTE_V,
  PTE_W,
} from "../src/index.ts";

const BASE = 0x8000_0000;
const GUEST = 0x4000;
const POOL = 0x2000;
const END = BASE + GUEST;

function split() {
  const host = new GuestRam(BASE, GUEST + POOL);
  const guest = new GuestMemory(host, GUEST);
  const pool = new HvRegion(host, guest, END, END + POOL);
  return { host, guest, pool };
}

describe("GuestMemory", () => {
  it("covers exactly guest RAM: the host buffer's pool after it is out of reach", () => {
    const { host, guest } = split();
    host.u8.fill(0xee, GUEST);
    expect(guest.contains(gpa(END - 8), 8)).toBe(true);
    expect(guest.contains(gpa(END - 8), 9)).toBe(false);
    expect(guest.contains(gpa(END), 1)).toBe(false);
    expect(() => guest.read8(gpa(END))).toThrow(/outside guest RAM/);
    expect(() => guest.view(gpa(END - 4), 8)).toThrow(/outside guest RAM/);
    expect(() => guest.write64(gpa(END), 1n)).toThrow(/outside guest RAM/);
    expect(() => guest.viewMut(gpa(BASE - 1), 2)).toThrow(/outside guest RAM/);
    expect(host.u8.subarray(GUEST).every((b) => b === 0xee)).toBe(true);
  });

  it("refuses addresses and lengths that are not exact integers (no rounding into RAM)", () => {
    const { guest } = split();
    for (const a of [-1, 2 ** 53, 2 ** 64 - 2 ** 11, BASE + 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(guest.contains(gpa(a), 1)).toBe(false);
    }
    expect(guest.contains(gpa(BASE), -1)).toBe(false);
    expect(guest.contains(gpa(BASE), 2 ** 53)).toBe(false);
  });

  it("turns 64-bit guest values into Gpas only when a number holds them exactly", () => {
    expect(gpaFromU64(0x8000_1000n)).toBe(0x8000_1000);
    expect(gpaFromU64((1n << 53n) - 1n)).toBe(2 ** 53 - 1);
    expect(gpaFromU64(1n << 53n)).toBeUndefined();
    expect(gpaFromU64((1n << 64n) - 1n)).toBeUndefined();
    expect(gpaFromU64(-1n)).toBeUndefined(); // two's complement: 2^64 - 1
    expect(gpaFromHiLo(1, 0x10)).toBe(2 ** 32 + 0x10);
    expect(gpaFromHiLo(0xffff_ffff, 0xffff_ffc0)).toBeUndefined();
    expect(gpaFromHiLo(1 << 21, 0)).toBeUndefined();
  });

  it("marks DMA writes dirty and tells the CPUs", () => {
    const { host, guest } = split();
    const seen: [number, number][] = [];
    host.onExternalWrite = (off, len) => seen.push([off, len]);
    host.enableDirtyLog();
    guest.write32(gpa(BASE + 0x1000), 7);
    expect(seen).toEqual([[0x1000, 4]]);
    expect(host.fetchAndClearDirty()).toEqual([1]);
  });
});

describe("HvRegion", () => {
  it("must lie outside guest RAM, inside the host buffer, page-aligned", () => {
    const host = new GuestRam(BASE, GUEST + POOL);
    const guest = new GuestMemory(host, GUEST);
    expect(() => new HvRegion(host, guest, END - 0x1000, END + POOL)).toThrow(/outside guest RAM/);
    expect(() => new HvRegion(host, guest, END, END + POOL + 0x1000)).toThrow(/inside the host buffer/);
    expect(() => new HvRegion(host, guest, END + 8, END + POOL)).toThrow(/page-aligned/);
  });

  it("stores table pointers into itself and leaves onto guest RAM, nothing else", () => {
    const { pool } = split();
    const root = hpa(END);
    const l0 = hpa(END + 0x1000);
    pool.setTable(root, l0);
    expect(pool.nextTable(root)).toBe(l0);
    pool.setLeaf(l0, gpa(BASE + 0x2000), 4096, PTE_V | PTE_R | PTE_W);
    expect(pool.entryFlags(l0)).toBe(PTE_V | PTE_R | PTE_W);
    expect(() => pool.setTable(root, hpa(BASE))).toThrow(/not a page of the hypervisor region/);
    expect(() => pool.setLeaf(l0, gpa(END), 4096, PTE_V | PTE_R)).toThrow(/outside guest RAM/);
    expect(() => pool.setLeaf(l0, gpa(BASE + 0x3000), 0x20_0000, PTE_V | PTE_R)).toThrow(/malformed/);
    expect(() => pool.setLeaf(l0, gpa(BASE), 4096, PTE_V)).toThrow(/malformed/);
    expect(() => pool.zero(hpa(BASE), 8)).toThrow(/outside its region/);
    expect(() => pool.clear(hpa(END + POOL))).toThrow(/outside its region/);
    pool.clear(root);
    expect(pool.nextTable(root)).toBeUndefined();
  });

  it("refuses to follow a corrupted table pointer", () => {
    const { host, pool } = split();
    // A valid non-leaf PTE pointing at guest RAM, written behind the region's back.
    host.dv.setBigUint64(GUEST, (BigInt(BASE / 4096) << 10n) | BigInt(PTE_V), true);
    expect(() => pool.nextTable(hpa(END))).toThrow(/corrupt/);
  });

  it("reports every write it makes (for audits)", () => {
    const { pool } = split();
    const writes: [number, number][] = [];
    pool.onWrite = (at, len) => writes.push([at, len]);
    pool.zero(hpa(END), 4096);
    pool.setTable(hpa(END), hpa(END + 0x1000));
    expect(writes).toEqual([
      [END, 4096],
      [END, 8],
    ]);
  });
});
