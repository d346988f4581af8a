/**
 * Guest RAM of more than 4 GiB: a guest (test/fixtures/bigmem) that writes, reads back and
 * runs code at RAM offsets just below and above 2 GiB and 4 GiB (where 32-bit arithmetic on
 * RAM offsets breaks: int32 overflow at 2 GiB, wrap-around at 4 GiB), through every access
 * path of the hart, in each virtualization mode; the dirty log, a snapshot and a live
 * migration of such a VM; and the size limit of the Machine API.
 *
 * Each machine has 4 GiB + 16 MiB of RAM but the guest touches a few dozen pages: the OS
 * zero-fills RAM lazily, so each costs a few MiB of host memory.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { hpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { GuestError, Machine, MigrationReceiver, migrate, type VirtMode } from "../src/index.ts";

const kernel = new Uint8Array(readFileSync(join(import.meta.dirname, "fixtures/bigmem/bin/bigmem.bin")));
const GiB = 2 ** 30;
const MiB = 2 ** 20;
const PAGE = 4096;
const RAM_BASE = 0x8000_0000;
/** Must match RAM_SIZE, FLAG_PA and KEY in fixtures/bigmem/src/bigmem.S. */
const MEMORY = 4 * GiB + 16 * MiB;
const FLAG_PA = RAM_BASE + 4 * GiB + 8 * MiB;
const KEY = 0x9e3779b97f4a7c15n;
/** The words the guest keeps (its `addrs` with KEPT), and where `probe` is copied. */
const KEPT = [2 * GiB - 8, 2 * GiB, 4 * GiB - 8, 4 * GiB, MEMORY - 8].map((o) => RAM_BASE + o);
/** The kernel is loaded 2 MiB into RAM; `probe` is its second page. */
const PROBE = RAM_BASE + 2 * MiB + PAGE;
const INSTRUCTION_LIMIT = 2_000_000;

const pattern = (pa: number) => BigInt(pa) ^ KEY;

function sink() {
  const s = {
    text: "",
    onText: undefined as undefined | ((t: string) => void),
    write(b: Uint8Array) {
      s.text += new TextDecoder().decode(b);
      s.onText?.(s.text);
    },
  };
  return s;
}

const create = (virt: VirtMode, console: { write(b: Uint8Array): void }) =>
  Machine.create({ memory: MEMORY, kernel, append: "", rng: false, console, clock: "deterministic", virt });

/** Run until the guest powers off (or a watchdog stops a guest that went astray). */
async function runToEnd(m: Machine): Promise<string> {
  const hart = m.vcpus[0]!.hart;
  const watchdog = setInterval(() => {
    if (hart.instret() > INSTRUCTION_LIMIT) m.stop();
  }, 20);
  try {
    return (await m.run()).kind;
  } catch (e) {
    expect(e).toBeInstanceOf(GuestError);
    return `guest error: ${(e as Error).message}`;
  } finally {
    clearInterval(watchdog);
  }
}

/** The guest's words as the host sees them. */
function expectKept(m: Machine): void {
  for (const pa of KEPT) expect(m.ram.read64(hpa(pa)), `0x${pa.toString(16)}`).toBe(pattern(pa));
}

const MODES: VirtMode[] = ["off", "nested", "shadow"];

describe("guest RAM above 2 and 4 GiB", () => {
  for (const virt of MODES) {
    it(`--virt ${virt}: loads, stores, AMOs, FP and code at 2 GiB and 4 GiB work, and the dirty log sees them`, async () => {
      const out = sink();
      const m = await create(virt, out);
      m.ram.write64(hpa(FLAG_PA), 1n); // no stop in the middle
      m.ram.enableDirtyLog();
      const end = await runToEnd(m);
      expect({ console: out.text, end }).toEqual({ console: "W\nOK\n", end: "poweroff" });
      expectKept(m);
      // The CPU's stores and the code it planted are logged under their own pages.
      const dirty = new Set(m.ram.fetchAndClearDirty());
      const pages = [...KEPT, RAM_BASE + 2 * GiB - 1, PROBE + 2 * GiB, PROBE + 4 * GiB].map((pa) =>
        Math.floor((pa - RAM_BASE) / PAGE),
      );
      for (const p of pages) expect(dirty.has(p), `page 0x${p.toString(16)}`).toBe(true);
    }, 60_000);
  }

  it("a snapshot of the VM stores only its non-zero pages and restores above 4 GiB", async () => {
    const first = sink();
    const a = await create("nested", first);
    first.onText = (t) => {
      if (t === "W\n") a.stop();
    };
    expect(await runToEnd(a)).toBe("stopped");
    const bytes = a.snapshot();
    // 4 GiB of RAM, a few dozen pages of it written (the G-stage tables included).
    expect(bytes.length).toBeLessThan(MiB);

    const second = sink();
    const b = await Machine.restore(bytes, { console: second });
    expect(b.ram.size).toBe(a.ram.size);
    expectKept(b);
    b.ram.write64(hpa(FLAG_PA), 1n);
    expect(await runToEnd(b)).toBe("poweroff");
    expect(first.text + second.text).toBe("W\nOK\n");
  }, 120_000);

  it("live-migrates the VM, pages above 4 GiB included", async () => {
    const first = sink();
    const src = await create("shadow", first);
    let waiting!: () => void;
    const atFlag = new Promise<void>((r) => {
      waiting = r;
    });
    first.onText = (t) => {
      if (t === "W\n") waiting();
    };
    const running = src.run();
    await Promise.race([
      atFlag,
      running.then((r) => {
        throw new Error(`the VM ended before it waited: ${JSON.stringify(r)}`);
      }),
    ]);
    const rx = new MigrationReceiver();
    await migrate(src, async (chunk) => rx.push(chunk), { roundIntervalMs: 5, threshold: 16, maxRounds: 3 });
    expect(await running).toEqual({ kind: "stopped" });

    const second = sink();
    const dst = await rx.machine({ console: second });
    expectKept(dst);
    dst.ram.write64(hpa(FLAG_PA), 1n);
    expect(await runToEnd(dst)).toBe("poweroff");
    expect(first.text + second.text).toBe("W\nOK\n");
  }, 120_000);
});

describe("guest RAM size limit", () => {
  it("Machine.create refuses more than the supported maximum in one line", async () => {
    const outcome = await Machine.create({ memory: 17 * GiB, kernel, console: sink() }).then(
      () => "created", // not the machine itself: printing its RAM would take the test down
      (e: Error) => e.message,
    );
    expect(outcome).toBe("memory 18253611008 bytes is above the supported maximum of 16 GiB");
  });

  it("a snapshot claiming more RAM than the maximum is refused before anything is allocated", async () => {
    const m = await Machine.create({ memory: 64 * MiB, kernel, append: "", rng: false, console: sink() });
    const state = m.saveState();
    const outcome = await Machine.restoreState(
      { ...state, config: { ...state.config, memory: 32 * GiB } },
      () => {},
      { console: sink() },
    ).then(
      () => "restored",
      (e: Error) => e.message,
    );
    expect(outcome).toBe("snapshot: config.memory is not an integer from 16777216 to 17179869184");
  });
});
