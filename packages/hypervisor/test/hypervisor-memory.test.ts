/**
 * Hostile guests that ask the hypervisor itself to touch memory past guest RAM, where
 * the hypervisor keeps its page-table pool (nested: the G-stage tables; shadow: the shadow
 * tables): an SBI debug-console read or write aimed at the pool, virtio-rng and
 * virtio-blk DMA into it (at its first page, the G-stage or shadow root, and at its last
 * page), a virtqueue whose descriptor table straddles the end of RAM, and HTIF programs
 * (firmware on a machine configured for nested paging) that ask the host to print pool
 * memory, load from it, or put `tohost` in it.
 *
 * Each must be refused: the guest gets an SBI error, DEVICE_NEEDS_RESET or an access
 * fault and says REFUSED (or FAULT), the VMM does not crash, and the pool's bytes are
 * unchanged: its last page holds a pattern the test planted, and the G-stage root (built
 * once, never rewritten) is compared byte for byte. Sources: fixtures/hostile/src/reach.S
 * and src/htif.S.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MemoryBlockBackend } from "@visor/devices";
import { hpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { encodeSnapshot, Machine, type MachineOptions, type VirtMode } from "../src/index.ts";

const BIN = join(import.meta.dirname, "fixtures/hostile/bin");
const MEMORY = 64 << 20;
/** Must match POOL and SECRET_PA in fixtures/hostile/src/reach.S. */
const POOL = 0x8400_0000;
const SECRET_PA = 0x847f_f000;
const PAGE = 4096;
/** The G-stage root is 16 KiB (Sv39x4). */
const ROOT_BYTES = 16384;
const SECRET_BYTE = 0x5a;
const DISK_BYTE = 0xab;
const INSTRUCTION_LIMIT = 5_000_000;

interface Outcome {
  console: string;
  exit: string;
  /** A host exception out of run(), if any (there must be none). */
  crash: string | undefined;
  /** Whether the planted page is intact; undefined when this mode has no pool. */
  secretIntact: boolean | undefined;
  /** Whether the first 16 KiB of the pool are unchanged; undefined without a pool. */
  rootIntact: boolean | undefined;
}

const bin = (name: string) => new Uint8Array(readFileSync(join(BIN, name)));

function poolBytes(m: Machine, at: number, len: number): Uint8Array | undefined {
  return m.ram.contains(hpa(at), len) ? m.ram.view(hpa(at), len).slice() : undefined;
}

async function run(opts: Omit<MachineOptions, "console" | "memory">, input?: Uint8Array): Promise<Outcome> {
  let out = "";
  const m = await Machine.create({
    memory: MEMORY,
    clock: "deterministic",
    console: {
      write(b) {
        out += new TextDecoder().decode(b);
      },
    },
    ...opts,
  });
  const planted = m.ram.contains(hpa(SECRET_PA), PAGE);
  if (planted) m.ram.viewMut(hpa(SECRET_PA), PAGE).fill(SECRET_BYTE);
  const rootBefore = poolBytes(m, POOL, ROOT_BYTES);
  if (input !== undefined) m.input(input);
  const hart = m.vcpus[0]!.hart;
  const watchdog = setInterval(() => {
    if (hart.instret() > INSTRUCTION_LIMIT) m.stop();
  }, 20);
  let exit = "none";
  let crash: string | undefined;
  try {
    const e = await m.run();
    exit = e.kind === "htif" ? `htif ${e.code}` : e.kind;
  } catch (e) {
    crash = String(e);
  } finally {
    clearInterval(watchdog);
  }
  const rootAfter = poolBytes(m, POOL, ROOT_BYTES);
  return {
    console: out,
    exit,
    crash,
    secretIntact: planted ? m.ram.view(hpa(SECRET_PA), PAGE).every((b) => b === SECRET_BYTE) : undefined,
    rootIntact:
      rootBefore === undefined || rootAfter === undefined
        ? undefined
        : rootBefore.every((b, i) => b === rootAfter[i]),
  };
}

const kernel = (name: string, virt: VirtMode, extra: Partial<MachineOptions> = {}) => ({
  kernel: bin(`${name}.bin`),
  append: "",
  rng: true,
  virt,
  ...extra,
});

/** Console input, more than the UART's FIFO holds, so the SBI console has some to give. */
const INPUT = new Uint8Array(4096).fill(0x78);

const disk = () => ({
  disks: [{ backend: new MemoryBlockBackend(new Uint8Array(1 << 20).fill(DISK_BYTE)) }],
  rng: false,
});

const CASES: [string, Partial<MachineOptions>, Uint8Array | undefined][] = [
  ["dbcn-write", {}, undefined],
  ["dbcn-read", {}, INPUT],
  ["dbcn-huge", {}, undefined],
  ["rng-root", {}, undefined],
  ["rng-secret", {}, undefined],
  ["blk-root", disk(), undefined],
  ["blk-secret", disk(), undefined],
  ["ring-straddle", {}, undefined],
];

describe("the guest cannot make the hypervisor touch its own memory", () => {
  for (const virt of ["off", "nested", "shadow"] as VirtMode[]) {
    for (const [name, extra, input] of CASES) {
      it(`--virt ${virt}: ${name} is refused, the pool unchanged, the VMM alive`, async () => {
        const o = await run(kernel(name, virt, extra), input);
        expect(o).toMatchObject({ crash: undefined, exit: "poweroff" });
        // The guest's verdict is the last line; a refused device also logs why.
        expect(o.console).toMatch(/(^|\n)REFUSED\n$/);
        expect(o.console).not.toMatch(/LEAK|WROTE|NOTHING/);
        if (o.console !== "REFUSED\n") expect(o.console).toMatch(/^visor: virtio: .* outside RAM\r\n/);
        if (virt === "off") {
          expect(o.secretIntact).toBeUndefined(); // no pool without the H extension
        } else {
          expect(o.secretIntact).toBe(true);
          // The G-stage root is never rewritten; shadow roots are, by the hypervisor.
          if (virt === "nested") expect(o.rootIntact).toBe(true);
        }
      });
    }
  }

  it("HTIF: a write syscall of memory past guest RAM is -EFAULT, nothing printed", async () => {
    const o = await run({ bios: bin("htif-write.elf"), virt: "nested" });
    expect(o).toMatchObject({ crash: undefined, console: "", exit: "htif 0" });
  });

  it("firmware under --virt nested: a load past guest RAM is an access fault (no pool to read)", async () => {
    const o = await run({ bios: bin("htif-load.elf"), virt: "nested" });
    expect(o).toMatchObject({ crash: undefined, exit: "htif 3", secretIntact: undefined });
  });

  it("an HTIF program whose tohost lies past guest RAM is refused when loaded", async () => {
    await expect(run({ bios: bin("tohost-in-pool.elf"), virt: "nested" })).rejects.toThrow(
      /tohost at 0x84000000 is outside RAM/,
    );
  });
});

describe("a snapshot cannot smuggle page tables into the pool", () => {
  const silent = { write() {} };
  const create = (virt: VirtMode) =>
    Machine.create({ memory: MEMORY, kernel: bin("rng-root.bin"), append: "", virt, console: silent });
  /** A valid non-leaf PTE pointing at guest RAM: a table the guest could write. */
  const INTO_GUEST = (BigInt(0x8000_0000 / PAGE) << 10n) | 1n;

  it("--virt nested: the G-stage table is rebuilt on restore, whatever the file holds", async () => {
    const m = await create("nested");
    const state = m.saveState();
    const clean = m.ram.view(hpa(POOL), ROOT_BYTES).slice();
    m.ram.write64(hpa(POOL + 8), INTO_GUEST); // root[1]: GPA 1..2 GiB through a guest-owned table
    m.ram.write64(hpa(POOL + 16), INTO_GUEST);
    const r = await Machine.restore(encodeSnapshot(state, m.ram), { console: silent });
    expect(Buffer.compare(r.ram.view(hpa(POOL), ROOT_BYTES), clean)).toBe(0);
  });

  it("--virt shadow: a shadow table pointing outside the pool is refused", async () => {
    const m = await create("shadow");
    const state = m.saveState();
    m.ram.write64(hpa(POOL), INTO_GUEST); // the first shadow root's entry 0
    // (Not `rejects.toThrow`: on failure vitest would print the whole restored Machine.)
    const outcome = await Machine.restore(encodeSnapshot(state, m.ram), { console: silent }).then(
      () => "restored",
      (e: Error) => e.message,
    );
    expect(outcome).toMatch(/^snapshot: shadow state: hypervisor page table at 0x84000000 is corrupt/);
  });
});
