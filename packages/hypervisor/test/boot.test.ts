/**
 * Boot tests: the committed guest (guests/riscv64: Linux 6.1 + busybox initramfs) boots
 * on the virt machine in each way the hypervisor can run it, runs one command through
 * `visor.run=` and powers off. The clock is deterministic (time = instructions retired),
 * so a boot does the same work every time; nothing here measures speed.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Machine, type MachineExit, type VirtMode } from "../src/index.ts";

const GUEST = join(import.meta.dirname, "../../../guests/riscv64");
const APPEND = "console=ttyS0 quiet visor.run=uname+-a";
/** A boot to power-off takes about 1.1e8 instructions; far more than that is a hang. */
const INSTRUCTION_LIMIT = 2_000_000_000;
const BOOT_TIMEOUT_MS = 240_000;

interface Boot {
  exit: MachineExit;
  console: string;
}

const kernel = new Uint8Array(readFileSync(join(GUEST, "Image.gz")));
const initrd = new Uint8Array(readFileSync(join(GUEST, "initramfs.cpio.gz")));

async function boot(virt: VirtMode): Promise<Boot> {
  let out = "";
  const decoder = new TextDecoder();
  const machine = await Machine.create({
    memory: 128 << 20,
    kernel,
    initrd,
    append: APPEND,
    console: {
      write(b) {
        out += decoder.decode(b, { stream: true });
      },
    },
    clock: "deterministic",
    virt,
  });
  const harts = machine.vcpus.map((v) => v.hart);
  const watchdog = setInterval(() => {
    if (harts.reduce((n, h) => n + h.instret(), 0) > INSTRUCTION_LIMIT) machine.stop();
  }, 100);
  try {
    const exit = await machine.run();
    return { exit, console: out };
  } finally {
    clearInterval(watchdog);
  }
}

/** The console without printk timestamps, which depend on how many instructions each mode runs. */
function untimed(console: string): string {
  return console.replace(/\r/g, "").replace(/^\[\s*\d+\.\d+\] /gm, "[T] ");
}

const MODES: VirtMode[] = ["off", "nested", "shadow"];
const boots = new Map<VirtMode, Boot>();

describe("boot the bundled guest", () => {
  for (const mode of MODES) {
    it(
      `--virt ${mode}: Linux comes up, runs uname -a, powers off`,
      async () => {
        const b = await boot(mode);
        boots.set(mode, b);
        const tail = b.console.slice(-2000);
        expect(b.exit, tail).toEqual({ kind: "poweroff" });
        expect(b.console).toContain("visor guest: Linux 6.1.192 up");
        expect(b.console).toMatch(/^Linux \(none\) 6\.1\.192 .* riscv64 GNU\/Linux\r?$/m);
        expect(b.console).not.toMatch(/Kernel panic|Oops|BUG:|Unable to handle/);
      },
      BOOT_TIMEOUT_MS,
    );
  }

  it("prints the same thing in every mode", () => {
    const got = MODES.filter((m) => boots.has(m));
    expect(got, "every boot above must have run").toEqual(MODES);
    const uname = (m: VirtMode) => /^Linux \(none\).*GNU\/Linux$/m.exec(untimed(boots.get(m)!.console))?.[0];
    expect(uname("off")).toBeDefined();
    expect(uname("nested")).toBe(uname("off"));
    expect(uname("shadow")).toBe(uname("off"));
    // The whole console, timestamps aside.
    const off = untimed(boots.get("off")!.console);
    expect(untimed(boots.get("nested")!.console)).toBe(off);
    expect(untimed(boots.get("shadow")!.console)).toBe(off);
  });
});
