/**
 * Where `visor run`'s time goes before its guest's first instruction, for `--stats`:
 * main.ts and run.ts set User Timing marks (performance.mark, "visor:" names) as each
 * phase ends, and the start-up line gives each phase's share, in milliseconds since the
 * process started. docs/architecture.md ("Start-up and exit") explains the phases.
 */

/** The phases in order: the mark that ends each one, and its name in the line. */
const PHASES = [
  ["visor:main", "Node and main.ts"],
  ["visor:loaded", "modules"],
  // the kernel and initrd read and gunzipped, --disk and --net opened (--incoming: the VM received)
  ["visor:inputs", "kernel and disks"],
  ["visor:warm-up", "warm-up guest"],
  // Machine.create (or restore), then --api-sock and --gdb opened
  ["visor:machine", "machine"],
] as const;

export type StartupPhase = (typeof PHASES)[number][0];

/** Note that a phase has ended (main.ts sets "visor:main" itself: it imports nothing first). */
export function markPhase(phase: StartupPhase): void {
  performance.mark(phase);
}

/**
 * "start-up: 238 ms before the guest's first instruction (Node and main.ts 61, modules
 * 49, ...)", or undefined when no phase was marked. A phase a run skipped (the warm-up
 * of a bare-metal program) is left out and its time goes to the next.
 */
export function startupLine(): string | undefined {
  const parts: string[] = [];
  let last = 0;
  for (const [mark, label] of PHASES) {
    const at = performance.getEntriesByName(mark, "mark").at(-1)?.startTime;
    if (at === undefined) continue;
    parts.push(`${label} ${(at - last).toFixed(0)}`);
    last = at;
  }
  if (parts.length === 0) return undefined;
  return `start-up: ${last.toFixed(0)} ms before the guest's first instruction (${parts.join(", ")})`;
}
