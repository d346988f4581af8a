/// <reference types="node" />
/**
 * io_uring submission entries are guest-controlled: random SQEs must complete with a
 * result or a Linux errno, never a host exception. Random system calls (with stale
 * directories, swaps and renames between calls) are the `syscall` fuzz surface
 * (apps/fuzz/src/surfaces/syscall.ts), run by `pnpm fuzz syscall` and by `pnpm test`.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { createKernel, type HostConsole, NR, spawnInit } from "../src/index.ts";
import { createNodeHost } from "../src/node/index.ts";
import { TASK_RUNNING } from "../src/task.ts";
import { makeRoot } from "./root.ts";

const bases: string[] = [];
/** A fresh root per test (the fuzzer is free to wreck it) next to a file it must not reach. */
function freshRoot(): { base: string; root: string } {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "visor-fuzz-"));
  bases.push(base);
  const root = path.join(base, "root");
  fs.mkdirSync(root);
  makeRoot(root);
  fs.writeFileSync(path.join(base, "outside.txt"), "outside");
  return { base, root };
}
afterAll(() => {
  for (const b of bases) fs.rmSync(b, { recursive: true, force: true });
});

/** A console that discards output (the fuzzer writes megabytes of guest memory to it). */
class NullConsole implements HostConsole {
  written = 0;
  write(_fd: 1 | 2, data: Uint8Array): void {
    this.written += data.length;
  }
  read(dst: Uint8Array): number {
    if (dst.length > 0) dst[0] = 10;
    return Math.min(1, dst.length);
  }
  hasInput(): boolean {
    return true;
  }
  isatty(): boolean {
    return false;
  }
  windowSize(): undefined {
    return undefined;
  }
  setRawMode(): void {}
}

describe("io_uring fuzzing", () => {
  it("random SQEs in the io_uring submission ring complete with a result or an errno", () => {
    const { base, root } = freshRoot();
    const host = createNodeHost({ root, console: new NullConsole() });
    const k = createKernel({ host, memoryBytes: 64 * 1024 * 1024, warn: () => {} });
    const t = spawnInit(k, "/bin/busybox", ["busybox"], [], "/");
    const h = t.hart;
    const sp = Number(h.getX(2));
    const sys = (nr: number, ...args: (number | bigint)[]): bigint => {
      h.setX(17, BigInt(nr));
      args.forEach((v, i) => {
        h.setX(10 + i, BigInt(v));
      });
      k.syscall(t);
      t.restart = false;
      t.state = TASK_RUNNING;
      t.blockCtx = undefined;
      return BigInt.asIntN(64, h.getX(10));
    };
    const params = sp - 8192;
    t.mm.zeroOut(params, 120);
    const fd = Number(sys(NR.io_uring_setup!, 8, params));
    expect(fd).toBeGreaterThanOrEqual(0);
    const dv = new DataView(t.mm.copyIn(params, 120).buffer);
    const sqTail = dv.getUint32(44, true);
    const sqArray = dv.getUint32(64, true);
    const cqTail = dv.getUint32(84, true);
    const ring = Number(sys(NR.mmap!, 0, 4096, 3, 1, fd, 0));
    const sqes = Number(sys(NR.mmap!, 0, 8 * 64, 3, 1, fd, 0x10000000));
    expect(ring > 0 && sqes > 0).toBe(true);
    t.mm.copyOut(sp - 4096, new TextEncoder().encode("/data/words.txt\0"));
    const sqe = fc.record({
      opcode: fc.integer({ min: 0, max: 60 }),
      flags: fc.integer({ min: 0, max: 127 }),
      fd: fc.integer({ min: -2, max: 8 }),
      off: fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
      addr: fc.oneof(fc.constant(BigInt(sp - 4096)), fc.bigInt({ min: 0n, max: 0xffffffffffffffffn })),
      len: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constant(0xffffffff)),
      rw: fc.integer({ min: 0, max: 0xffffffff }),
      bufIndex: fc.integer({ min: 0, max: 3 }),
    });
    let tail = 0;
    fc.assert(
      fc.property(fc.array(sqe, { minLength: 1, maxLength: 8 }), (batch) => {
        for (let i = 0; i < batch.length; i++) {
          const s = batch[i]!;
          const slot = (tail + i) & 7;
          const b = new Uint8Array(64);
          const v = new DataView(b.buffer);
          v.setUint8(0, s.opcode);
          v.setUint8(1, s.flags);
          v.setInt32(4, s.fd, true);
          v.setBigUint64(8, s.off, true);
          v.setBigUint64(16, s.addr, true);
          v.setUint32(24, s.len, true);
          v.setUint32(28, s.rw, true);
          v.setBigUint64(32, BigInt(i), true);
          v.setUint16(40, s.bufIndex, true);
          t.mm.copyOut(sqes + slot * 64, b);
          t.mm.writeU32(ring + sqArray + slot * 4, slot);
        }
        tail += batch.length;
        t.mm.writeU32(ring + sqTail, tail);
        const r = sys(NR.io_uring_enter!, fd, batch.length, 0, 0, 0, 0);
        expect(r).toBeGreaterThanOrEqual(0n);
        // Completions carry errno values, never a host exception; consume them all.
        const produced = t.mm.readU32(ring + cqTail);
        const cqes = ring + dv.getUint32(100, true);
        for (let c = Math.max(0, produced - 16); c < produced; c++) {
          expect(t.mm.readI32(cqes + (c % 16) * 16 + 8)).toBeGreaterThanOrEqual(-4095);
        }
        t.mm.writeU32(ring + dv.getUint32(80, true), produced);
      }),
      { numRuns: 500 },
    );
    host.close();
    // SQEs name paths and fds at random: nothing beside the root was changed or added.
    expect(fs.readdirSync(base).sort()).toEqual(["outside.txt", "root"]);
    expect(fs.readFileSync(path.join(base, "outside.txt"), "utf8")).toBe("outside");
  });
});
