/**
 * The project's own ISA suite: every committed program in packages/cpu/fixtures/isa/bin
 * runs as the firmware of a virt machine (M-mode, hypervisor extension present, HTIF on
 * the ELF's tohost symbol, deterministic clock) and must report code 0, once with the
 * interpreter alone (jit "off") and once with every instruction the binary translator
 * handles translated (jit "always"): the suite is the translator's conformance test too.
 * The programs are
 * self-checking; a failure reports the number of the first failing check (see
 * packages/cpu/fixtures/isa/src/visor-test.h). No cross toolchain is needed here, only to
 * rebuild the ELFs (packages/cpu/fixtures/isa/build.sh).
 *
 * VISOR_ISA_BIN=<dir> runs the ELFs of another folder instead (for checking a scratch
 * build).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { JitMode, JitStats } from "@visor/cpu";
import { describe, expect, it } from "vitest";
import { Machine, type MachineExit } from "../src/index.ts";

const FIXTURES = join(import.meta.dirname, "../../cpu/fixtures/isa");
const BIN = process.env.VISOR_ISA_BIN ?? join(FIXTURES, "bin");
const SRC = join(FIXTURES, "src");

/** A program that never reports within this many instructions has hung. */
const INSTRUCTION_LIMIT = 100_000_000;

/** Programs that must fail, with the code they must report: controls for the runner. */
const CONTROLS: Record<string, number> = {
  "harness-fail": 3, // check 3 fails on purpose
  "harness-trap": 0x800 | 2, // an unexpected trap in check 2
};

/**
 * Programs that find a bug in the CPU that is not fixed yet: the test is expected to fail
 * (it.fails), with the reason. Remove the entry once the bug is fixed.
 */
const KNOWN_BUGS: Record<string, string> = {};

/** Like KNOWN_BUGS, for bugs of the binary translator only (the program passes with jit "off"). */
const KNOWN_JIT_BUGS: Record<string, string> = {};

/** The translator modes every program runs in: the interpreter alone, and translate-everything. */
const MODES: readonly JitMode[] = ["off", "always"];

interface IsaRun {
  exit: MachineExit | { kind: "error"; message: string };
  instructions: number;
  console: string;
  jit: JitStats;
}

/** Run one bare-metal HTIF program on a fresh virt machine. */
async function runIsaProgram(elf: Uint8Array, jit: JitMode): Promise<IsaRun> {
  let out = "";
  const decoder = new TextDecoder();
  const machine = await Machine.create({
    memory: 32 << 20,
    bios: elf,
    console: {
      write(b) {
        out += decoder.decode(b);
      },
    },
    clock: "deterministic",
    jit,
  });
  const hart = machine.vcpus[0]!.hart;
  // The run loop yields to the event loop between slices; stop a program that hangs.
  const watchdog = setInterval(() => {
    if (hart.instret() > INSTRUCTION_LIMIT) machine.stop();
  }, 20);
  try {
    const exit = await machine.run();
    return { exit, instructions: hart.instret(), console: out, jit: hart.jitStats };
  } catch (e) {
    const exit = { kind: "error" as const, message: String(e) };
    return { exit, instructions: hart.instret(), console: out, jit: hart.jitStats };
  } finally {
    clearInterval(watchdog);
  }
}

/** A one-line account of a run, for failure messages. */
function describeRun(name: string, r: IsaRun): string {
  const e = r.exit;
  if (e.kind === "htif") {
    if (e.code === 0) return `${name}: pass`;
    const check = e.code & 0x7ff;
    return e.code & 0x800
      ? `${name}: unexpected trap during check ${check}`
      : `${name}: check ${check} failed`;
  }
  if (e.kind === "stopped") return `${name}: no result after ${r.instructions} instructions (hung)`;
  if (e.kind === "error") return `${name}: ${e.message}`;
  return `${name}: machine exit ${JSON.stringify(e)}`;
}

const programs = existsSync(BIN)
  ? readdirSync(BIN)
      .filter((f) => f.endsWith(".elf"))
      .map((f) => basename(f, ".elf"))
      .sort()
  : [];

describe("ISA fixtures", () => {
  it("are all there: one ELF per source, and a broad suite", () => {
    const sources = readdirSync(SRC)
      .filter((f) => f.endsWith(".S"))
      .map((f) => basename(f, ".S"))
      .sort();
    if (process.env.VISOR_ISA_BIN === undefined) expect(programs).toEqual(sources);
    expect(programs.filter((p) => !(p in CONTROLS)).length).toBeGreaterThanOrEqual(25);
  });

  for (const mode of MODES) {
    describe(`jit ${mode}`, () => {
      for (const name of programs) {
        const control = CONTROLS[name];
        const bug = KNOWN_BUGS[name] ?? (mode !== "off" ? KNOWN_JIT_BUGS[name] : undefined);
        const title = control !== undefined ? `${name} (control: must report ${control})` : name;
        const test = bug !== undefined ? it.fails : it;
        test(bug !== undefined ? `${title} [known bug: ${bug}]` : title, async () => {
          const r = await runIsaProgram(new Uint8Array(readFileSync(join(BIN, `${name}.elf`))), mode);
          const want: MachineExit = { kind: "htif", code: control ?? 0 };
          expect(r.exit, `jit ${mode}: ${describeRun(name, r)}`).toEqual(want);
          expect(r.console).toBe("");
          if (mode === "off") {
            expect(r.jit.mode).toBe("off");
            expect(r.jit.executedTranslated).toBe(0);
          } else if (r.jit.unavailable === "") {
            // The translator is in effect: the program must really have run translated.
            expect(r.jit.mode).toBe(mode);
            expect(r.jit.executedTranslated).toBeGreaterThan(0);
          }
        });
      }
    });
  }
});
