/**
 * Migration streams as hostile input: the receiver refuses an oversized record on its
 * header alone (nothing of it buffered), pages outside the announced machine, a machine
 * larger than it takes, and a state that does not match the announced configuration,
 * each in one line; and it asks the caller about the machine's devices before any RAM.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MemoryBlockBackend } from "@visor/devices";
import { beforeAll, describe, expect, it } from "vitest";
import { Machine, type MachineConfigState, MigrationReceiver, migrate } from "../src/index.ts";

const GUEST = join(import.meta.dirname, "../../../guests/riscv64");
const kernel = new Uint8Array(readFileSync(join(GUEST, "Image.gz")));
const quiet = { write() {} };

function header(version = 2): Uint8Array {
  const h = new Uint8Array(12);
  h.set(new TextEncoder().encode("VISORMIG"));
  new DataView(h.buffer).setUint32(8, version, true);
  return h;
}

function rec(type: number, body: Uint8Array, len = body.length): Uint8Array {
  const r = new Uint8Array(5 + body.length);
  r[0] = type;
  new DataView(r.buffer).setUint32(1, len, true);
  r.set(body, 5);
  return r;
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** A whole stream from a small machine with one disk, as records. */
let records: Uint8Array[];
let config: MachineConfigState;
beforeAll(async () => {
  const m = await Machine.create({
    memory: 16 << 20,
    kernel,
    console: quiet,
    virt: "off",
    disks: [{ backend: new MemoryBlockBackend(4096) }],
  });
  config = m.configState;
  const chunks: Uint8Array[] = [];
  await migrate(m, async (c) => {
    chunks.push(c.slice());
  });
  records = chunks;
}, 60_000);

const push = (rx: MigrationReceiver, ...parts: Uint8Array[]) => {
  for (const p of parts) rx.push(p);
};

describe("hostile migration streams", () => {
  it("refuses a record header claiming 4 GiB before buffering any of it", () => {
    const rx = new MigrationReceiver();
    rx.push(header());
    const head = rec(1, new Uint8Array(0), 0xffff_ffff);
    expect(() => rx.push(head)).toThrow(
      /^migration: record of 4294967295 bytes exceeds the largest legal one \(\d+\)$/,
    );
    expect(rx.bytes).toBe(17); // all it ever took in
  });

  it("refuses pages before the configuration, pages outside the machine, and too much RAM", () => {
    const page = new Uint8Array(4 + 4096);
    expect(() => push(new MigrationReceiver(), header(), rec(1, page))).toThrow(
      /^migration: no machine configuration before the machine$/,
    );
    const out = page.slice();
    new DataView(out.buffer).setUint32(0, 0x10_0000, true);
    expect(() => push(new MigrationReceiver(), header(), rec(3, json(config)), rec(1, out))).toThrow(
      /^migration: page 1048576 lies outside the machine's 4096 pages$/,
    );
    const big = { ...config, memory: 2 ** 33 };
    expect(() => push(new MigrationReceiver({ maxMemory: 2 ** 32 }), header(), rec(3, json(big)))).toThrow(
      /^migration: the machine has 8589934592 bytes of RAM, more than 4294967296$/,
    );
    expect(() =>
      push(new MigrationReceiver(), header(), rec(3, json({ ...config, memory: 2 ** 36 }))),
    ).toThrow(/^migration: config.memory is not an integer from 16777216 to 17179869184$/);
    expect(() => push(new MigrationReceiver(), header(), rec(3, json({ ...config, harts: "x" })))).toThrow(
      /^migration: config.harts is not an integer/,
    );
    expect(() => push(new MigrationReceiver(), header(1))).toThrow(
      /^migration: stream version 1 is not supported/,
    );
  });

  it("asks about the devices before any RAM arrives, and the receiver's disks must match", async () => {
    const seen: MachineConfigState[] = [];
    const rx = new MigrationReceiver({
      checkConfig: (c) => {
        seen.push(c);
        if (c.disks.length !== 0) throw new Error("migration: the machine had 1 disk(s), 0 given");
      },
    });
    expect(() => push(rx, records[0]!, records[1]!)).toThrow(
      /^migration: the machine had 1 disk\(s\), 0 given$/,
    );
    expect(seen).toHaveLength(1);
    expect(rx.bytes).toBe(records[0]!.length + records[1]!.length);

    // Without the check, the machine is built only from the receiver's own disks.
    const ok = new MigrationReceiver();
    push(ok, ...records);
    expect(ok.done).toBe(true);
    await expect(ok.machine({ console: quiet })).rejects.toThrow(
      /^snapshot: the machine had 1 disk\(s\), 0 given$/,
    );
    await expect(
      ok.machine({ console: quiet, disks: [{ backend: new MemoryBlockBackend(4096) }] }),
    ).resolves.toBeInstanceOf(Machine);
  });

  it("refuses a final state whose configuration differs from the announced one", () => {
    const last = records[records.length - 1]!;
    const state = JSON.parse(new TextDecoder().decode(last.subarray(5)));
    state.config.nets = 1;
    const rx = new MigrationReceiver();
    expect(() => push(rx, ...records.slice(0, -1), rec(2, json(state)))).toThrow(
      /^migration: the machine state does not match the announced configuration$/,
    );
    state.config.nets = 0;
    state.now = "abc";
    expect(() => push(new MigrationReceiver(), ...records.slice(0, -1), rec(2, json(state)))).toThrow(
      /^migration: now is not an integer/,
    );
  });
});
