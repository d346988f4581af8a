/**
 * Address spaces: Sv39 tables in guest RAM, lazy population, copy-in/out with EFAULT,
 * copy-on-write after fork, protection changes, and no leaked frames.
 */
import {
  ACCESS_READ,
  ACCESS_WRITE,
  GuestRam,
  hpa,
  SATP_MODE_SV39,
  WalkResult,
  walkStage1,
} from "@visor/memory";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LinuxError } from "../src/errno.ts";
import { AddressSpace, Frames, MemObject, PAGE, PROT_READ, PROT_WRITE, Vma } from "../src/mm.ts";

function setup(size = 8 * 1024 * 1024) {
  const ram = new GuestRam(0x80000000, size);
  const frames = new Frames(ram);
  return { ram, frames };
}

const RW = PROT_READ | PROT_WRITE;
const enc = (s: string) => new TextEncoder().encode(s);

/** What the hart's MMU sees for `va` (user access), through the memory package's walker. */
function hwTranslate(mm: AddressSpace, va: number, write: boolean): number {
  const res = new WalkResult();
  const r = walkStage1(
    mm.ram,
    SATP_MODE_SV39,
    mm.rootPpn,
    Math.floor(va / 2 ** 32),
    (va % 2 ** 32) | 0,
    write ? ACCESS_WRITE : ACCESS_READ,
    true,
    false,
    false,
    res,
  );
  return r === 0 ? res.pagePa + (va % PAGE) : -r;
}

describe("address spaces", () => {
  it("populates anonymous memory lazily and the hart's walker agrees with the kernel", () => {
    const { frames } = setup();
    const mm = new AddressSpace(frames);
    const before = frames.used;
    mm.insert(new Vma(0x10000, 0x20000, RW, false, undefined, 0, "anon"));
    expect(frames.used).toBe(before);
    expect(hwTranslate(mm, 0x10010, false)).toBe(-13); // load page fault: nothing mapped yet
    mm.copyOut(0x10ffe, enc("abcd")); // crosses a page boundary
    expect(new TextDecoder().decode(mm.copyIn(0x10ffe, 4))).toBe("abcd");
    const pa = hwTranslate(mm, 0x11000, true);
    expect(pa).toBeGreaterThan(0);
    expect(mm.ram.read8(hpa(pa))).toBe("c".charCodeAt(0));
    expect(hwTranslate(mm, 0x30000, false)).toBe(-13);
    mm.destroy();
    expect(frames.used).toBe(before - 1); // the root table of this space was counted in `before`
  });

  it("returns EFAULT for unmapped or forbidden user memory", () => {
    const { frames } = setup();
    const mm = new AddressSpace(frames);
    mm.insert(new Vma(0x10000, 0x11000, PROT_READ, false, undefined, 0, "ro"));
    const efault = (fn: () => void) => {
      try {
        fn();
      } catch (e) {
        return e instanceof LinuxError ? e.errno : -1;
      }
      return 0;
    };
    expect(efault(() => mm.copyIn(0x10000, 16))).toBe(0);
    expect(efault(() => mm.copyOut(0x10000, enc("x")))).toBe(14);
    expect(efault(() => mm.copyIn(0x10ff0, 32))).toBe(14); // runs into unmapped memory
    expect(efault(() => mm.copyIn(2 ** 38 - 4, 8))).toBe(14); // beyond the user half
    expect(efault(() => mm.readCString(0x5000))).toBe(14);
    expect(mm.userOff(-1, false)).toBe(-1);
  });

  it("fork shares pages copy-on-write, and frees everything afterwards", () => {
    const { frames } = setup();
    const baseline = frames.used;
    const parent = new AddressSpace(frames);
    parent.insert(new Vma(0x10000, 0x14000, RW, false, undefined, 0, "data"));
    parent.copyOut(0x10000, enc("parent-data"));
    parent.copyOut(0x13000, enc("untouched"));
    const child = parent.fork();
    // Both see the same frame until one writes.
    expect(hwTranslate(child, 0x10000, false)).toBe(hwTranslate(parent, 0x10000, false));
    expect(hwTranslate(child, 0x10000, true)).toBe(-15); // store page fault: copy-on-write
    child.copyOut(0x10000, enc("child"));
    expect(new TextDecoder().decode(parent.copyIn(0x10000, 11))).toBe("parent-data");
    expect(new TextDecoder().decode(child.copyIn(0x10000, 5))).toBe("child");
    expect(hwTranslate(child, 0x10000, false)).not.toBe(hwTranslate(parent, 0x10000, false));
    expect(hwTranslate(child, 0x13000, false)).toBe(hwTranslate(parent, 0x13000, false));
    // The parent's page is its own again: the write is in place, no copy.
    const cow = parent.stats.cowCopies;
    parent.copyOut(0x10000, enc("P"));
    expect(parent.stats.cowCopies).toBe(cow);
    child.destroy();
    parent.destroy();
    expect(frames.used).toBe(baseline);
  });

  it("shared mappings stay shared across fork; mprotect and munmap take effect", () => {
    const { frames } = setup();
    const baseline = frames.used;
    const a = new AddressSpace(frames);
    const obj = new MemObject(frames, 1);
    obj.addUser();
    a.insert(new Vma(0x20000, 0x21000, RW, true, obj, 0, "shm"));
    const b = a.fork();
    b.copyOut(0x20010, enc("hello"));
    expect(new TextDecoder().decode(a.copyIn(0x20010, 5))).toBe("hello");
    a.protect(0x20000, 0x21000, PROT_READ);
    expect(hwTranslate(a, 0x20010, true)).toBe(-15);
    expect(() => a.copyOut(0x20010, enc("x"))).toThrow(LinuxError);
    expect(new TextDecoder().decode(a.copyIn(0x20010, 5))).toBe("hello");
    b.unmap(0x20000, 0x21000);
    expect(hwTranslate(b, 0x20010, false)).toBe(-13);
    a.destroy();
    b.destroy();
    expect(frames.used).toBe(baseline);
  });

  it("PROT_NONE hides a page and keeps its contents for later", () => {
    const { frames } = setup();
    const mm = new AddressSpace(frames);
    mm.insert(new Vma(0x10000, 0x11000, RW, false, undefined, 0, "x"));
    mm.copyOut(0x10000, enc("kept"));
    mm.protect(0x10000, 0x11000, 0);
    expect(hwTranslate(mm, 0x10000, false)).toBe(-13);
    expect(() => mm.copyIn(0x10000, 4)).toThrow(LinuxError);
    mm.protect(0x10000, 0x11000, RW);
    expect(new TextDecoder().decode(mm.copyIn(0x10000, 4))).toBe("kept");
    mm.destroy();
  });

  it("finds free ranges top-down and respects fixed mappings", () => {
    const { frames } = setup();
    const mm = new AddressSpace(frames);
    mm.mmapBase = 0x100000;
    const a = mm.findFree(0x3000, 0);
    expect(a).toBe(0x100000 - 0x3000);
    mm.insert(new Vma(a, a + 0x3000, RW, false, undefined, 0, "a"));
    const b = mm.findFree(0x1000, 0);
    expect(b).toBe(a - 0x1000);
    expect(mm.isFree(a, a + 1)).toBe(false);
    // A hint that is free is honoured.
    expect(mm.findFree(0x1000, 0x50000)).toBe(0x50000);
    mm.destroy();
  });

  it("model check: random mmap/munmap/mprotect/write/read/fork sequences agree with a byte model", () => {
    type Op =
      | { k: "map"; page: number; n: number }
      | { k: "unmap"; page: number; n: number }
      | { k: "ro"; page: number; n: number }
      | { k: "rw"; page: number; n: number }
      | { k: "write"; page: number; off: number; v: number }
      | { k: "fork" };
    const page = fc.integer({ min: 0, max: 15 });
    const n = fc.integer({ min: 1, max: 4 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant("map" as const), page, n }),
      fc.record({ k: fc.constant("unmap" as const), page, n }),
      fc.record({ k: fc.constant("ro" as const), page, n }),
      fc.record({ k: fc.constant("rw" as const), page, n }),
      fc.record({
        k: fc.constant("write" as const),
        page,
        off: fc.integer({ min: 0, max: 4095 }),
        v: fc.integer({ min: 1, max: 255 }),
      }),
      fc.constant({ k: "fork" as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const { frames } = setup(4 * 1024 * 1024);
        const baseline = frames.used;
        const BASE = 0x40000;
        let mm = new AddressSpace(frames);
        const olds: AddressSpace[] = [];
        // Model: per page, undefined = unmapped, else { writable, bytes }.
        let model: ({ w: boolean; bytes: Map<number, number> } | undefined)[] = new Array(16).fill(undefined);
        for (const o of ops) {
          if (o.k === "fork") {
            olds.push(mm);
            mm = mm.fork();
            model = model.map((p) => (p === undefined ? undefined : { w: p.w, bytes: new Map(p.bytes) }));
            continue;
          }
          if (o.k === "write") {
            const p = model[o.page];
            let threw = false;
            try {
              mm.writeU8(BASE + o.page * PAGE + o.off, o.v);
            } catch {
              threw = true;
            }
            expect(threw).toBe(p === undefined || !p.w);
            if (p?.w) p.bytes.set(o.off, o.v);
            continue;
          }
          const end = Math.min(16, o.page + o.n);
          if (o.k === "map") {
            mm.insert(new Vma(BASE + o.page * PAGE, BASE + end * PAGE, RW, false, undefined, 0, "m"));
            for (let i = o.page; i < end; i++) model[i] = { w: true, bytes: new Map() };
          } else if (o.k === "unmap") {
            mm.unmap(BASE + o.page * PAGE, BASE + end * PAGE);
            for (let i = o.page; i < end; i++) model[i] = undefined;
          } else {
            const all = model.slice(o.page, end).every((p) => p !== undefined);
            let threw = false;
            try {
              mm.protect(BASE + o.page * PAGE, BASE + end * PAGE, o.k === "ro" ? PROT_READ : RW);
            } catch {
              threw = true;
            }
            expect(threw).toBe(!all);
            if (all) for (let i = o.page; i < end; i++) model[i]!.w = o.k === "rw";
          }
        }
        // Every byte reads back as the model says (through the kernel path and the MMU walk).
        for (let i = 0; i < 16; i++) {
          const p = model[i];
          const va = BASE + i * PAGE;
          if (p === undefined) {
            expect(() => mm.readU8(va)).toThrow(LinuxError);
            continue;
          }
          const want = new Uint8Array(PAGE);
          for (const [off, v] of p.bytes) want[off] = v;
          expect(mm.copyIn(va, PAGE)).toEqual(want);
          expect(hwTranslate(mm, va, false)).toBeGreaterThan(0);
          // A read-only page must never be writable by the hart (a writable one may still fault: COW).
          if (!p.w) expect(hwTranslate(mm, va, true)).toBeLessThan(0);
        }
        mm.destroy();
        for (const o of olds) o.destroy();
        expect(frames.used).toBe(baseline);
      }),
      { numRuns: 100 },
    );
  });
});
