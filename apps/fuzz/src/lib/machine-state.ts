/**
 * Shared by the snapshot and migration surfaces: a small machine part-way into a Linux
 * boot (so its devices and harts hold real state), edits to a JSON state (set a field to
 * a hostile value, swap two fields, delete one), and what counts as a clean refusal.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Machine, type VirtMode, validateMachineState } from "@visor/hypervisor";
import fc from "fast-check";
import { InvariantError, invariant } from "../surface.ts";

const GUEST = join(import.meta.dirname, "../../../../guests/riscv64");

/** A deterministic 16 MiB machine booting Linux, stopped after about `ms` of running. */
export async function bootedMachine(virt: VirtMode, ms: number): Promise<Machine> {
  const { m, running } = await runningMachine(virt, ms);
  m.stop();
  await running;
  return m;
}

/** The same, still running (live migration needs a running machine). */
export async function runningMachine(
  virt: VirtMode,
  ms: number,
): Promise<{ m: Machine; running: Promise<unknown> }> {
  const m = await Machine.create({
    memory: 16 << 20,
    kernel: new Uint8Array(readFileSync(join(GUEST, "Image.gz"))),
    initrd: new Uint8Array(readFileSync(join(GUEST, "initramfs.cpio.gz"))),
    append: "console=ttyS0",
    console: { write() {} },
    clock: "deterministic",
    virt,
  });
  const running = m.run();
  await new Promise((r) => setTimeout(r, ms));
  return { m, running };
}

/** Every path into a JSON value, up to `depth`, arrays and objects alike. */
export function paths(v: unknown, depth = 5, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [];
  if (depth === 0 || v === null || typeof v !== "object") return out;
  const keys: (string | number)[] = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  for (const k of keys) {
    const p = [...prefix, k];
    out.push(p);
    out.push(...paths((v as Record<string | number, unknown>)[k], depth - 1, p));
  }
  return out;
}

/** Values a hostile file would put in a field. */
export const hostileValue = fc.oneof(
  fc.constantFrom<unknown>(
    "abc",
    null,
    -1,
    0,
    1.5,
    2 ** 32,
    2 ** 53,
    -(2 ** 31) - 1,
    1e308,
    true,
    [],
    {},
    [1, 2, 3],
    { length: 5 },
    "",
  ),
  fc.integer(),
  fc.jsonValue({ maxDepth: 2 }),
);

export type Edit =
  | { op: "set"; at: number; value: unknown }
  | { op: "swap"; at: number; with: number }
  | { op: "delete"; at: number };

export const edits = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant("set" as const), at: fc.nat(), value: hostileValue }),
    fc.record({ op: fc.constant("swap" as const), at: fc.nat(), with: fc.nat() }),
    fc.record({ op: fc.constant("delete" as const), at: fc.nat() }),
  ),
  { minLength: 1, maxLength: 4 },
);

function parentOf(root: Record<string, unknown>, path: (string | number)[]) {
  let o: unknown = root;
  for (const k of path.slice(0, -1)) {
    if (o === null || typeof o !== "object") return undefined;
    o = (o as Record<string | number, unknown>)[k];
  }
  return o !== null && typeof o === "object" ? (o as Record<string | number, unknown>) : undefined;
}

/** Apply `list` to a copy of `state`. */
export function applyEdits(state: unknown, list: Edit[]): Record<string, unknown> {
  const s = structuredClone(state) as Record<string, unknown>;
  for (const e of list) {
    const all = paths(s);
    if (all.length === 0) break;
    const p = all[e.at % all.length]!;
    const parent = parentOf(s, p);
    if (parent === undefined) continue;
    const key = p[p.length - 1]!;
    if (e.op === "set") parent[key] = e.value;
    else if (e.op === "delete") delete parent[key];
    else {
      const q = all[e.with % all.length]!;
      const other = parentOf(s, q);
      if (other === undefined) continue;
      const k2 = q[q.length - 1]!;
      const t = parent[key];
      parent[key] = other[k2];
      other[k2] = t;
    }
  }
  return s;
}

/** A refusal must be one line that starts with `prefix`. */
export function expectRefusal(e: unknown, prefix: RegExp): void {
  invariant(e instanceof Error, `threw a non-Error: ${String(e)}`);
  invariant(prefix.test(e.message), `not a one-line refusal: ${e.name}: ${e.message}`);
  invariant(!e.message.includes("\n"), `a multi-line error: ${e.message}`);
  invariant(
    !(e instanceof TypeError) && !(e instanceof RangeError),
    `a host exception: ${e.name}: ${e.message}`,
  );
}

/** A machine that was let in must save again to a state that passes the same checks. */
export function savesAgain(m: Machine): void {
  try {
    validateMachineState(JSON.parse(JSON.stringify(m.saveState())));
  } catch (e) {
    throw new InvariantError(`restored, but saves an invalid state: ${(e as Error).message}`);
  }
}
