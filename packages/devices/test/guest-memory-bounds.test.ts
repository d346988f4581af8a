/**
 * Virtqueues against a GuestMemory that is followed, in the same host buffer, by memory
 * that is not the guest's (the hypervisor's page-table pool on a real machine): ring areas
 * straddling the end of guest RAM or placed where 64-bit arithmetic would wrap around
 * 2^64 are refused at QueueReady, and a descriptor buffer there is refused when popped;
 * the bytes after guest RAM never change.
 */
import { GuestMemory, GuestRam, gpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../src/irq.ts";
import {
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
  VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
  VIRTIO_MMIO_QUEUE_DRIVER_LOW,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  VIRTQ_DESC_F_WRITE,
} from "../src/virtio/constants.ts";
import { VirtioMmio } from "../src/virtio/mmio.ts";
import { VirtioRng } from "../src/virtio/rng.ts";
import { GuestAllocator, MmioDriver } from "./virtio-driver.ts";

const BASE = 0x8000_0000;
const GUEST = 0x10000;
const HIDDEN = 0x4000;
const END = BASE + GUEST;
const HIDDEN_BYTE = 0xee;
const SIZE = 8;
const TWO32 = 2 ** 32;

function setup() {
  const host = new GuestRam(BASE, GUEST + HIDDEN);
  host.u8.fill(HIDDEN_BYTE, GUEST);
  const ram = new GuestMemory(host, GUEST);
  const errors: string[] = [];
  const mmio = new VirtioMmio({
    device: new VirtioRng({ entropy: (b) => b.fill(0x42) }),
    ram,
    irq: new IrqLevel(),
    onError: (m) => errors.push(m),
  });
  const drv = new MmioDriver(mmio, ram, new GuestAllocator(BASE + 0x8000, END));
  const hiddenIntact = () => host.u8.subarray(GUEST).every((b) => b === HIDDEN_BYTE);
  return { host, ram, mmio, drv, errors, hiddenIntact };
}

/** Program queue 0's three areas (64-bit addresses as numbers or exact bigints) and set QueueReady. */
function place(mmio: VirtioMmio, desc: bigint, driver: bigint, device: bigint): void {
  const w = (lo: number, hi: number, v: bigint) => {
    mmio.write(lo, 4, Number(v % BigInt(TWO32)));
    mmio.write(hi, 4, Number(v / BigInt(TWO32)));
  };
  mmio.write(VIRTIO_MMIO_QUEUE_SEL, 4, 0);
  mmio.write(VIRTIO_MMIO_QUEUE_NUM, 4, SIZE);
  w(VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, desc);
  w(VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, driver);
  w(VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, device);
  mmio.write(VIRTIO_MMIO_QUEUE_READY, 4, 1);
}

const GOOD_DESC = BigInt(BASE);
const GOOD_DRIVER = BigInt(BASE + 0x1000);
const GOOD_DEVICE = BigInt(BASE + 0x2000);
const U64 = 1n << 64n;

describe("virtqueues at the edge of guest RAM", () => {
  const cases: [string, bigint, bigint, bigint][] = [
    ["a descriptor table straddling the end of guest RAM", BigInt(END - 64), GOOD_DRIVER, GOOD_DEVICE],
    ["a driver area straddling the end of guest RAM", GOOD_DESC, BigInt(END - 8), GOOD_DEVICE],
    ["a device area straddling the end of guest RAM", GOOD_DESC, GOOD_DRIVER, BigInt(END - 16)],
    ["a descriptor table just below 2^64 (its end wraps to 0)", U64 - 64n, GOOD_DRIVER, GOOD_DEVICE],
    [
      "a device area at 2^64 - 16 + RAM base (wraps into RAM)",
      GOOD_DESC,
      GOOD_DRIVER,
      U64 - 16n + BigInt(BASE),
    ],
    [
      "a driver area at 2^53 + RAM base (not exact as a number)",
      GOOD_DESC,
      (1n << 53n) + BigInt(BASE) + 2n,
      GOOD_DEVICE,
    ],
  ];
  for (const [name, desc, driver, device] of cases) {
    it(`refuses ${name} at QueueReady`, () => {
      const { mmio, drv, errors, hiddenIntact } = setup();
      expect(drv.negotiate()).toBe(true);
      place(mmio, desc, driver, device);
      expect(mmio.deviceStatus & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
      expect(errors.join("\n")).toMatch(/outside RAM/);
      expect(hiddenIntact()).toBe(true);
    });
  }

  for (const [name, addr] of [
    ["just past guest RAM", BigInt(END)],
    ["straddling the end of guest RAM", BigInt(END - 16)],
    ["at 2^64 - 32 (its end wraps around)", U64 - 32n],
    ["at 2^53 + RAM base", (1n << 53n) + BigInt(BASE)],
  ] as const) {
    it(`refuses a device-writable buffer ${name}`, () => {
      const { ram, mmio, drv, errors, hiddenIntact } = setup();
      expect(drv.negotiate()).toBe(true);
      const q2 = drv.setupQueue(0, SIZE);
      drv.driverOk();
      ram.write64(gpa(q2.desc), addr);
      ram.write32(gpa(q2.desc + 8), 64);
      ram.write16(gpa(q2.desc + 12), VIRTQ_DESC_F_WRITE);
      q2.publish(0);
      drv.kick(0);
      expect(mmio.deviceStatus & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
      expect(errors.join("\n")).toMatch(/outside RAM/);
      expect(ram.read16(gpa(q2.used + 2))).toBe(0);
      expect(hiddenIntact()).toBe(true);
    });
  }
});
