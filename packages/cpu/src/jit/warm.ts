/**
 * The translator's warm-up: once per process, before the first hart with a translator
 * runs, a few hundred thousand instructions on a scratch hart that translates everything,
 * so V8's type feedback for the interpreter loop (hart.ts `run`) includes its
 * translated-code path. Without it, the loop is optimized without that path, thrown away
 * when translated code first runs, and optimized again: a 0.15 s loop of system calls
 * took 2.5x as long.
 */
import { GuestRam } from "@visor/memory";
import { EXIT_M } from "../core.ts";
import type { HartExit } from "../exit.ts";

/** What the warm-up needs of a hart (hart.ts passes a factory, so this module does not import it). */
export interface WarmHart {
  exitMask: number;
  reset(pc: number, hi?: number): void;
  run(budget: number): HartExit;
}

let warm = false;

export function warmTranslator(makeHart: (ram: GuestRam) => WarmHart): void {
  if (warm) return;
  warm = true;
  const ram = new GuestRam(0x8000_0000, 1 << 16);
  if (ram.memory === undefined) return;
  // auipc a1, 1 (a data page); li a5, 300
  // loop: ld a2, 0(a1); add a0, a0, a2; sd a0, 8(a1); addi a5, a5, -1; bnez a5, loop; ebreak
  const prog = [
    0x00001597, 0x00058593, 0x12c00793, 0x0005b603, 0x00c50533, 0x00a5b423, 0xfff78793, 0xfe0798e3,
    0x00100073,
  ];
  for (let i = 0; i < prog.length; i++) ram.dv.setInt32(4 * i, prog[i]!, true);
  // Five scratch harts in turn: each has its own trampoline, so the loop's call into
  // translated code meets five functions and V8 optimizes it as a generic call; with one,
  // it would specialize on that hart's and throw the code away when the next hart runs.
  const harts = Array.from({ length: 5 }, () => makeHart(ram));
  for (const h of harts) h.exitMask = EXIT_M;
  for (let round = 0; round < 200; round++) {
    const h = harts[round % harts.length]!;
    h.reset(0x8000_0000, 0);
    for (let i = 0; i < 40 && h.run(97).kind === "budget"; i++);
  }
}
