/**
 * The migration receiver: a real stream (a deterministic boot migrated part-way) with
 * records dropped, repeated, swapped, their length fields changed, garbage records added,
 * bytes flipped, the configuration and the final state edited (fields set to hostile
 * values, swapped, deleted) and the end cut off, fed in chunks of any size. It must
 * refuse in one line ("migration:" or, when the machine is built, "snapshot:"), hold at
 * most one record and no page beyond the announced machine, and a machine it builds must
 * save again to a state that passes the same checks. Some inputs go over a loopback socket
 * to the receiver visor run uses, with a small time-out, where the sender may also stall:
 * the receiver must give up, never hang.
 */
import { connect, type Socket } from "node:net";
import {
  type MachineConfigState,
  MIGRATION_MAX_RECORD,
  MigrationReceiver,
  migrate,
  ramBytes,
} from "@visor/hypervisor";
import { acceptMigration } from "@visor/hypervisor/node";
import fc from "fast-check";
import {
  applyEdits,
  type Edit,
  edits,
  expectRefusal,
  runningMachine,
  savesAgain,
} from "../lib/machine-state.ts";
import { type FuzzSurface, invariant } from "../surface.ts";

const REFUSAL = /^(migration|snapshot): /;
const PAGE = 4096;
/** The loopback receiver's time-out: small, so a stalled input costs little. */
const LOOPBACK_TIMEOUT_MS = 150;

type RecordEdit =
  | { op: "drop"; at: number }
  | { op: "repeat"; at: number }
  | { op: "swap"; at: number; with: number }
  | { op: "length"; at: number; len: number }
  | { op: "garbage"; at: number; type: number; len: number; body: Uint8Array }
  | { op: "flip"; at: number; byte: number; x: number };

interface Input {
  records: RecordEdit[];
  config: Edit[] | null;
  state: Edit[] | null;
  chunks: number[];
  cut: number | null;
  loopback: { stall: boolean } | null;
}

/** The stream as its parts: header, config record, page records, state record. */
let parts: Uint8Array[] | undefined;

function rec(type: number, body: Uint8Array): Uint8Array {
  const r = new Uint8Array(5 + body.length);
  r[0] = type;
  new DataView(r.buffer).setUint32(1, body.length, true);
  r.set(body, 5);
  return r;
}

function editJson(r: Uint8Array, list: Edit[]): Uint8Array {
  const v = JSON.parse(new TextDecoder().decode(r.subarray(5)));
  return rec(r[0]!, new TextEncoder().encode(JSON.stringify(applyEdits(v, list)) ?? "null"));
}

function build(input: Input): Uint8Array {
  const list = parts!.map((p) => p);
  if (input.config !== null) list[1] = editJson(list[1]!, input.config);
  if (input.state !== null) list[list.length - 1] = editJson(list[list.length - 1]!, input.state);
  for (const e of input.records) {
    const i = e.at % list.length;
    if (e.op === "drop") list.splice(i, 1);
    else if (e.op === "repeat") list.splice(i, 0, list[i]!);
    else if (e.op === "swap") {
      const j = e.with % list.length;
      [list[i], list[j]] = [list[j]!, list[i]!];
    } else if (e.op === "length") {
      const r = list[i]!.slice();
      if (r.length >= 5) new DataView(r.buffer).setUint32(1, e.len, true);
      list[i] = r;
    } else if (e.op === "garbage") {
      const g = new Uint8Array(5 + e.body.length);
      g[0] = e.type;
      new DataView(g.buffer).setUint32(1, e.len, true);
      g.set(e.body, 5);
      list.splice(i, 0, g);
    } else {
      const r = list[i]!.slice();
      if (r.length > 0) r[e.byte % r.length]! ^= e.x;
      list[i] = r;
    }
    if (list.length === 0) break;
  }
  const all = Buffer.concat(list);
  return input.cut === null ? all : all.subarray(0, input.cut % (all.length + 1));
}

/** Feed the stream in chunks; the machine if one arrives, checking the bounds as it goes. */
async function inMemory(bytes: Uint8Array, chunks: number[]): Promise<void> {
  let config: MachineConfigState | undefined;
  const rx = new MigrationReceiver({
    checkConfig: (c) => {
      config = c;
    },
  });
  const sizes = chunks.length > 0 ? chunks : [bytes.length];
  let o = 0;
  let k = 0;
  let largest = 0;
  try {
    while (o < bytes.length) {
      const n = Math.max(1, sizes[k++ % sizes.length]!);
      largest = Math.max(largest, n);
      rx.push(bytes.subarray(o, o + n));
      o += n;
      invariant(rx.bufferedBytes <= MIGRATION_MAX_RECORD + largest, `holds ${rx.bufferedBytes} bytes`);
      if (config !== undefined) {
        invariant(rx.pageCount <= ramBytes(config) / PAGE, `holds ${rx.pageCount} pages`);
      }
    }
    const m = await rx.machine({ console: { write() {} } });
    savesAgain(m);
  } catch (e) {
    expectRefusal(e, REFUSAL);
  }
}

/** Over a socket to visor run's receiver: it resolves or refuses; it never hangs. */
async function overLoopback(bytes: Uint8Array, stall: boolean): Promise<void> {
  let port = 0;
  let listening: () => void = () => {};
  const ready = new Promise<void>((r) => {
    listening = r;
  });
  const accepted = acceptMigration(
    { host: "127.0.0.1", port: 0 },
    {
      security: { kind: "insecure" },
      timeoutMs: LOOPBACK_TIMEOUT_MS,
      onListening: (p) => {
        port = p;
        listening();
      },
    },
  );
  const outcome = accepted.then(
    () => undefined,
    (e: unknown) => e,
  );
  await Promise.race([ready, outcome]);
  let sock: Socket | undefined;
  if (port !== 0) {
    sock = connect({ host: "127.0.0.1", port });
    sock.on("error", () => {});
    if (stall) sock.write(bytes);
    else sock.end(bytes);
  }
  const e = await outcome;
  sock?.destroy();
  if (e !== undefined) expectRefusal(e, REFUSAL);
}

const recordEdit: fc.Arbitrary<RecordEdit> = fc.oneof(
  fc.record({ op: fc.constant("drop" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("repeat" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("swap" as const), at: fc.nat(), with: fc.nat() }),
  fc.record({
    op: fc.constant("length" as const),
    at: fc.nat(),
    len: fc.oneof(fc.nat(1 << 21), fc.constant(0xffff_ffff)),
  }),
  fc.record({
    op: fc.constant("garbage" as const),
    at: fc.nat(),
    type: fc.nat(255),
    len: fc.oneof(fc.nat(64), fc.constant(0xffff_ffff), fc.constant(MIGRATION_MAX_RECORD)),
    body: fc.uint8Array({ maxLength: 64 }),
  }),
  fc.record({
    op: fc.constant("flip" as const),
    at: fc.nat(),
    byte: fc.nat(),
    x: fc.integer({ min: 1, max: 255 }),
  }),
);

/** `arb` `yes` times in `yes + no`, null otherwise. */
function sometimes<T>(arb: fc.Arbitrary<T>, yes: number, no: number): fc.Arbitrary<T | null> {
  return fc.oneof({ arbitrary: arb, weight: yes }, { arbitrary: fc.constant(null), weight: no });
}

const surface: FuzzSurface<Input> = {
  name: "migration",
  description:
    "migration streams with records dropped, repeated, resized, flipped, edited: refuse in one line, bounded memory, no hang",
  arbitrary: fc.record({
    records: fc.array(recordEdit, { maxLength: 3 }),
    config: sometimes(edits, 1, 2),
    state: sometimes(edits, 1, 1),
    chunks: fc.array(fc.integer({ min: 1, max: 1 << 20 }), { maxLength: 4 }),
    cut: sometimes(fc.nat(), 1, 3),
    loopback: sometimes(fc.record({ stall: fc.boolean() }), 1, 9),
  }),
  async setup() {
    if (parts !== undefined) return;
    const { m, running } = await runningMachine("off", 200);
    const out: Uint8Array[] = [];
    await migrate(m, async (c) => {
      out.push(c.slice());
    });
    await running;
    parts = out;
  },
  async check(input) {
    const bytes = build(input);
    if (input.loopback !== null) await overLoopback(bytes, input.loopback.stall);
    else await inMemory(bytes, input.chunks);
  },
  ciRuns: 60,
};

export default surface;
