/**
 * The decoded-instruction cache above 4 GiB of RAM: a page there is its own page, not the
 * one 4 GiB lower (a 32-bit shift of the RAM offset used to alias the two, so code written
 * above 4 GiB ran as the instructions decoded below). The RAM buffer is hardly touched.
 */
import { GuestRam, hpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { CodeCache } from "../src/code-cache.ts";

const GiB = 2 ** 30;
const PAGE = 4096;

describe("CodeCache above 4 GiB", () => {
  it("keeps pages 4 GiB apart separate", () => {
    const ram = new GuestRam(0x8000_0000, 4 * GiB + 2 * PAGE);
    const cache = new CodeCache(ram);
    const low = cache.page(PAGE);
    expect(cache.isCode(4 * GiB + PAGE)).toBe(false);
    const high = cache.page(4 * GiB + PAGE);
    expect(high).not.toBe(low);
    // Dropping the page above 4 GiB (a store there) leaves the one below decoded.
    cache.invalidatePage(4 * GiB + PAGE);
    expect(cache.isCode(PAGE)).toBe(true);
    expect(cache.isCode(4 * GiB + PAGE)).toBe(false);
    // A device write above 4 GiB drops that page only.
    cache.page(4 * GiB + PAGE);
    ram.write8(hpa(0x8000_0000 + 4 * GiB + PAGE + 8), 1);
    expect(cache.isCode(4 * GiB + PAGE)).toBe(false);
    expect(cache.isCode(PAGE)).toBe(true);
  });
});
