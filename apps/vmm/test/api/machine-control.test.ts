/**
 * MachineControl over a real Machine (the bundled Linux guest, run only briefly): pausing
 * stops the guest's instructions and resuming lets them go on; power-off ends a paused
 * run; a snapshot is a valid snapshot file; a migration reports its progress, completes
 * (also from a paused VM, whose run then ends) or fails and leaves the VM running; a
 * drive snapshot answers 404 / 501 / 400 as documented. Every answer fits the OpenAPI file.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeSnapshot, Machine, type MigrationReceiver } from "@visor/hypervisor";
import { acceptMigration, type MigrationSecurity } from "@visor/hypervisor/node";
import { afterAll, describe, expect, it } from "vitest";
import { ApiError, NotSupportedError } from "../../src/api/control.ts";
import { MachineControl, type MachineControlOptions } from "../../src/api/machine-control.ts";
import { checkResponse } from "./openapi.ts";

const GUEST = join(import.meta.dirname, "../../../../guests/riscv64");
const kernel = new Uint8Array(readFileSync(join(GUEST, "Image.gz")));
const initrd = new Uint8Array(readFileSync(join(GUEST, "initramfs.cpio.gz")));
const dir = mkdtempSync(join(tmpdir(), "visor-control-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const machine = () =>
  Machine.create({
    memory: 64 << 20,
    kernel,
    initrd,
    append: "console=ttyS0",
    console: { write() {} },
    virt: "off",
  });

function control(m: Machine, more: Partial<MachineControlOptions> = {}) {
  const log: string[] = [];
  const c = new MachineControl({
    machine: m,
    startedBy: "boot",
    drives: [{ path: "/images/a.img", readonly: false, transport: "mmio" }],
    security: { kind: "insecure" },
    timeoutMs: 10_000,
    releaseDisks: () => log.push("disks released"),
    log: (l) => log.push(l),
    ...more,
  });
  return { c, log };
}

/** What `f` throws, as the API would answer it. */
function refusal(f: () => unknown): { status: number; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof ApiError) return { status: e.status, message: e.message };
    throw e;
  }
  throw new Error("no refusal");
}

async function refusalOf(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiError) return { status: e.status, message: e.message };
    throw e;
  }
  throw new Error("no refusal");
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

/** Resolves once the machine has retired `n` instructions (or stopped). */
async function retired(m: Machine, n: number): Promise<void> {
  while (m.instructions < n && !m.exited) await tick(5);
}

/** A receiver on a free local port: its port, and the VM it received. */
async function receiver(security: MigrationSecurity = { kind: "insecure" }) {
  let port = 0;
  let listening = () => {};
  const ready = new Promise<void>((r) => {
    listening = r;
  });
  const got: Promise<MigrationReceiver> = acceptMigration(
    { host: "127.0.0.1", port: 0 },
    {
      security,
      timeoutMs: 10_000,
      onListening: (p) => {
        port = p;
        listening();
      },
    },
  );
  await ready;
  return { port, got };
}

describe("MachineControl", () => {
  it("pauses the guest (no instruction runs) and resumes it; power-off ends a paused run", async () => {
    const m = await machine();
    const { c } = control(m);
    checkResponse("GET", "/", 200, c.info());
    const running = m.run();
    await retired(m, 2_000_000);
    c.pause();
    expect(c.info().state).toBe("Paused");
    expect(refusal(() => c.pause())).toEqual({ status: 409, message: "the VM is already paused" });
    const at = m.instructions;
    for (let i = 0; i < 5; i++) await tick();
    expect(m.instructions).toBe(at);
    checkResponse("GET", "/stats", 200, c.stats());
    expect(c.stats().instructions).toBe(at);
    c.resume();
    expect(refusal(() => c.resume())).toEqual({ status: 409, message: "the VM is not paused" });
    await retired(m, at + 1_000_000);
    expect(m.instructions).toBeGreaterThan(at);
    c.pause();
    c.powerOff();
    expect(await running).toEqual({ kind: "stopped" });
    expect(refusal(() => c.pause())).toEqual({ status: 409, message: "the VM has stopped" });
  });

  it("saves a snapshot the loader takes; a failed write says why", async () => {
    const m = await machine();
    const { c } = control(m);
    const file = join(dir, "vm.snap");
    writeFileSync(file, "an older file, replaced");
    const r = c.snapshot(file);
    checkResponse("PUT", "/snapshot/create", 200, r);
    expect(r.snapshot_path).toBe(file);
    const bytes = readFileSync(file);
    expect(r.size_bytes).toBe(bytes.length);
    expect(decodeSnapshot(bytes).state.config).toEqual(m.configState);
    const bad = refusal(() => c.snapshot(join(dir, "missing", "vm.snap")));
    expect(bad.status).toBe(400);
    expect(bad.message).toMatch(/^snapshot not saved: cannot write .*\/missing\/vm\.snap \(ENOENT\)$/);
  });

  it("migrates, reporting progress, and the VM stops here; a paused VM's run ends too", async () => {
    const m = await machine();
    const { c, log } = control(m);
    const running = m.run();
    await retired(m, 1_000_000);
    c.pause(); // migrated while paused: its run loop must still end when it has left
    const rx = await receiver();
    const started = c.migrate(`127.0.0.1:${rx.port}`);
    checkResponse("PUT", "/migrate", 202, started);
    expect(started).toEqual({ state: "active", destination: `127.0.0.1:${rx.port}`, phase: "connecting" });
    expect(refusal(() => c.snapshot(join(dir, "x.snap"))).status).toBe(409);
    expect(refusal(() => c.migrate(`127.0.0.1:${rx.port}`)).message).toBe(
      "a migration is in progress; not migrating",
    );
    await c.settled();
    const done = c.migration();
    checkResponse("GET", "/migrate", 200, done);
    expect(done).toMatchObject({
      state: "completed",
      phase: "done",
      rounds: 1,
      guest_pages: (64 << 20) / 4096,
    });
    expect(await running).toEqual({ kind: "stopped" });
    const received = await rx.got;
    expect(done.bytes_sent).toBe(received.bytes);
    expect(log).toContain("disks released");
    expect(log.at(-1)).toMatch(/^migrated to 127\.0\.0\.1:\d+: 1 rounds while running/);
  });

  it("a migration that fails leaves the VM running here, and says why; bad requests are 400", async () => {
    const m = await machine();
    const { c } = control(m);
    // A port nobody listens on: take one and let it go.
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const p = (probe.address() as { port: number }).port;
        probe.close(() => resolve(p));
      });
    });
    c.migrate(`127.0.0.1:${port}`);
    await c.settled();
    const failed = c.migration();
    checkResponse("GET", "/migrate", 200, failed);
    expect(failed.state).toBe("failed");
    expect(failed.error).toMatch(/ECONNREFUSED/);
    expect(m.exited).toBe(false);
    expect(refusal(() => c.migrate("nowhere")).message).toBe("destination: 'nowhere' is not HOST:PORT");
    const insecure = control(m, { security: undefined }).c;
    expect(refusal(() => insecure.migrate("127.0.0.1:1")).message).toMatch(
      /^migration needs --migrate-key FILE/,
    );
  });

  it("drive snapshots: 404 for no such drive, 501 where unsupported, 400 on failure, else the switch", async () => {
    const m = await machine();
    expect((await refusalOf(control(m).c.snapshotDrive("disk1", "o.qcow2"))).status).toBe(404);
    const none = await refusalOf(control(m).c.snapshotDrive("disk0", "o.qcow2"));
    expect(none).toEqual({
      status: 501,
      message: "disk0: switching to an overlay is not supported for this disk (/images/a.img)",
    });
    const raw = control(m, {
      snapshotDrive: async () => {
        throw new NotSupportedError("a raw image has no backing file");
      },
    }).c;
    expect((await refusalOf(raw.snapshotDrive("disk0", "o.qcow2"))).status).toBe(501);
    const failing = control(m, {
      snapshotDrive: async () => {
        throw new Error("EEXIST");
      },
    }).c;
    expect(await refusalOf(failing.snapshotDrive("disk0", "o.qcow2"))).toEqual({
      status: 400,
      message: "disk0: overlay not made: EEXIST",
    });
    const calls: [number, string][] = [];
    const ok = control(m, {
      snapshotDrive: async (i, p) => {
        calls.push([i, p]);
      },
    }).c;
    await ok.snapshotDrive("disk0", join(dir, "o.qcow2"));
    expect(calls).toEqual([[0, join(dir, "o.qcow2")]]);
    expect(existsSync(join(dir, "o.qcow2"))).toBe(false); // the function makes it, not the control
  });
});
