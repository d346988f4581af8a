/**
 * The hart's warm-up, for V8 rather than for any guest: once per process, before the first
 * Hart runs, a few scratch harts run a few thousand instructions so that V8's type feedback
 * for the interpreter loop (hart.ts `run`) covers its paths before V8 optimizes it. A path
 * that has not run when V8 optimizes the loop deoptimizes it the first time it does, and V8
 * compiles the loop again (tens of milliseconds of Maglev and over a hundred of TurboFan,
 * meanwhile the loop runs in a slower tier).
 *
 * 1. The exercise program (../../warmup: start.S and exercise.S, also in the hypervisor's
 *    warm-up guest) in M-mode, on a hart in the process's translation mode: every
 *    instruction class the interpreter has a case for, then a loop that gets hot (a
 *    translating hart's counters start at WARM_HOT, so it compiles its loop after a few
 *    hundred instructions). Without it `visor exec` deoptimized the loop four or five times
 *    in its first second (an instruction class the program met late, the first hot jump);
 *    a busybox shell loop of 300 iterations took 245-350 ms instead of 190-260.
 * 2. A loop on five harts that translate everything, so the feedback includes the
 *    translated-code path: without it, a 0.15 s loop of system calls took 2.5x as long.
 */
import { GuestRam } from "@visor/memory";
import { EXIT_M } from "../core.ts";
import type { HartExit } from "../exit.ts";
import type { JitMode } from "./types.ts";
import { WARM_PROGRAM_BASE64, WARM_PROGRAM_RAM } from "./warm-image.ts";

/** What the warm-up needs of a hart (hart.ts passes a factory, so this module does not import it). */
export interface WarmHart {
  exitMask: number;
  reset(pc: number, hi?: number): void;
  run(budget: number): HartExit;
}

/** Jumps to one target before a warm-up hart translates it (start.S's last loop runs past it). */
export const WARM_HOT = 64;

const BASE = 0x8000_0000;
let warm = false;

/**
 * Warm V8 up for `run`, once per process, for the translation mode of the process's first
 * hart (`mode`: "off" warms the interpreter alone); `makeHart` makes a scratch hart.
 */
export function warmUpHarts(mode: JitMode, makeHart: (ram: GuestRam, jit: JitMode) => WarmHart): void {
  if (warm) return;
  warm = true;
  // Only the first hart's mode: feedback from the other (interpreter-only harts take other
  // paths at the translator's sites) made a boot's optimized loop slower.
  {
    const ram = new GuestRam(BASE, WARM_PROGRAM_RAM);
    ram.u8.set(
      Uint8Array.from(atob(WARM_PROGRAM_BASE64), (ch) => ch.charCodeAt(0)),
      0,
    );
    const h = makeHart(ram, mode === "off" ? "off" : "on");
    h.exitMask = EXIT_M;
    h.reset(BASE, 0);
    // it ends at its ebreak (an M-mode exit) after about 27 000 instructions
    for (let i = 0; i < 100 && h.run(1000).kind === "budget"; i++);
  }
  if (mode === "off") return;
  const ram = new GuestRam(BASE, 1 << 16);
  if (ram.memory === undefined) return; // no translation here
  // auipc a1, 1 (a data page); li a5, 300
  // loop: ld a2, 0(a1); add a0, a0, a2; sd a0, 8(a1); addi a5, a5, -1; bnez a5, loop; ebreak
  const loop = [
    0x00001597, 0x00058593, 0x12c00793, 0x0005b603, 0x00c50533, 0x00a5b423, 0xfff78793, 0xfe0798e3,
    0x00100073,
  ];
  for (let i = 0; i < loop.length; i++) ram.dv.setInt32(4 * i, loop[i]!, true);
  // Five scratch harts in turn: each has its own trampoline, so the loop's call into
  // translated code meets five functions and V8 optimizes it as a generic call; with one,
  // it would specialize on that hart's and throw the code away when the next hart runs.
  const harts = Array.from({ length: 5 }, () => makeHart(ram, "always"));
  for (const h of harts) h.exitMask = EXIT_M;
  for (let round = 0; round < 200; round++) {
    const h = harts[round % harts.length]!;
    h.reset(BASE, 0);
    for (let i = 0; i < 40 && h.run(97).kind === "budget"; i++);
  }
}
