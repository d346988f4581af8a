import { GuestMemory } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { VirtioMmio } from "../../src/virtio/mmio.ts";
import { VIRTIO_RNG_MAX_REQUEST, VirtioRng, webCryptoEntropy } from "../../src/virtio/rng.ts";
import { GuestAllocator, MmioDriver } from "../virtio-driver.ts";

const BASE = 0x8000_0000;

function setup(rng: VirtioRng) {
  const ram = GuestMemory.allocate(BASE, 1 << 20);
  const mmio = new VirtioMmio({ device: rng, ram });
  const drv = new MmioDriver(mmio, ram, new GuestAllocator(BASE, BASE + (1 << 20)));
  const [q] = drv.bringUp(1);
  return { drv, q: q! };
}

describe("VirtioRng", () => {
  it("fills every writable buffer of a request from the entropy source", () => {
    let n = 0;
    const rng = new VirtioRng({
      entropy: (b) => {
        for (let i = 0; i < b.length; i++) b[i] = (n++ * 13) & 0xff;
      },
    });
    const { drv, q } = setup(rng);
    expect(drv.regs.read(0x008, 4)).toBe(4);
    q.post([{ in: 5 }, { in: 3 }]);
    drv.kick(0);
    const [u] = q.takeUsed();
    expect(u!.len).toBe(8);
    expect(Array.from(u!.data[0]!)).toEqual([0, 13, 26, 39, 52]);
    expect(Array.from(u!.data[1]!)).toEqual([65, 78, 91]);
    expect(rng.bytesServed).toBe(8);
  });

  it("caps one request at 64 KiB", () => {
    const { drv, q } = setup(new VirtioRng({ entropy: (b) => b.fill(9) }));
    q.post([{ in: VIRTIO_RNG_MAX_REQUEST + 100 }]);
    drv.kick(0);
    expect(q.takeUsed()[0]!.len).toBe(VIRTIO_RNG_MAX_REQUEST);
  });

  it("defaults to crypto.getRandomValues, in pieces of at most 64 KiB", () => {
    const big = new Uint8Array(200_000);
    webCryptoEntropy(big);
    // 200 000 random bytes all zero would mean nothing was written.
    expect(big.some((b) => b !== 0)).toBe(true);
    expect(big.subarray(150_000).some((b) => b !== 0)).toBe(true);
  });

  it("has no state to save", () => {
    const rng = new VirtioRng();
    rng.fromState(rng.toState());
    expect(rng.toState()).toEqual({});
  });
});
