/**
 * The machine's thread. The page starts one worker per VM (a boot or a restore) and
 * terminates it to throw the VM away; guest instructions never run on the page's thread,
 * so the terminal and the panels stay responsive while Linux boots.
 *
 * The run loop (Machine.run) runs slices of guest instructions and gives the event loop a
 * turn every ~15 ms through yieldToHost. Messages from the page (keys, "save a snapshot")
 * are handled in those turns, between two slices, as the CLI handles a key or a signal.
 */
/// <reference lib="webworker" />
import { Machine, type MachineConsole, warmUp } from "@visor/hypervisor";
import type { FromWorker, JitMode, ToWorker, VirtMode } from "./protocol.ts";
import { collectStats } from "./stats.ts";

declare const self: DedicatedWorkerGlobalScope;

function post(m: FromWorker, transfer: Transferable[] = []): void {
  self.postMessage(m, transfer);
}

/** How often the panels get a fresh sample of the counters. */
const STATS_EVERY_MS = 500;

let machine: Machine | undefined;
/** A worker runs one VM: the page starts another for the next. */
let begun = false;
let started = 0;
let lastStats = 0;

// Console output is batched: one message per event-loop turn, not one per UART byte.
// And flow-controlled: the page acknowledges what its terminal has drawn, and while more
// than OUTPUT_HIGH bytes wait there, the console refuses output and the machine holds the
// guest (MachineConsole.onDrain). A guest that prints without end (`yes`) then runs at the
// terminal's pace instead of queueing output in the page without bound.
const OUTPUT_HIGH = 64 * 1024;
let pending: Uint8Array[] = [];
let flushTimer: ReturnType<typeof setTimeout> | undefined;
/** Bytes taken from the guest that the page has not yet acknowledged. */
let unacked = 0;
let refused = false;
let drained: (() => void) | undefined;
function flush(): void {
  if (flushTimer !== undefined) clearTimeout(flushTimer);
  flushTimer = undefined;
  if (pending.length === 0) return;
  let n = 0;
  for (const p of pending) n += p.length;
  const bytes = new Uint8Array(n);
  let at = 0;
  for (const p of pending) {
    bytes.set(p, at);
    at += p.length;
  }
  pending = [];
  post({ type: "output", bytes }, [bytes.buffer]);
}
const console_: MachineConsole = {
  write(bytes) {
    pending.push(bytes);
    unacked += bytes.length;
    flushTimer ??= setTimeout(flush, 4);
    if (unacked < OUTPUT_HIGH) return true;
    // Held: send what is queued now, the page's acknowledgements will release the guest.
    flush();
    refused = true;
    return false;
  },
  onDrain(listener) {
    drained = listener;
  },
};
function acknowledged(n: number): void {
  unacked = Math.max(0, unacked - n);
  if (refused && unacked < OUTPUT_HIGH / 2) {
    refused = false;
    drained?.();
  }
}

function publishStats(force = false): void {
  if (machine === undefined) return;
  const now = performance.now();
  if (!force && now - lastStats < STATS_EVERY_MS) return;
  lastStats = now;
  post({ type: "stats", stats: collectStats(machine, now - started) });
}

// The run loop's turn for the event loop. A MessageChannel message has no minimum delay;
// setTimeout(0), the machine's default, is held to 4 ms once timers nest in a worker.
const channel = new MessageChannel();
const turns: (() => void)[] = [];
channel.port1.onmessage = () => turns.shift()?.();
function yieldToHost(): Promise<void> {
  flush();
  publishStats();
  return new Promise<void>((resolve) => {
    turns.push(resolve);
    channel.port2.postMessage(0);
  });
}
// While every hart waits for an interrupt the loop sleeps on timers and seldom yields:
// the panels still get their samples.
setInterval(() => publishStats(), STATS_EVERY_MS);

async function fetchBytes(url: string, what: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch the ${what} (${url}): ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`cannot fetch the ${what} (${url}): HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function start(m: Machine, jit: JitMode, restored: boolean): Promise<void> {
  // The small warm-up guest first, as `visor run` does (packages/hypervisor/src/warmup.ts):
  // it gets the engine's optimizing compiler going on the hot paths before Linux starts.
  post({ type: "status", text: `warming up (--virt ${m.virtMode}, --jit ${jit})` });
  await warmUp(m.virtMode, jit);
  machine = m;
  started = performance.now();
  post({ type: "running", virt: m.virtMode as VirtMode, restored });
  const exit = await m.run();
  flush();
  publishStats(true);
  post({ type: "exit", how: exit.kind === "fail" ? `failure code ${exit.code}` : exit.kind });
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case "boot": {
      if (begun) throw new Error("this worker already runs a VM");
      begun = true;
      post({ type: "status", text: "fetching the guest (kernel and initramfs)" });
      const [kernel, initrd] = await Promise.all([
        fetchBytes(msg.kernelUrl, "kernel"),
        fetchBytes(msg.initrdUrl, "initramfs"),
      ]);
      // Machine.create inflates Image.gz and the gzip'd initramfs itself, with the
      // web-standard DecompressionStream("gzip").
      const m = await Machine.create({
        memory: msg.memoryMiB * 2 ** 20,
        kernel,
        initrd,
        append: "console=ttyS0",
        console: console_,
        virt: msg.virt,
        jit: msg.jit,
        stats: true,
        yieldToHost,
      });
      await start(m, msg.jit, false);
      return;
    }
    case "restore": {
      if (begun) throw new Error("this worker already runs a VM");
      begun = true;
      // Every field of the file is checked (validateMachineState) before it is used; a
      // bad file is one "snapshot: ..." line, shown by the page.
      post({ type: "status", text: "reading the snapshot" });
      const m = await Machine.restore(msg.snapshot, {
        console: console_,
        jit: msg.jit,
        stats: true,
        yieldToHost,
      });
      await start(m, msg.jit, true);
      return;
    }
    case "input":
      machine?.input(msg.bytes);
      return;
    case "ack":
      acknowledged(msg.bytes);
      return;
    case "snapshot": {
      if (machine === undefined || machine.exited) throw new Error("snapshot: no VM is running");
      const bytes = machine.snapshot();
      post({ type: "snapshot", bytes }, [bytes.buffer]);
      return;
    }
  }
}

self.onmessage = (e: MessageEvent<ToWorker>) => {
  handle(e.data).catch((err: unknown) => {
    flush();
    post({ type: "error", message: err instanceof Error ? err.message : String(err) });
  });
};
