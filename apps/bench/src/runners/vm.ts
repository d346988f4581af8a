/**
 * Child-process runner: boot one VM on visor's virt machine (@visor/hypervisor `Machine`,
 * the same object `visor run` drives) and report what the guest printed plus the
 * hypervisor's counters as one JSON line on stdout:
 *
 *   @@visor-vm {"exit":{...},"wallMs":...,"console":"...","marks":[...],"final":{...}}
 *
 * `marks` are counter snapshots taken when a console line starting with "@@bench " is
 * complete on the UART (the paging guest prints "@@bench begin NAME" / "@@bench end NAME
 * ..." around each workload), so a suite can take the difference over just the workload.
 *
 * Options (one JSON object as the only argument):
 *   kernel      path of a Linux Image/Image.gz (or the exits guest, which is one)
 *   initrd      paths of initramfs archives, concatenated in order (optional)
 *   append      kernel command line
 *   virt        "off" | "nested" | "shadow"
 *   memoryMiB   guest RAM (default 256)
 *   benchRng    "fast" | "slow": give the machine no virtio device of its own and put a
 *               virtio-rng transport in slot 0 here, with the ioeventfd-style QueueNotify
 *               write listener exactly as Machine installs it ("fast") or without it
 *               ("slow", every notify decoded by the transport's register write)
 *   timeoutMs   give up (exit "stopped") after this long
 *   pioProbe    add `pio=ADDR` (port 0x80 in the PCI I/O window) to the command line when
 *               the machine maps a device at VIRT_MEMMAP.pciePio; the exits guest then
 *               times port reads too
 */
import { readFileSync } from "node:fs";
import { MemoryBlockBackend, VirtioMmio, VirtioRng } from "@visor/devices";
import { Machine, VIRT_IRQ, VIRT_MEMMAP, type VirtMode, virtioMmioBase } from "@visor/hypervisor";

interface Options {
  kernel: string;
  initrd?: string[];
  append?: string;
  virt: VirtMode;
  memoryMiB?: number;
  benchRng?: "fast" | "slow";
  timeoutMs?: number;
  /** Add `pio=ADDR` to the command line when the machine has a device in the PCI I/O window. */
  pioProbe?: boolean;
}

/** Port 0x80 (the PC POST-code port): decoded by no device, so the access measures the path alone. */
const PIO_PORT = 0x80;

export interface Counters {
  /** performance.now() in ms */
  t: number;
  instret: number;
  tlbMisses: number;
  walks: number;
  walkRefs: number;
  traps: number;
  interrupts: number;
  gWalks: number;
  gRefs: number;
  shadowFills: number;
  shadowSyncs: number;
  shadowFlushes: number;
  shadowSatpSwitches: number;
  shadowInjectedFaults: number;
  shadowPoolResets: number;
}

const opts = JSON.parse(process.argv[2] ?? "null") as Options | null;
if (opts === null || typeof opts.kernel !== "string") {
  process.stderr.write('usage: vm.ts \'{"kernel":PATH,"virt":"nested",...}\'\n');
  process.exit(2);
}

let machine: Machine | undefined;
const marks: { line: string; counters: Counters }[] = [];
let text = "";
let line = "";
const decoder = new TextDecoder();

function counters(m: Machine): Counters {
  const v = m.vcpus[0]!;
  const s = v.hart.stats;
  const sh = v.shadow?.stats;
  return {
    t: performance.now(),
    instret: v.hart.instret(),
    tlbMisses: s.tlbMisses,
    walks: s.walks,
    walkRefs: s.walkRefs,
    traps: s.traps,
    interrupts: s.interrupts,
    gWalks: v.mode === "nested" ? s.gWalks : 0,
    gRefs: v.mode === "nested" ? s.gRefs : 0,
    shadowFills: sh?.fills ?? 0,
    shadowSyncs: sh?.syncs ?? 0,
    shadowFlushes: sh?.flushes ?? 0,
    shadowSatpSwitches: sh?.satpSwitches ?? 0,
    shadowInjectedFaults: sh?.injectedFaults ?? 0,
    shadowPoolResets: sh?.poolResets ?? 0,
  };
}

const console_ = {
  write(bytes: Uint8Array): void {
    const s = decoder.decode(bytes, { stream: true });
    text += s;
    for (const c of s) {
      if (c === "\n") {
        const l = line.replace(/\r$/, "");
        if (l.startsWith("@@bench ") && machine !== undefined)
          marks.push({ line: l, counters: counters(machine) });
        line = "";
      } else line += c;
    }
  },
};

const kernel = readFileSync(opts.kernel);
const initrd =
  opts.initrd !== undefined && opts.initrd.length > 0
    ? new Uint8Array(Buffer.concat(opts.initrd.map((p) => readFileSync(p))))
    : undefined;
const create = (append: string) =>
  Machine.create({
    memory: (opts.memoryMiB ?? 256) * 1024 * 1024,
    kernel,
    ...(initrd !== undefined ? { initrd } : {}),
    append,
    console: console_,
    virt: opts.virt,
    ...(opts.benchRng !== undefined ? { rng: false } : {}),
    // A PCI function (a small in-memory disk on legacy virtio-pci) puts the bridge and its
    // I/O window on the bus, so the exits guest can time port reads through the window.
    ...(opts.pioProbe
      ? { disks: [{ backend: new MemoryBlockBackend(1 << 20), transport: "pci" as const }] }
      : {}),
    yieldToHost: () => new Promise<void>((r) => setImmediate(r)),
  });
let append = opts.append ?? "console=ttyS0";
machine = await create(append);
// Port I/O through the PCI window: only when the machine maps something there. The
// command line is in the device tree, so the machine is built again with `pio=` added.
const pioBase = VIRT_MEMMAP.pciePio.base;
const pioWired = machine.io.mmio.deviceAt(pioBase) !== undefined;
if (opts.pioProbe && pioWired) {
  append += ` pio=0x${(pioBase + PIO_PORT).toString(16)}`;
  machine = await create(append);
}
if (opts.benchRng !== undefined) {
  // What Machine does for each virtio device (machine.ts), with the fast path optional.
  const m = machine;
  const t = new VirtioMmio({
    device: new VirtioRng({}),
    ram: m.memory,
    irq: m.plic.irqLine(VIRT_IRQ.virtio),
  });
  m.io.mmio.register(virtioMmioBase(0), VIRT_MEMMAP.virtio.size, t);
  if (opts.benchRng === "fast") m.io.mmio.addWriteListener(virtioMmioBase(0) + 0x50, 4, (q) => t.notify(q));
}
const timer =
  opts.timeoutMs !== undefined ? setTimeout(() => machine?.stop(), opts.timeoutMs).unref() : undefined;
const t0 = performance.now();
let exit: unknown;
let error: string | undefined;
try {
  exit = await machine.run();
} catch (e) {
  error = e instanceof Error ? e.message : String(e);
}
const wallMs = performance.now() - t0;
if (timer !== undefined) clearTimeout(timer);
process.stdout.write(
  `@@visor-vm ${JSON.stringify({ exit, error, wallMs, pioWired, append, instructions: machine.instructions, console: text, marks, final: counters(machine) })}\n`,
);
