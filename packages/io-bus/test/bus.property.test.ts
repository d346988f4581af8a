import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UNMAPPED } from "../src/bus.ts";
import type { NarrowAccessSize } from "../src/device.ts";
import { MMIO_LIMIT, MmioBus } from "../src/mmio.ts";
import { PORT_LIMIT, PortBus } from "../src/pio.ts";
import { RecordingDevice } from "./recording-device.ts";

interface ModelRange {
  base: number;
  end: number;
  dev: RecordingDevice;
}

type Op =
  | { kind: "register"; base: number; length: number; widths: number }
  | { kind: "unregisterDevice"; pick: number }
  | { kind: "unregisterBase"; pick: number };

/** Registrations crowded into a small window so that overlaps are common. */
const opArb = (window: number): fc.Arbitrary<Op> =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("register" as const),
        base: fc.nat({ max: window - 1 }),
        length: fc.integer({ min: 1, max: 96 }),
        widths: fc.integer({ min: 1, max: 7 }), // any non-empty mask of 1, 2, 4
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("unregisterDevice" as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("unregisterBase" as const), pick: fc.nat() }) },
  );

/** Where the crowded window sits: low memory, across 2^32, and at the top of the MMIO space. */
const originArb = fc.constantFrom(0, 2 ** 32 - 0x100, MMIO_LIMIT - 0x400);

/** Apply ops to a bus and to a plain model, checking each outcome; returns the model. */
function applyOps(bus: MmioBus | PortBus, origin: number, ops: Op[]): ModelRange[] {
  const model: ModelRange[] = [];
  let serial = 0;
  for (const op of ops) {
    if (op.kind === "register") {
      const base = origin + op.base;
      const end = base + op.length;
      const dev = new RecordingDevice(`d${serial++}`, op.length, op.widths);
      const clashes = model.filter((r) => r.base < end && base < r.end).map((r) => r.dev.name);
      const outside = end > bus.limit;
      if (clashes.length > 0 || outside) {
        // The bus names one of the ranges it overlaps (a neighbour of the insertion point).
        const message = outside ? /length of/ : new RegExp(`overlaps "(${clashes.join("|")})"`);
        expect(() => bus.register(base, op.length, dev)).toThrow(message);
      } else {
        bus.register(base, op.length, dev);
        model.push({ base, end, dev });
      }
    } else if (model.length === 0) {
      expect(() => bus.unregister(origin)).toThrow(/no device is registered/);
    } else {
      const [victim] = model.splice(op.pick % model.length, 1);
      const removed =
        op.kind === "unregisterDevice" ? bus.unregister(victim!.dev) : bus.unregister(victim!.base);
      expect(removed).toBe(victim!.dev);
    }
    // Invariant: the bus's ranges are the model's, sorted and pairwise disjoint.
    const ranges = bus.ranges();
    for (let i = 1; i < ranges.length; i++) {
      expect(ranges[i - 1]!.base + ranges[i - 1]!.length).toBeLessThanOrEqual(ranges[i]!.base);
    }
    expect(ranges.map((r) => r.device)).toEqual([...model].sort((a, b) => a.base - b.base).map((r) => r.dev));
  }
  return model;
}

const sizeArb = fc.constantFrom<NarrowAccessSize>(1, 2, 4);

describe("bus properties", () => {
  it("no two registered ranges ever overlap, whatever the register/unregister sequence", () => {
    fc.assert(
      fc.property(originArb, fc.array(opArb(0x200), { maxLength: 60 }), (origin, ops) => {
        applyOps(new MmioBus(), origin, ops);
      }),
      { numRuns: 300 },
    );
  });

  it("dispatch reaches the owner, and only the owner, with the right offset", () => {
    fc.assert(
      fc.property(
        originArb,
        fc.array(opArb(0x200), { maxLength: 40 }),
        fc.array(
          fc.record({
            off: fc.integer({ min: -8, max: 0x260 }),
            size: sizeArb,
            value: fc.nat(),
            write: fc.boolean(),
          }),
          { maxLength: 60 },
        ),
        (origin, ops, accesses) => {
          const bus = new MmioBus();
          const model = applyOps(bus, origin, ops);
          for (const d of model) d.dev.calls.length = 0;
          for (const { off, size, value, write } of accesses) {
            const addr = origin + off;
            const owner = model.find((r) => r.base <= addr && addr + size <= r.end);
            const widths = owner?.dev.widths ?? 0;
            const minWidth = widths & -widths;
            const result = write ? bus.write(addr, size, value) : bus.read(addr, size);
            if (owner === undefined || size < minWidth) {
              expect(result).toBe(write ? false : UNMAPPED);
            } else {
              const offset = addr - owner.base;
              // The device's calls cover exactly [offset, offset + size), ascending.
              let next = offset;
              for (const c of owner.dev.calls) {
                expect(c.offset).toBe(next);
                next += c.op === "read" || c.op === "write" ? c.size : 8;
              }
              expect(next).toBe(offset + size);
              if (write) {
                expect(result).toBe(true);
                expect(bus.read(addr, size)).toBe((value % 2 ** (8 * size)) >>> 0);
              } else {
                let expected = 0;
                for (let i = size - 1; i >= 0; i--) expected = expected * 256 + owner.dev.bytes[offset + i]!;
                expect(result).toBe(expected);
              }
            }
            for (const r of model) {
              if (r !== owner) expect(r.dev.calls).toEqual([]);
              r.dev.calls.length = 0;
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("the port window never escapes 16 bits", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            base: fc.integer({ min: 0, max: 0x1_ffff }),
            length: fc.integer({ min: 1, max: 0x2_0000 }),
          }),
          { maxLength: 12 },
        ),
        fc.array(
          fc.record({ port: fc.integer({ min: 0, max: 0x1_ffff }), size: sizeArb, write: fc.boolean() }),
          {
            maxLength: 60,
          },
        ),
        (regs, accesses) => {
          const bus = new PortBus();
          const placed: { base: number; dev: RecordingDevice }[] = [];
          regs.forEach(({ base, length }, i) => {
            const dev = new RecordingDevice(`p${i}`, Math.min(length, PORT_LIMIT));
            try {
              bus.register(base, length, dev);
              placed.push({ base, dev });
            } catch {
              // Refused: out of the window or overlapping; checked below.
            }
          });
          for (const r of bus.ranges()) expect(r.base + r.length).toBeLessThanOrEqual(PORT_LIMIT);
          for (const { port, size, write } of accesses) {
            const result = write ? bus.write(port, size, 0) : bus.read(port, size);
            if (port + size > PORT_LIMIT) expect(result).toBe(write ? false : 2 ** (8 * size) - 1);
            // RecordingDevice throws on any offset outside its length; also check the port.
            for (const { base, dev } of placed) {
              for (const c of dev.calls) {
                const size = c.op === "read" || c.op === "write" ? c.size : 8;
                expect(base + c.offset + size).toBeLessThanOrEqual(PORT_LIMIT);
              }
              dev.calls.length = 0;
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("with statistics on, per-device counts add up to the bus totals and every access is accounted for", () => {
    fc.assert(
      fc.property(
        fc.array(
          opArb(0x200).filter((op) => op.kind === "register"),
          { maxLength: 20 },
        ),
        fc.array(fc.record({ off: fc.integer({ min: 0, max: 0x260 }), size: sizeArb, write: fc.boolean() }), {
          maxLength: 60,
        }),
        (ops, accesses) => {
          const bus = new MmioBus();
          applyOps(bus, 0, ops);
          bus.enableStats();
          for (const { off, size, write } of accesses) {
            if (write) bus.write(off, size, 0);
            else bus.read(off, size);
          }
          const s = bus.stats();
          const sum = (k: "reads" | "writes" | "bytesRead" | "bytesWritten") =>
            s.devices.reduce((acc, d) => acc + d[k], 0);
          expect(sum("reads")).toBe(s.reads);
          expect(sum("writes")).toBe(s.writes);
          expect(sum("bytesRead")).toBe(s.bytesRead);
          expect(sum("bytesWritten")).toBe(s.bytesWritten);
          expect(s.reads + s.unmappedReads).toBe(accesses.filter((a) => !a.write).length);
          expect(s.writes + s.unmappedWrites).toBe(accesses.filter((a) => a.write).length);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a write fires a listener exactly when address, size and (if set) value match", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({
            addr: fc.nat({ max: 15 }),
            size: sizeArb,
            value: fc.option(fc.nat({ max: 3 }), { nil: undefined }),
          }),
          { selector: (l) => `${l.addr}/${l.size}/${l.value}`, maxLength: 8 },
        ),
        fc.array(fc.record({ addr: fc.nat({ max: 15 }), size: sizeArb, value: fc.nat({ max: 3 }) }), {
          maxLength: 40,
        }),
        (listeners, writes) => {
          const bus = new MmioBus();
          const dev = new RecordingDevice("dev", 0x20);
          bus.register(0, 0x20, dev);
          const fired: number[] = [];
          listeners.forEach((l, i) => {
            bus.addWriteListener(l.addr, l.size, () => fired.push(i), l.value);
          });
          for (const w of writes) {
            fired.length = 0;
            dev.calls.length = 0;
            bus.write(w.addr, w.size, w.value);
            const exact = listeners.findIndex(
              (l) => l.addr === w.addr && l.size === w.size && l.value === w.value,
            );
            const any = listeners.findIndex(
              (l) => l.addr === w.addr && l.size === w.size && l.value === undefined,
            );
            const expected = exact >= 0 ? exact : any;
            expect(fired).toEqual(expected >= 0 ? [expected] : []);
            expect(dev.calls.length).toBe(expected >= 0 ? 0 : 1);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
