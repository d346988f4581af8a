import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { hostInitrd } from "../../src/boot/initrd.ts";

const cpio = new TextEncoder().encode(`${"070701".padEnd(110, "0")}TRAILER!!!\0`);

describe("hostInitrd", () => {
  it("decompresses a gzip initramfs on the host", async () => {
    expect(await hostInitrd(new Uint8Array(gzipSync(cpio)), 1 << 20)).toEqual(cpio);
  });

  it("passes anything else through unchanged: plain, corrupt, or too large", async () => {
    expect(await hostInitrd(cpio, 1 << 20)).toBe(cpio);
    const corrupt = new Uint8Array(gzipSync(cpio));
    corrupt[corrupt.length - 5]! ^= 0xff; // the CRC no longer matches
    expect(await hostInitrd(corrupt, 1 << 20)).toBe(corrupt);
    const big = new Uint8Array(gzipSync(new Uint8Array(4096)));
    expect(await hostInitrd(big, 1024)).toBe(big);
  });
});
