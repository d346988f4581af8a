/**
 * Snapshot files as hostile input: every attack from the security report is a one-line
 * "snapshot: ..." error, never a hang, a crash or a silently wrong machine. Files changed
 * below the checksum get their checksum recomputed, so the field checks are reached.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MemoryBlockBackend } from "@visor/devices";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeSnapshot, Machine, type MachineConfigState, ramBytes, Vcpu } from "../src/index.ts";
import { sha256, sha256Portable } from "../src/sha256.ts";

const GUEST = join(import.meta.dirname, "../../../guests/riscv64");
const kernel = new Uint8Array(readFileSync(join(GUEST, "Image.gz")));
const quiet = { write() {} };

/** The JSON state of a snapshot, changed by `edit`, in a file with a correct checksum. */
function rewrite(file: Uint8Array, edit: (state: Record<string, unknown>) => void): Uint8Array {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const n = dv.getUint32(12, true);
  const state = JSON.parse(new TextDecoder().decode(file.subarray(16, 16 + n)));
  edit(state);
  const json = new TextEncoder().encode(JSON.stringify(state));
  const rest = file.subarray(16 + n, file.length - 32);
  const out = new Uint8Array(16 + json.length + rest.length + 32);
  out.set(file.subarray(0, 16));
  new DataView(out.buffer).setUint32(12, json.length, true);
  out.set(json, 16);
  out.set(rest, 16 + json.length);
  return resum(out);
}

/** Recompute the trailing checksum after a change. */
function resum(file: Uint8Array): Uint8Array {
  file.set(sha256(file.subarray(0, file.length - 32)), file.length - 32);
  return file;
}

let good: Uint8Array;
let withDisk: Uint8Array;
beforeAll(async () => {
  const m = await Machine.create({ memory: 16 << 20, kernel, console: quiet, virt: "nested" });
  good = m.snapshot();
  const d = await Machine.create({
    memory: 16 << 20,
    kernel,
    console: quiet,
    virt: "off",
    disks: [{ backend: new MemoryBlockBackend(4096) }],
  });
  // A snapshot that names a host file in its meta, as version 1 files did for their disks.
  withDisk = d.snapshot({ disks: [{ path: "/etc/passwd", readonly: false, transport: "mmio" }] });
}, 60_000);

const restore = (b: Uint8Array, disks: { backend: MemoryBlockBackend; transport?: "pci" }[] = []) =>
  Machine.restore(b, { console: quiet, disks });

/** Resolves with the error message, which must be one line starting "snapshot: ". */
async function refusal(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => {
      throw new Error("accepted");
    },
    (e: Error) => e,
  );
  expect(e.message).toMatch(/^snapshot: /);
  expect(e.message).not.toContain("\n");
  return e.message;
}

describe("hostile snapshot files", () => {
  it("the checksum is SHA-256 (the portable code agrees with OpenSSL)", () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 1000, 100_000]) {
      const d = new Uint8Array(n).map((_, i) => (i * 31 + 7) & 0xff);
      const want = createHash("sha256").update(d).digest("hex");
      expect(Buffer.from(sha256Portable(d)).toString("hex")).toBe(want);
      expect(Buffer.from(sha256(d)).toString("hex")).toBe(want);
    }
  });

  it("refuses a file with one flipped RAM byte (the guest would have run on bad memory)", async () => {
    const bad = good.slice();
    const at = bad.length - 32 - 100; // inside the last RAM page
    bad[at] = bad[at]! ^ 0x01;
    expect(await refusal(restore(bad))).toMatch(/checksum mismatch/);
  });

  it("refuses truncated files and old versions in one line", async () => {
    for (const cut of [1, 32, 4096, good.length - 20]) {
      expect(await refusal(restore(good.subarray(0, good.length - cut)))).toMatch(/checksum|truncated/);
    }
    const v1 = good.slice();
    v1[8] = 1;
    expect(await refusal(restore(v1))).toBe(
      "snapshot: unsupported snapshot version 1 (this visor reads version 2)",
    );
  });

  it('refuses "now":"abc" instead of hanging on a NaN clock', async () => {
    const bad = rewrite(good, (s) => {
      s.now = "abc";
    });
    expect(await refusal(restore(bad))).toBe("snapshot: now is not an integer from 0 to 9007199254740991");
  });

  it("checks every field's type and range, the hart count and page numbers", async () => {
    const cases: [(s: Record<string, unknown>) => void, RegExp][] = [
      [(s) => (s.skippedTicks = -1), /skippedTicks/],
      [(s) => (s.version = 1), /unsupported snapshot version 1/],
      [(s) => (s.config = 5), /config is not an object/],
      [(s) => ((s.config as Record<string, unknown>).harts = 2), /harts is not a list of 2 entries/],
      [(s) => ((s.config as Record<string, unknown>).memory = 2 ** 40), /config.memory/],
      [(s) => ((s.config as Record<string, unknown>).disks = 5), /config.disks is not a list/],
      [(s) => ((s.harts as Record<string, unknown>[])[0]!.priv = 2), /harts\[0\].priv/],
      [(s) => ((s.harts as Record<string, unknown>[])[0]!.x = [1, 2]), /harts\[0\].x/],
      [(s) => ((s.vcpus as Record<string, unknown>[])[0]!.deadline = "soon"), /vcpus\[0\].deadline/],
      [(s) => (s.consoleIn = [300]), /consoleIn\[0\]/],
      [(s) => (s.devices = { uart: {} }), /devices.clint is not an object/],
      [(s) => ((s.devices as Record<string, unknown>).virtio = {}), /devices.virtio is not a list/],
      [(s) => (s.hvPool = 0), /hvPool 0 lies outside/],
      [(s) => (s.entropy = 1.5), /entropy/],
    ];
    for (const [edit, message] of cases) {
      expect(await refusal(restore(rewrite(good, edit)))).toMatch(message);
    }
  });

  it("refuses a RAM page number outside the machine", async () => {
    const dv = new DataView(good.buffer, good.byteOffset);
    const index = 16 + dv.getUint32(12, true) + 4;
    const bad = good.slice();
    new DataView(bad.buffer).setUint32(index, 0x7fff_ffff, true);
    expect(await refusal(restore(resum(bad)))).toMatch(/RAM page 2147483647 lies outside/);
    expect(() => decodeSnapshot(resum(bad))).toThrow(/^snapshot: RAM page/);
  });

  it("takes disks only from the restoring side, which must match the saved devices", async () => {
    // meta is the caller's, opaque: a non-list or a host path there changes nothing.
    const m5 = rewrite(withDisk, (s) => {
      s.meta = { disks: 5 };
    });
    expect(await refusal(restore(m5))).toBe("snapshot: the machine had 1 disk(s), 0 given");
    expect(await refusal(restore(withDisk))).toBe("snapshot: the machine had 1 disk(s), 0 given");
    const ro = new MemoryBlockBackend(4096, { readonly: true });
    expect(await refusal(restore(withDisk, [{ backend: ro }]))).toBe(
      "snapshot: disk 1 was writable, the one given is read-only",
    );
    expect(
      await refusal(restore(withDisk, [{ backend: new MemoryBlockBackend(4096), transport: "pci" }])),
    ).toBe("snapshot: disk 1 was on mmio, not pci");
    const mine = new MemoryBlockBackend(4096);
    await expect(restore(m5, [{ backend: mine }])).resolves.toBeInstanceOf(Machine);
  });

  it("sizes RAM as the machine does (guest memory and the hypervisor's pages)", () => {
    for (const memory of [16 << 20, 256 << 20, 2 ** 32]) {
      const config = {
        memory,
        harts: 1,
        clock: "host",
        rng: true,
        firmware: false,
        disks: [] as MachineConfigState["disks"],
        nets: 0,
      } as const;
      expect(ramBytes({ ...config, virt: "nested" })).toBe(memory + Vcpu.hypervisorMemory(memory));
      expect(ramBytes({ ...config, virt: "off" })).toBe(memory);
    }
  });
});
