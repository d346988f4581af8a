/**
 * `visor run`'s exit status for each way a guest can end (src/exit-status.ts): the mapping
 * itself, then through the command with tiny guest kernels, each one store to a device:
 * the test finisher's FAIL with a status, its RESET, and a pvpanic report.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { exitStatus } from "../src/exit-status.ts";

const MAIN = join(import.meta.dirname, "../src/main.ts");
const dir = mkdtempSync(join(tmpdir(), "visor-exit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// RV64 encodings (the RISC-V unprivileged ISA, base opcode map).
const lui = (rd: number, imm20: number) => ((imm20 << 12) | (rd << 7) | 0x37) >>> 0;
const addi = (rd: number, rs1: number, imm12: number) =>
  (((imm12 & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13) >>> 0;
const sw = (rs2: number, rs1: number) => ((rs2 << 20) | (rs1 << 15) | (2 << 12) | 0x23) >>> 0;
const J_SELF = 0x6f; // jal x0, 0
const J_OVER_HEADER = 0x0400006f; // jal x0, +64
const A0 = 10;
const A1 = 11;

/**
 * A RISC-V Linux `Image` (the 64-byte header of Documentation/riscv/boot-image-header.rst)
 * whose code stores the 32-bit `value` at the page-aligned physical `addr`, then spins.
 */
function storeKernel(addr: number, value: number): string {
  const lo = (value << 20) >> 20;
  const code = [
    lui(A0, addr >>> 12),
    lui(A1, ((value - lo) >>> 12) & 0xfffff),
    addi(A1, A1, lo),
    sw(A1, A0),
    J_SELF,
  ];
  const image = new Uint8Array(64 + code.length * 4);
  const dv = new DataView(image.buffer);
  dv.setUint32(0, J_OVER_HEADER, true);
  dv.setBigUint64(16, BigInt(image.length), true); // image_size
  dv.setUint32(32, 2, true); // header version 0.2
  dv.setUint32(56, 0x05435352, true); // magic2 "RSC\x05"
  for (const [i, w] of code.entries()) dv.setUint32(64 + 4 * i, w, true);
  const file = join(dir, `store-${addr.toString(16)}-${value.toString(16)}.bin`);
  writeFileSync(file, image);
  return file;
}

const FINISHER = 0x10_0000;
const PVPANIC = 0x10_2000;

/** `visor run --kernel KERNEL`, as a child process: its status and its stderr. */
function run(kernel: string, ...more: string[]): Promise<{ status: number | null; stderr: string }> {
  const env = { ...process.env };
  delete env.INIT_CWD;
  const args = [
    "--conditions=source",
    MAIN,
    "run",
    "--kernel",
    kernel,
    "--append",
    "",
    "--memory",
    "64M",
    ...more,
  ];
  return new Promise((resolve) => {
    const child = execFile(process.execPath, args, { env, timeout: 60_000 }, (e, _stdout, stderr) => {
      resolve({ status: e === null ? 0 : typeof e.code === "number" ? e.code : null, stderr });
    });
    child.stdin?.end();
  });
}

// The VMs are separate processes: they run side by side.
describe.concurrent("visor run's exit status", () => {
  it("maps each machine exit to a status and a line", () => {
    expect(exitStatus({ kind: "poweroff" })).toEqual({ code: 0 });
    expect(exitStatus({ kind: "stopped" })).toEqual({ code: 0 });
    expect(exitStatus({ kind: "fail", code: 3 }).code).toBe(3);
    expect(exitStatus({ kind: "fail", code: 255 }).code).toBe(255);
    // A status the shell cannot show (0, or a multiple of 256) is still a failure.
    expect(exitStatus({ kind: "fail", code: 0 }).code).toBe(1);
    expect(exitStatus({ kind: "fail", code: 0x100 }).code).toBe(1);
    expect(exitStatus({ kind: "panic" })).toEqual({ code: 1, message: "guest kernel panicked" });
    expect(exitStatus({ kind: "reset" }).code).toBe(1);
    expect(exitStatus({ kind: "htif", code: 0 })).toEqual({ code: 0 });
    expect(exitStatus({ kind: "htif", code: 3 })).toEqual({ code: 1, message: "FAIL test 3" });
  });

  it("exits with the status a guest writes to the test finisher's FAIL", async () => {
    const r = await run(storeKernel(FINISHER, (3 << 16) | 0x3333));
    expect(r.stderr).toBe("visor: guest reported failure (code 3)\n");
    expect(r.status).toBe(3);
  });

  it("exits 1 on a guest's pvpanic report", async () => {
    const r = await run(storeKernel(PVPANIC, 1));
    expect(r.stderr).toBe("visor: guest kernel panicked\n");
    expect(r.status).toBe(1);
  });

  it("exits 1 when the guest resets the machine, instead of rebooting it", async () => {
    const r = await run(storeKernel(FINISHER, 0x7777));
    expect(r.stderr).toBe("visor: the guest reset the machine (visor does not reboot guests)\n");
    expect(r.status).toBe(1);
  });

  it("takes QEMU's --no-reboot, which is what it does anyway", async () => {
    const r = await run(storeKernel(FINISHER, 0x7777), "--no-reboot");
    expect(r.stderr).toBe("visor: the guest reset the machine (visor does not reboot guests)\n");
    expect(r.status).toBe(1);
  });

  it("exits 0 on a power-off", async () => {
    const r = await run(storeKernel(FINISHER, 0x5555));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
