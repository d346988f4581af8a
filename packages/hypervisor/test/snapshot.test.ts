/**
 * Snapshots: a deterministic boot stopped part-way, saved to a snapshot file, restored
 * into a new Machine and run to power-off prints exactly what an uninterrupted boot
 * prints and retires exactly as many instructions, in each virtualization mode. And
 * malformed snapshot files are one-line errors.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { JitMode } from "@visor/cpu";
import { describe, expect, it } from "vitest";
import { decodeSnapshot, Machine, type VirtMode } from "../src/index.ts";

const GUEST = join(import.meta.dirname, "../../../guests/riscv64");
const kernel = new Uint8Array(readFileSync(join(GUEST, "Image.gz")));
const initrd = new Uint8Array(readFileSync(join(GUEST, "initramfs.cpio.gz")));
const APPEND = "console=ttyS0 visor.run=uname+-a";
/** Where the first part stops: the kernel has handed over to /init. */
const MARK = "Run /init as init process";

function sink() {
  const decoder = new TextDecoder();
  const s = {
    text: "",
    onText: undefined as undefined | ((t: string) => void),
    write(b: Uint8Array) {
      s.text += decoder.decode(b, { stream: true });
      s.onText?.(s.text);
    },
  };
  return s;
}

interface Run {
  console: string;
  instret: number;
}

async function fullBoot(virt: VirtMode, jit: JitMode = "on"): Promise<Run> {
  const out = sink();
  const m = await Machine.create({
    memory: 128 << 20,
    kernel,
    initrd,
    append: APPEND,
    console: out,
    clock: "deterministic",
    virt,
    jit,
  });
  expect(await m.run()).toEqual({ kind: "poweroff" });
  return { console: out.text, instret: m.vcpus[0]!.hart.instret() };
}

async function bootInTwo(virt: VirtMode, jit: JitMode = "on", restoreJit: JitMode = "on"): Promise<Run> {
  const first = sink();
  const a = await Machine.create({
    memory: 128 << 20,
    kernel,
    initrd,
    append: APPEND,
    console: first,
    clock: "deterministic",
    virt,
    jit,
  });
  first.onText = (t) => {
    if (t.endsWith(MARK)) a.stop();
  };
  expect(await a.run()).toEqual({ kind: "stopped" });
  const bytes = a.snapshot({ note: "test" });
  expect(decodeSnapshot(bytes).state.meta).toEqual({ note: "test" });
  const second = sink();
  const b = await Machine.restore(bytes, { console: second, jit: restoreJit });
  expect(await b.run()).toEqual({ kind: "poweroff" });
  return { console: first.text + second.text, instret: b.vcpus[0]!.hart.instret() };
}

describe("snapshots", () => {
  for (const virt of ["off", "nested", "shadow"] as VirtMode[]) {
    it(`--virt ${virt}: stop, save, restore in a new machine, and the boot ends as if never stopped`, async () => {
      const whole = await fullBoot(virt);
      expect(whole.console).toContain("riscv64 GNU/Linux");
      // A deterministic machine is reproducible to the instruction, across a snapshot too:
      // the same console output, timestamps included, after the same instruction count.
      expect(await bootInTwo(virt)).toEqual(whole);
    }, 120_000);
  }

  it("translation changes nothing the guest sees: every instruction translated, or none, across a snapshot", async () => {
    // The same boot with the interpreter alone, with every instruction translated at first
    // execution, and saved with translation and restored without: the same console,
    // timestamps included, after the same instruction count.
    const interpreted = await fullBoot("nested", "off");
    expect(await fullBoot("nested", "always")).toEqual(interpreted);
    expect(await bootInTwo("nested", "always", "off")).toEqual(interpreted);
  }, 300_000);

  it("rejects malformed files with one-line errors", async () => {
    const restore = (b: Uint8Array) => Machine.restore(b, { console: { write() {} } });
    await expect(restore(new Uint8Array(4))).rejects.toThrow(/^snapshot: not a visor snapshot/);
    const m = await Machine.create({
      memory: 16 << 20,
      kernel,
      initrd,
      append: APPEND,
      console: { write() {} },
    });
    const good = m.snapshot();
    // Cut short or changed anywhere: the checksum over every byte no longer matches.
    await expect(restore(good.subarray(0, good.length - 1))).rejects.toThrow(/^snapshot: checksum mismatch/);
    const v1 = good.slice();
    v1[8] = 1;
    await expect(restore(v1)).rejects.toThrow(/^snapshot: unsupported snapshot version 1 /);
    const json = good.slice();
    json[16] = 0x7b + 1; // the JSON no longer starts with "{"
    await expect(restore(json)).rejects.toThrow(/^snapshot: checksum mismatch/);
    await expect(Machine.restore(good, { console: { write() {} }, disks: [] })).resolves.toBeInstanceOf(
      Machine,
    );
    // The snapshot's machine had no network device: a backend for one is refused.
    await expect(
      Machine.restore(good, { console: { write() {} }, nets: [{ send() {}, onReceive() {} } as never] }),
    ).rejects.toThrow(/^snapshot: the machine had 0 network device\(s\), 1 given$/);
  });
});
