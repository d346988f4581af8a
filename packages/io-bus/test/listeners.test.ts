import { describe, expect, it } from "vitest";
import { WIDTH_4 } from "../src/device.ts";
import { MmioBus } from "../src/mmio.ts";
import { PortBus } from "../src/pio.ts";
import { RecordingDevice } from "./recording-device.ts";

// virtio-mmio's QueueNotify register sits at offset 0x050 (virtio 1.2, 4.2.2).
const VIRTIO_BASE = 0x1000_1000;
const QUEUE_NOTIFY = VIRTIO_BASE + 0x50;

function virtio() {
  const bus = new MmioBus();
  const dev = new RecordingDevice("virtio-blk@0", 0x200, WIDTH_4);
  bus.register(VIRTIO_BASE, 0x200, dev);
  return { bus, dev };
}

describe("write listeners", () => {
  it("a matching write calls the listener instead of the device", () => {
    const { bus, dev } = virtio();
    const fired: number[] = [];
    bus.addWriteListener(QUEUE_NOTIFY, 4, (v) => fired.push(v));
    expect(bus.write(QUEUE_NOTIFY, 4, 2)).toBe(true);
    expect(bus.write(QUEUE_NOTIFY, 4, -1)).toBe(true);
    expect(fired).toEqual([2, 0xffffffff]);
    expect(dev.calls).toEqual([]);
    // Other addresses, other sizes and reads still reach the device.
    bus.write(QUEUE_NOTIFY + 4, 4, 1);
    bus.read(QUEUE_NOTIFY, 4);
    expect(dev.calls.map((c) => [c.op, c.offset])).toEqual([
      ["write", 0x54],
      ["read", 0x50],
    ]);
  });

  it("matches exactly the size: a narrower write to the same address goes to the device rules", () => {
    const bus = new MmioBus();
    const dev = new RecordingDevice("d", 0x10);
    bus.register(0, 0x10, dev);
    const fired: number[] = [];
    bus.addWriteListener(4, 2, (v) => fired.push(v));
    bus.write(4, 4, 0x12345678);
    bus.write(4, 1, 0x12);
    bus.write(4, 2, 0x1234);
    expect(fired).toEqual([0x1234]);
    expect(dev.calls.map((c) => (c.op === "write" ? c.size : 0))).toEqual([4, 1]);
  });

  it("a value listener fires only for its value and wins over an any-value listener", () => {
    const { bus, dev } = virtio();
    const fired: string[] = [];
    bus.addWriteListener(QUEUE_NOTIFY, 4, (v) => fired.push(`q0:${v}`), 0);
    bus.write(QUEUE_NOTIFY, 4, 1); // no any-value listener yet: the device gets it
    expect(dev.calls).toHaveLength(1);
    bus.addWriteListener(QUEUE_NOTIFY, 4, (v) => fired.push(`any:${v}`));
    bus.write(QUEUE_NOTIFY, 4, 0);
    bus.write(QUEUE_NOTIFY, 4, 1);
    expect(fired).toEqual(["q0:0", "any:1"]);
    expect(dev.calls).toHaveLength(1);
  });

  it("is removable, and the remover is idempotent", () => {
    const { bus, dev } = virtio();
    const fired: number[] = [];
    const remove = bus.addWriteListener(QUEUE_NOTIFY, 4, (v) => fired.push(v));
    expect(bus.writeListenerCount).toBe(1);
    remove();
    remove();
    expect(bus.writeListenerCount).toBe(0);
    bus.write(QUEUE_NOTIFY, 4, 3);
    expect(fired).toEqual([]);
    expect(dev.calls).toHaveLength(1);
    // And it can be added again after removal.
    bus.addWriteListener(QUEUE_NOTIFY, 4, (v) => fired.push(v));
    bus.write(QUEUE_NOTIFY, 4, 4);
    expect(fired).toEqual([4]);
  });

  it("works where no device is mapped, before and after one is registered or removed", () => {
    const bus = new MmioBus();
    const fired: number[] = [];
    bus.addWriteListener(0x5000, 2, (v) => fired.push(v));
    expect(bus.write(0x5000, 2, 7)).toBe(true);
    const dev = new RecordingDevice("late", 0x10);
    bus.register(0x5000, 0x10, dev);
    expect(bus.write(0x5000, 2, 8)).toBe(true);
    bus.unregister(dev);
    expect(bus.write(0x5000, 2, 9)).toBe(true);
    expect(fired).toEqual([7, 8, 9]);
    expect(dev.calls).toEqual([]);
    expect(bus.write(0x5002, 2, 9)).toBe(false);
  });

  it("fires even when the listener's access would be refused by the device's widths", () => {
    const { bus, dev } = virtio();
    const fired: number[] = [];
    bus.addWriteListener(QUEUE_NOTIFY, 2, (v) => fired.push(v));
    expect(bus.write(QUEUE_NOTIFY, 2, 5)).toBe(true);
    expect(fired).toEqual([5]);
    expect(dev.calls).toEqual([]);
  });

  it("does not apply to 8-byte writes", () => {
    const { bus, dev } = virtio();
    const fired: number[] = [];
    bus.addWriteListener(QUEUE_NOTIFY, 4, (v) => fired.push(v));
    bus.write64(QUEUE_NOTIFY, 1n);
    expect(fired).toEqual([]);
    expect(dev.calls).toHaveLength(2);
  });

  it("works on the port bus too (legacy virtio-pci notify is a port write)", () => {
    const bus = new PortBus();
    const dev = new RecordingDevice("virtio-legacy", 0x20);
    bus.register(0xc000, 0x20, dev);
    const fired: number[] = [];
    bus.addWriteListener(0xc010, 2, (v) => fired.push(v));
    bus.write(0xc010, 2, 1);
    expect(fired).toEqual([1]);
    expect(dev.calls).toEqual([]);
  });

  it("is counted separately from device writes", () => {
    const { bus } = virtio();
    bus.addWriteListener(QUEUE_NOTIFY, 4, () => {});
    bus.addWriteListener(0x9000, 4, () => {});
    bus.enableStats();
    bus.write(QUEUE_NOTIFY, 4, 0);
    bus.write(QUEUE_NOTIFY, 4, 0);
    bus.write(VIRTIO_BASE + 0x70, 4, 1);
    bus.write(0x9000, 4, 0); // a listener outside every device counts only on the bus
    const s = bus.stats();
    expect(s).toMatchObject({ writes: 1, listenerWrites: 3, unmappedWrites: 0 });
    expect(s.devices[0]).toMatchObject({ writes: 1, listenerWrites: 2 });
  });

  it("validates its arguments and refuses duplicates", () => {
    const bus = new MmioBus();
    const f = () => {};
    expect(() => bus.addWriteListener(0, 8 as 4, f)).toThrow(
      "MMIO: write listener size must be 1, 2 or 4 bytes, got 8",
    );
    expect(() => bus.addWriteListener(-4, 4, f)).toThrow(/write listener address must be an integer/);
    expect(() => bus.addWriteListener(0, 1, f, 0x100)).toThrow(
      "MMIO: write listener value for a 1-byte write must be an integer in [0, 0x000000ff], got 256",
    );
    expect(() => bus.addWriteListener(0, 4, f, -1)).toThrow(/must be an integer in/);
    expect(() => bus.addWriteListener(0, 4, 5 as unknown as () => void)).toThrow(/must be a function/);
    expect(() => new PortBus().addWriteListener(0xfffe, 4, f)).toThrow(/addr \+ size <= 0x10000/);
    bus.addWriteListener(0x10, 4, f);
    bus.addWriteListener(0x10, 4, f, 1);
    bus.addWriteListener(0x10, 2, f);
    expect(() => bus.addWriteListener(0x10, 4, () => {})).toThrow(
      "MMIO: a 4-byte write listener for any value at 0x00000010 already exists",
    );
    expect(() => bus.addWriteListener(0x10, 4, () => {}, 1)).toThrow(
      /for value 0x00000001 at 0x00000010 already exists/,
    );
  });
});
