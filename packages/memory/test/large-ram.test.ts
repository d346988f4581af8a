/**
 * Guest RAM beyond 4 GiB: the dirty-page log and the walkers' A/D write-backs name the
 * right page above 4 GiB (32-bit shifts on RAM offsets used to wrap them onto a page
 * 4 GiB lower). The buffers are allocated but hardly touched: the OS
 * zero-fills them lazily, so they cost a few pages of host memory.
 */
import { describe, expect, it } from "vitest";
import {
  ACCESS_READ,
  ACCESS_WRITE,
  GuestRam,
  hpa,
  PTE_A,
  PTE_D,
  PTE_R,
  PTE_V,
  PTE_W,
  SATP_MODE_SV39,
  WalkResult,
  walkStage1,
} from "../src/index.ts";

const GiB = 2 ** 30;
const BASE = 0x8000_0000;
const PAGE = 4096;
/** 4 GiB and 3 pages of RAM: pages 2^20 .. 2^20 + 2 lie at or above 4 GiB. */
const SIZE = 4 * GiB + 3 * PAGE;
const PAGE_4G = (4 * GiB) / PAGE;

describe("guest RAM above 4 GiB", () => {
  it("the dirty log reports a page above 4 GiB as itself", () => {
    const ram = new GuestRam(BASE, SIZE);
    ram.enableDirtyLog();
    ram.write64(hpa(BASE + 4 * GiB + PAGE + 16), 0x1234n);
    ram.write8(hpa(BASE + 2 * GiB), 1);
    expect(ram.fetchAndClearDirty()).toEqual([(2 * GiB) / PAGE, PAGE_4G + 1]);
    // A write straddling the 4 GiB line dirties both pages.
    ram.write64(hpa(BASE + 4 * GiB - 4), 0x1234n);
    expect(ram.fetchAndClearDirty()).toEqual([PAGE_4G - 1, PAGE_4G]);
    // A CPU's own store path logs by RAM offset.
    ram.logWrite(4 * GiB + 2 * PAGE + 8);
    expect(ram.fetchAndClearDirty()).toEqual([PAGE_4G + 2]);
    expect(ram.read64(hpa(BASE + 4 * GiB + PAGE + 16))).toBe(0x1234n);
  });

  it("a walker's A/D write-back to a page table above 4 GiB is logged for that page", () => {
    const ram = new GuestRam(BASE, SIZE);
    const root = BASE + 4 * GiB + PAGE; // the root table, above 4 GiB
    // root[2]: a 1 GiB leaf, VA 0x8000_0000 -> PA 0x8000_0000, A and D clear.
    ram.write64(hpa(root + 2 * 8), (BigInt(BASE / PAGE) << 10n) | BigInt(PTE_V | PTE_R | PTE_W));
    ram.enableDirtyLog();
    const res = new WalkResult();
    const va = BASE + 0x1234;
    expect(
      walkStage1(ram, SATP_MODE_SV39, root / PAGE, 0, va | 0, ACCESS_WRITE, false, false, false, res),
    ).toBe(0);
    expect(res.pagePa).toBe(BASE + 0x1000);
    expect(Number(ram.read64(hpa(root + 16)) & BigInt(PTE_A | PTE_D))).toBe(PTE_A | PTE_D);
    expect(ram.fetchAndClearDirty()).toEqual([PAGE_4G + 1]);
    // And a table entry pointing above 4 GiB translates there.
    ram.write64(hpa(root + 3 * 8), (BigInt((BASE + 4 * GiB - GiB) / PAGE) << 10n) | BigInt(PTE_V | PTE_R));
    expect(
      walkStage1(ram, SATP_MODE_SV39, root / PAGE, 0, 0xc000_0000 | 0, ACCESS_READ, false, false, false, res),
    ).toBe(0);
    expect(res.pagePa).toBe(BASE + 3 * GiB);
  });
});
