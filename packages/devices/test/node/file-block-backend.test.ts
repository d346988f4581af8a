/// <reference types="node" />
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestMemory } from "@visor/memory";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileBlockBackend } from "../../src/node/file-block-backend.ts";
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_OUT, VirtioBlk } from "../../src/virtio/blk.ts";
import { VirtioMmio } from "../../src/virtio/mmio.ts";
import { GuestAllocator, MmioDriver } from "../virtio-driver.ts";

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "visor-disk-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function image(bytes: number): string {
  const p = join(dir, "disk.img");
  writeFileSync(
    p,
    new Uint8Array(bytes).map((_, i) => i & 0xff),
  );
  return p;
}

describe("FileBlockBackend", () => {
  it("reads, writes at positions and flushes a raw image file", () => {
    const p = image(4096);
    const f = new FileBlockBackend(p);
    expect(f.size).toBe(4096);
    const dst = new Uint8Array(4);
    f.read(510, dst);
    expect(Array.from(dst)).toEqual([254, 255, 0, 1]);
    f.write(1024, Uint8Array.of(9, 8, 7));
    f.flush();
    f.close();
    expect(Array.from(readFileSync(p).subarray(1024, 1027))).toEqual([9, 8, 7]);
    expect(() => f.read(0, dst)).toThrow(/closed/);
  });

  it("refuses writes when read-only", () => {
    const f = new FileBlockBackend(image(1024), { readonly: true });
    expect(f.readonly).toBe(true);
    expect(() => f.write(0, Uint8Array.of(1))).toThrow(/read-only/);
    f.flush();
    f.close();
  });

  it("fails with one clear line for a missing file or a directory", () => {
    expect(() => new FileBlockBackend(join(dir, "nope.img"))).toThrow(
      /^cannot open disk image .*nope\.img: ENOENT/,
    );
    expect(() => new FileBlockBackend(dir, { readonly: true })).toThrow(/is not a regular file/);
  });

  it("serves a guest write through virtio-blk into the host file; a read-only disk refuses", () => {
    const p = image(8192);
    for (const readonly of [false, true]) {
      const ram = GuestMemory.allocate(0x8000_0000, 1 << 20);
      const backend = new FileBlockBackend(p, { readonly });
      const mmio = new VirtioMmio({ device: new VirtioBlk({ backend }), ram });
      const drv = new MmioDriver(mmio, ram, new GuestAllocator(0x8000_0000, 0x8010_0000));
      const [q] = drv.bringUp(1);
      const h = new Uint8Array(16);
      h[0] = VIRTIO_BLK_T_OUT;
      h[8] = 2;
      q!.post([{ out: h }, { out: new Uint8Array(512).fill(readonly ? 0x77 : 0x55) }, { in: 1 }]);
      drv.kick(0);
      expect(q!.takeUsed()[0]!.data[0]![0]).toBe(readonly ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
      backend.close();
    }
    const after = readFileSync(p);
    expect(after.subarray(1024, 1536).every((b) => b === 0x55)).toBe(true);
  });
});
