/**
 * Snapshot files: a real snapshot (a deterministic boot stopped part-way) with bit flips
 * and cut ends must be refused by the checksum; and, with the checksum recomputed so the
 * decoder below it is reached, its JSON state edited (fields set to hostile values,
 * swapped, deleted) and its page index changed must restore or be refused with a
 * one-line "snapshot:" error; a machine that restores must save again to a state that
 * passes the same checks. (Restored machines are not run: a hart whose trap vector
 * faults loops without using its budget, see the fuzz notes in docs/snapshots.md.)
 */
import { decodeSnapshot, Machine } from "@visor/hypervisor";
import fc from "fast-check";
import {
  applyEdits,
  bootedMachine,
  type Edit,
  edits,
  expectRefusal,
  savesAgain,
} from "../lib/machine-state.ts";
import { type FuzzSurface, invariant } from "../surface.ts";

type Input =
  | { kind: "raw"; flips: [number, number][]; cut: number }
  | { kind: "state"; edits: Edit[]; page: [number, number] | null };

let good: Uint8Array | undefined;
const quiet = { write() {} };
const CHECKSUM = 32;

function stateOf(file: Uint8Array) {
  const n = new DataView(file.buffer, file.byteOffset).getUint32(12, true);
  return { n, state: JSON.parse(new TextDecoder().decode(file.subarray(16, 16 + n))) };
}

/**
 * The file with a new JSON state and its page index edited. Its checksum is left zero:
 * the decoder is called with skipChecksum, as if the checksum had been recomputed.
 */
function rebuild(file: Uint8Array, state: unknown, page: [number, number] | null): Uint8Array {
  const { n } = stateOf(file);
  const json = new TextEncoder().encode(JSON.stringify(state) ?? "null");
  const rest = file.slice(16 + n, file.length - CHECKSUM);
  if (page !== null && rest.length >= 8) {
    const dv = new DataView(rest.buffer);
    const count = dv.getUint32(0, true);
    if (count > 0) dv.setUint32(4 + 4 * (page[0] % count), page[1], true);
  }
  const out = new Uint8Array(16 + json.length + rest.length + CHECKSUM);
  out.set(file.subarray(0, 16));
  new DataView(out.buffer).setUint32(12, json.length, true);
  out.set(json, 16);
  out.set(rest, 16 + json.length);
  return out;
}

const surface: FuzzSurface<Input> = {
  name: "snapshot",
  description:
    "snapshot files: flips and cuts (the checksum refuses), and edited states below the checksum: restore or a one-line snapshot: error",
  arbitrary: fc.oneof(
    fc.record({
      kind: fc.constant("raw" as const),
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
      cut: fc.nat(),
    }),
    {
      arbitrary: fc.record({
        kind: fc.constant("state" as const),
        edits,
        page: fc.option(fc.tuple(fc.nat(), fc.oneof(fc.nat(8000), fc.constant(0xffff_ffff)))),
      }),
      weight: 8,
    },
  ),
  async setup() {
    good ??= (await bootedMachine("nested", 300)).snapshot();
  },
  async check(input) {
    const base = good!;
    let file: Uint8Array;
    if (input.kind === "raw") {
      file = base.slice(0, input.cut % (base.length + 1));
      for (const [at, x] of input.flips) if (file.length > 0) file[at % file.length]! ^= x;
    } else {
      file = rebuild(base, applyEdits(stateOf(base).state, input.edits), input.page);
    }
    let m: Machine;
    try {
      if (input.kind === "raw") {
        m = await Machine.restore(file, { console: quiet });
      } else {
        const d = decodeSnapshot(file, { skipChecksum: true });
        m = await Machine.restoreState(d.state, (ram) => d.loadRam(ram), { console: quiet });
      }
    } catch (e) {
      expectRefusal(e, /^snapshot: /);
      return;
    }
    if (input.kind === "raw") {
      invariant(
        file.length === base.length && file.every((b, i) => b === base[i]),
        "a changed file was accepted",
      );
    }
    savesAgain(m);
  },
  ciRuns: 60,
};

export default surface;
