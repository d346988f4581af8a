/// <reference types="node" />
/**
 * Guest programs written for this package (fixtures/guests/*.c, rebuilt by build.sh):
 * - iouring: drives io_uring through its mmapped rings (no liburing);
 * - sysprobe: processes, signals, memory, descriptors, readiness and errno values.
 * Both print TAP lines and exit 0 only when every check passed; build.sh confirmed the
 * same checks on the host's Linux kernel (and sysprobe under qemu-riscv64).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runGuest } from "./harness.ts";
import { FIXTURES } from "./root.ts";

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

function rootWith(...programs: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "visor-guests-"));
  roots.push(dir);
  fs.mkdirSync(path.join(dir, "tmp"));
  for (const p of programs) {
    fs.copyFileSync(path.join(FIXTURES, "guests", p), path.join(dir, p));
    fs.chmodSync(path.join(dir, p), 0o755);
  }
  return dir;
}

function tap(out: string): { ok: number; notOk: string[]; plan: number } {
  const lines = out.split("\n");
  const plan = Number(/^1\.\.(\d+)$/m.exec(out)?.[1] ?? -1);
  return {
    ok: lines.filter((l) => l.startsWith("ok ")).length,
    notOk: lines.filter((l) => l.startsWith("not ok")),
    plan,
  };
}

const SYSROOT = "/usr/riscv64-linux-gnu/lib";

describe("guest programs", () => {
  it("io_uring through its rings: every check passes", async () => {
    const root = rootWith("iouring");
    const r = await runGuest(root, ["/iouring"]);
    const t = tap(r.stdout);
    expect(t.notOk).toEqual([]);
    expect(t.plan).toBe(34);
    expect(t.ok).toBe(34);
    expect(r.status).toBe(0);
    // Eight writes went through a single io_uring_enter: the whole program needs few calls.
    const enter = r.stats!.perSyscall.find((s) => s.name === "io_uring_enter");
    expect(enter?.count).toBe(16);
    expect(fs.existsSync(path.join(root, "tmp", "uring.dat"))).toBe(false);
  });

  it("sysprobe: processes, signals, memory, descriptors, readiness", async () => {
    const root = rootWith("sysprobe");
    const r = await runGuest(root, ["/sysprobe"]);
    const t = tap(r.stdout);
    expect(t.notOk).toEqual([]);
    expect(t.ok).toBe(t.plan);
    expect(t.plan).toBeGreaterThanOrEqual(60);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stats!.processes).toBeGreaterThanOrEqual(10);
    expect(r.stats!.cowCopies).toBeGreaterThan(0);
  });

  it("threads: mutexes, condition variables, TLS, signals, exit/exec/fork from threads", async () => {
    const root = rootWith("threads");
    const r = await runGuest(root, ["/threads"]);
    const t = tap(r.stdout);
    expect(t.notOk).toEqual([]);
    expect(t.plan).toBe(10);
    expect(t.ok).toBe(10);
    expect(r.status).toBe(0);
  });

  it("batching cures: the same bytes cost one call each, a handful, a few dozen, or none", async () => {
    const root = rootWith("syscost");
    const calls = async (mode: string, name: string, n = 20000) => {
      const r = await runGuest(root, ["/syscost", mode, String(n)]);
      expect(r.stdout).toBe(`${mode} ${n}\n`);
      expect(r.status).toBe(0);
      return r.stats!.perSyscall.find((s) => s.name === name)?.count ?? 0;
    };
    expect(await calls("write1", "write")).toBe(20001); // + the final report line
    expect(await calls("stdio", "write")).toBeLessThanOrEqual(7); // 4 KiB buffer: 5 flushes + report
    expect(await calls("writev", "writev")).toBe(20); // 1024 iovecs per call
    expect(await calls("uring", "io_uring_enter")).toBe(79); // 256 SQEs per call
    expect(await calls("sqpoll", "io_uring_enter", 2560)).toBe(0); // the kernel polls the SQ ring
  });

  it("loads a static-PIE executable at a base of its own choosing", async () => {
    const root = rootWith("spie");
    const r = await runGuest(root, ["/spie"]);
    expect(r.stdout).toBe("static-pie: high ok\n");
    expect(r.status).toBe(0);
  });

  it.skipIf(!fs.existsSync(`${SYSROOT}/ld-linux-riscv64-lp64d.so.1`))(
    "runs a dynamically linked program through its ELF interpreter (needs the riscv64 glibc sysroot of gcc-riscv64-linux-gnu)",
    async () => {
      const root = rootWith("dynhello");
      fs.mkdirSync(path.join(root, "lib"));
      for (const f of ["ld-linux-riscv64-lp64d.so.1", "libc.so.6", "libm.so.6"]) {
        fs.copyFileSync(path.join(SYSROOT, f), path.join(root, "lib", f));
      }
      const r = await runGuest(root, ["/dynhello", "x"]);
      expect(r.stdout).toBe("dynamic /dynhello: sqrt(2) = 1.414214, argc = 2\n");
      expect(r.status).toBe(3);
      expect(r.stats!.perSyscall.find((s) => s.name === "mmap")!.count).toBeGreaterThan(3);
    },
  );
});
