/**
 * Live migration: a deterministic boot migrated part-way (the pre-copy rounds run while
 * the guest boots) finishes on the receiving machine exactly as a boot that never moved:
 * the same console output, timestamps included, and the same instruction count.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Machine, type MigrationProgress, MigrationReceiver, migrate, type VirtMode } from "../src/index.ts";

const GUEST = join(import.meta.dirname, "../../../guests/riscv64");
const kernel = new Uint8Array(readFileSync(join(GUEST, "Image.gz")));
const initrd = new Uint8Array(readFileSync(join(GUEST, "initramfs.cpio.gz")));
const APPEND = "console=ttyS0 visor.run=uname+-a";

function sink() {
  const decoder = new TextDecoder();
  const s = {
    text: "",
    write(b: Uint8Array) {
      s.text += decoder.decode(b, { stream: true });
    },
  };
  return s;
}

const create = (virt: VirtMode, console: { write(b: Uint8Array): void }) =>
  Machine.create({
    memory: 128 << 20,
    kernel,
    initrd,
    append: APPEND,
    console,
    clock: "deterministic",
    virt,
  });

/** Resolves once the machine has retired `n` instructions (or stopped). */
async function retired(m: Machine, n: number): Promise<void> {
  while (m.instructions < n && !m.exited) await new Promise((r) => setTimeout(r, 5));
}

describe("live migration", () => {
  for (const virt of ["nested", "shadow"] as VirtMode[]) {
    it(`--virt ${virt}: pre-copy while the guest runs, then the rest paused; it finishes as if it never moved`, async () => {
      const whole = sink();
      const w = await create(virt, whole);
      expect(await w.run()).toEqual({ kind: "poweroff" });

      const first = sink();
      const src = await create(virt, first);
      const running = src.run();
      await retired(src, 10_000_000); // into the boot
      const rx = new MigrationReceiver();
      const stats = await migrate(src, async (chunk) => rx.push(chunk), {
        // Each round waits for the guest to run on, however slow the host is.
        betweenRounds: () => retired(src, src.instructions + 1_000_000),
        threshold: 16,
        maxRounds: 5,
        meta: { from: "test" },
      });
      expect(await running).toEqual({ kind: "stopped" });
      expect(rx.done).toBe(true);
      expect(rx.meta).toEqual({ from: "test" });
      expect(stats.rounds).toBeGreaterThan(1); // the guest dirtied pages while the first round went
      expect(stats.bytes).toBe(rx.bytes);

      const second = sink();
      const dst = await rx.machine({ console: second });
      // A machine whose memory came over wrong need not ever power off.
      const watchdog = setInterval(() => {
        if (dst.vcpus[0]!.hart.instret() > 2 * w.vcpus[0]!.hart.instret()) dst.stop();
      }, 100);
      const end = await dst.run().finally(() => clearInterval(watchdog));
      expect(end).toEqual({ kind: "poweroff" });
      expect(first.text + second.text).toBe(whole.text);
      expect(dst.vcpus[0]!.hart.instret()).toBe(w.vcpus[0]!.hart.instret());
    }, 120_000);
  }

  it("keeps the VM running at the source when the link fails in the paused step", async () => {
    const whole = sink();
    const w = await create("nested", whole);
    expect(await w.run()).toEqual({ kind: "poweroff" });

    const out = sink();
    const src = await create("nested", out);
    const running = src.run();
    await retired(src, 5_000_000);
    const failing = migrate(src, async (chunk) => {
      if (chunk[0] === 2) throw new Error("link down"); // the final state record
    });
    await expect(failing).rejects.toThrow("link down");
    // Not stopped: it runs on to its own power-off, exactly as if never interrupted.
    expect(await running).toEqual({ kind: "poweroff" });
    expect(out.text).toBe(whole.text);
    expect(src.ram.dirtyLogging).toBe(false);
  }, 120_000);

  it("takes a stream in chunks of any size", async () => {
    const src = await create("off", sink());
    const bytes: Uint8Array[] = [];
    await migrate(src, async (c) => {
      bytes.push(c.slice());
    });
    const all = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
    let o = 0;
    for (const b of bytes) {
      all.set(b, o);
      o += b.length;
    }
    const rx = new MigrationReceiver();
    for (let i = 0; i < all.length; i += 7777) rx.push(all.subarray(i, Math.min(all.length, i + 7777)));
    expect(rx.done).toBe(true);
    expect(rx.bytes).toBe(all.length);
  }, 120_000);

  it("reports its progress: bytes as they go, each round's dirty pages, the paused step, the end", async () => {
    const src = await create("off", sink());
    const seen: MigrationProgress[] = [];
    const rx = new MigrationReceiver();
    const stats = await migrate(src, async (c) => rx.push(c), { onProgress: (p) => seen.push(p) });
    expect(seen.length).toBeGreaterThan(3);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.bytes).toBeGreaterThanOrEqual(seen[i - 1]!.bytes);
      expect(seen[i]!.pages).toBeGreaterThanOrEqual(seen[i - 1]!.pages);
    }
    // Pages are counted as they go, not only at the end of a round.
    const firstRecord = seen.find((p) => p.bytes > 1 << 20)!;
    expect(firstRecord.pages).toBeGreaterThan(0);
    const phases = seen.map((p) => p.phase).filter((p, i, a) => a[i - 1] !== p);
    expect(phases).toEqual(["copying", "paused", "done"]);
    const last = seen.at(-1)!;
    expect(last).toEqual({ ...stats, phase: "done", dirtyPages: 0, guestPages: (128 << 20) / 4096 });
    expect(last.bytes).toBe(rx.bytes);
    // The count that ended the rounds: the machine never ran, so nothing was dirtied.
    expect(seen.filter((p) => p.phase === "copying").at(-1)!.dirtyPages).toBe(0);
  }, 120_000);

  it("refuses a malformed stream in one line", () => {
    expect(() => new MigrationReceiver().push(new TextEncoder().encode("NOTVISOR1234"))).toThrow(
      /^migration: not a visor migration stream$/,
    );
    const rx = new MigrationReceiver();
    const head = new Uint8Array(17);
    head.set(new TextEncoder().encode("VISORMIG"));
    head[8] = 2;
    head[12] = 9; // record type 9
    expect(() => rx.push(head)).toThrow(/^migration: unknown record type 9$/);
    expect(() => new MigrationReceiver().machine({ console: { write() {} } })).toThrow(
      /^migration: the stream ended/,
    );
  });
});
