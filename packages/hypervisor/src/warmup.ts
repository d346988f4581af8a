/**
 * JIT warm-up. The hart's interpreter is one large function; V8 optimizes it from the type
 * feedback gathered so far, and every path that had not run yet when it was optimized
 * (a new instruction class, a TLB miss, a trap, an exit) deoptimizes it again the first
 * time it runs. A Linux boot meets those paths one by one over its first second, and each
 * costs a deoptimization plus a recompile of the interpreter.
 *
 * warmUp() runs a small guest (packages/hypervisor/warmup: a few thousand bytes of S-mode
 * code, about 0.2 M instructions) that touches those paths in a few tens of milliseconds,
 * so the real guest starts with complete feedback. Type feedback is shared by every Hart
 * and Machine in the process, so one run per virtualization mode is enough (per binary
 * translation mode too: a host that asked for `jit: "off"` runs no translated code at all,
 * not even here).
 *
 * It pays for itself many times over. The bundled guest's boot (`visor run --memory 256M
 * --append "console=ttyS0 quiet visor.run=uname+-a"`), with and without the warm-up, runs
 * interleaved, medians of 5 on a 2-core host (December 2026):
 *
 *   --jit/--virt    warm-up   wall with / without   CPU time with / without
 *   on/nested        82 ms     1.64 / 2.27 s          2.27 / 3.54 s
 *   on/off           94 ms     1.78 / 2.42 s          2.32 / 3.57 s
 *   on/shadow        95 ms     1.82 / 2.33 s          2.47 / 3.53 s
 *   off/nested      146 ms     2.43 / 3.13 s          2.51 / 3.42 s
 *
 * (docs/architecture.md, "Start-up and exit", has the command that measures the phases.)
 */
import type { JitMode } from "@visor/cpu";
import { Machine, type MachineOptions } from "./machine.ts";
import type { VirtMode } from "./vcpu-host.ts";
import { WARMUP_IMAGE_BASE64 } from "./warmup-image.ts";

const warmed = new Set<string>();

/** The warm-up guest: a RISC-V Linux Image that ends with an SBI shutdown. */
export function warmupImage(): Uint8Array {
  const s = atob(WARMUP_IMAGE_BASE64);
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/** A machine with the warm-up guest loaded, ready to run; `options` adds to its defaults. */
export function warmupMachine(virt: VirtMode, options: Partial<MachineOptions> = {}): Promise<Machine> {
  return Machine.create({
    memory: 16 << 20,
    kernel: warmupImage(),
    console: { write() {} },
    virt,
    rng: false,
    ...options,
  });
}

/**
 * Run the warm-up guest in `virt` mode with binary translation `jit` (default "on"), once
 * per pair of modes per process. Resolves to the milliseconds it took (0 when the modes
 * were already warm). Throws if the guest does not power off cleanly, which is a bug in Visor.
 */
export async function warmUp(virt: VirtMode = "nested", jit: JitMode = "on"): Promise<number> {
  const key = `${virt}/${jit}`;
  if (warmed.has(key)) return 0;
  warmed.add(key);
  const t0 = performance.now();
  const exit = await (await warmupMachine(virt, { jit })).run();
  if (exit.kind !== "poweroff") throw new Error(`warm-up guest ended with ${exit.kind}, not a power-off`);
  return performance.now() - t0;
}
