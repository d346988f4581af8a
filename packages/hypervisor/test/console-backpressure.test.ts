/**
 * Console back-pressure: a guest that floods the console (the UART, the SBI debug
 * console, HTIF writes; fixtures/flood) into a sink that is full must be held, not
 * buffered for. The console here takes `room` bytes, then returns false from write();
 * the machine must stop running guest instructions (no more output, no instruction
 * retired) until the console calls its drain listener, and then go on.
 *
 * Nothing here depends on time: "held" is checked across many turns of the event loop,
 * during which a running machine would have produced output.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  CONSOLE_INPUT_CAPACITY,
  HTIF_MAX_WRITE,
  Machine,
  type MachineConsole,
  type VirtMode,
} from "../src/index.ts";

const BIN = join(import.meta.dirname, "fixtures/flood/bin");
const MEMORY = 64 << 20;
/** What the console accepts before it says "full", and again after each drain. */
const ROOM = 4096;
/** Event-loop turns during which a held machine must not move. */
const HELD_TURNS = 200;
/** Output a running flood would produce long before the test gives up on it being held. */
const RUNAWAY = 4 << 20;
/** Hold-and-drain cycles per case. */
const ROUNDS = 3;

class FullConsole implements MachineConsole {
  bytes = 0;
  /** Bytes accepted before write() says full. */
  room = ROOM;
  private listener: (() => void) | undefined;
  write(b: Uint8Array): boolean {
    this.bytes += b.length;
    return this.bytes < this.room;
  }
  onDrain(listener: () => void): void {
    this.listener = listener;
  }
  drain(): void {
    this.room = this.bytes + ROOM;
    this.listener?.();
  }
}

const turn = () => new Promise<void>((r) => setImmediate(r));

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await turn();
}

interface Case {
  name: string;
  kernel?: string;
  bios?: string;
  modes: VirtMode[];
  /** Most output one guest action produces (what can pass after the console says full). */
  chunk: number;
}

const CASES: Case[] = [
  { name: "UART THR writes", kernel: "uart-flood.bin", modes: ["off", "nested", "shadow"], chunk: 1 },
  { name: "SBI DBCN writes", kernel: "sbi-flood.bin", modes: ["off", "nested", "shadow"], chunk: 65536 },
  { name: "HTIF write syscalls", bios: "htif-flood.elf", modes: ["off"], chunk: HTIF_MAX_WRITE },
];

describe("a guest flooding a full console is held until it drains", () => {
  for (const c of CASES) {
    for (const virt of c.modes) {
      it(`${c.name} (--virt ${virt})`, async () => {
        const console = new FullConsole();
        const machine = await Machine.create({
          memory: MEMORY,
          ...(c.kernel ? { kernel: new Uint8Array(readFileSync(join(BIN, c.kernel))), append: "" } : {}),
          ...(c.bios ? { bios: new Uint8Array(readFileSync(join(BIN, c.bios))) } : {}),
          rng: false,
          console,
          clock: "deterministic",
          virt,
          yieldToHost: turn,
        });
        const hart = machine.vcpus[0]!.hart;
        const running = machine.run();
        try {
          for (let round = 0; round < ROUNDS; round++) {
            await until(() => machine.outputBlocked || console.bytes > RUNAWAY);
            expect(machine.outputBlocked).toBe(true);
            const bytes = console.bytes;
            const retired = hart.executedCount();
            // Past the "full" answer, at most what one guest action carries got through.
            expect(bytes).toBeLessThanOrEqual(console.room + c.chunk);
            for (let i = 0; i < HELD_TURNS; i++) await turn();
            expect(console.bytes).toBe(bytes);
            expect(hart.executedCount()).toBe(retired);
            console.drain();
            expect(machine.outputBlocked).toBe(false);
            await until(() => console.bytes > bytes);
          }
        } finally {
          machine.stop();
        }
        expect(await running).toEqual({ kind: "stopped" });
      });
    }
  }

  it("stop() ends a machine that is held for output", async () => {
    const console = new FullConsole();
    const machine = await Machine.create({
      memory: MEMORY,
      kernel: new Uint8Array(readFileSync(join(BIN, "sbi-flood.bin"))),
      append: "",
      rng: false,
      console,
      clock: "deterministic",
      virt: "off",
      yieldToHost: turn,
    });
    const running = machine.run();
    await until(() => machine.outputBlocked || console.bytes > RUNAWAY);
    expect(machine.outputBlocked).toBe(true);
    machine.stop();
    expect(await running).toEqual({ kind: "stopped" });
  });

  it("keeps a bounded amount of host input that the guest does not read", async () => {
    const machine = await Machine.create({
      memory: MEMORY,
      kernel: new Uint8Array(readFileSync(join(BIN, "idle.bin"))),
      append: "",
      rng: false,
      console: { write() {} },
      clock: "deterministic",
      virt: "off",
    });
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    let kept = 0;
    for (let i = 0; i < 64; i++) kept += machine.input(chunk);
    // The UART's input buffer (4096 bytes by default) plus the SBI console's.
    expect(kept).toBeLessThanOrEqual(4096 + CONSOLE_INPUT_CAPACITY);
    expect(machine.saveState().consoleIn.length).toBeLessThanOrEqual(CONSOLE_INPUT_CAPACITY);
  });
});
