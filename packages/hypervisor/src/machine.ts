/**
 * The `virt` machine: QEMU's memory map (hw/riscv/virt.c), our devices, and the run loop.
 *
 *   0x0010_0000  syscon (sifive,test1)        0x0c00_0000  PLIC
 *   0x0010_1000  goldfish RTC (IRQ 11)        0x1000_0000  ns16550a UART (IRQ 10)
 *   0x0010_2000  pvpanic (qemu,pvpanic-mmio)  0x1000_1000  virtio-mmio slots, every 0x1000 (IRQ 1..8)
 *   0x0200_0000  CLINT
 *   0x8000_0000  DRAM
 *
 * Firmware: the built-in SBI (hypercalls served in TypeScript, see sbi/) or a real one
 * (`bios`, e.g. OpenSBI fw_jump.elf) running in M-mode on the hart.
 *
 * How the guest kernel runs is the vCPU's business (vcpu.ts): directly in S-mode
 * (`virt: "off"`), or as a VS-mode guest under the H extension with nested (G-stage) or
 * shadow paging. The machine only sees exits.
 *
 * Memory: one host buffer (`ram`, the harts' physical memory) holds guest RAM and, under
 * nested or shadow paging, the hypervisor's page-table pool right after it. It is split
 * once, here: `memory` (a GuestMemory, exactly guest RAM) is all that devices, the SBI,
 * HTIF and the loaders get; the pool's HvRegion only the G-stage and shadow MMU. No
 * guest-supplied address can reach the pool.
 */
import { csr as C, type Hart, JIT_MODES, type JitMode, type JitStats, sumJitStats } from "@visor/cpu";
import {
  type BlockBackend,
  ByteQueue,
  Clint,
  GoldfishRtc,
  type IrqLine,
  type NetBackend,
  Plic,
  PvPanic,
  plicSize,
  type RateLimiter,
  Syscon,
  type SysconEvent,
  Uart16550,
  VirtioBlk,
  VirtioMmio,
  VirtioNet,
  VirtioRng,
} from "@visor/devices";
import { IoManager } from "@visor/io-bus";
import { GuestMemory, GuestRam, HvRegion, MAX_GUEST_MEMORY, PAGE_SIZE } from "@visor/memory";
import {
  fwJumpReservedRanges,
  hostInitrd,
  type LinuxBootPlan,
  loadElf,
  loadLinux,
  planLinuxBoot,
} from "./boot/index.ts";
import {
  buildVirtDtb,
  VIRT_IRQ,
  VIRT_MEMMAP,
  VIRT_TIMEBASE_FREQUENCY,
  VIRT_VIRTIO_COUNT,
  virtioMmioBase,
} from "./fdt/index.ts";
import { GStage, PageAllocator } from "./gstage.ts";
import { Htif } from "./htif.ts";
import { attachPciBus, type PciBus } from "./pci.ts";
import { Sbi, SbiCallCounter, type SbiHsmState } from "./sbi/index.ts";
import {
  decodeSnapshot,
  encodeSnapshot,
  type MachineConfigState,
  type MachineState,
  SNAPSHOT_VERSION,
  validateMachineState,
} from "./snapshot.ts";
import { ExitStats } from "./stats.ts";
import { Vcpu } from "./vcpu.ts";
import type { VcpuHost, VirtMode } from "./vcpu-host.ts";

const TIMEBASE_HZ = VIRT_TIMEBASE_FREQUENCY;
const NS_PER_TICK = BigInt(1e9 / TIMEBASE_HZ);
/** The wall-clock time a deterministic machine starts at: 2026-01-01T00:00:00Z. */
const DETERMINISTIC_EPOCH_NS = 1_767_225_600n * 1_000_000_000n;
const M = VIRT_MEMMAP;

export interface DiskConfig {
  backend: BlockBackend;
  /** virtio-mmio (default) or legacy virtio-pci, driven through port I/O. */
  transport?: "mmio" | "pci";
  /** Serial reported by VIRTIO_BLK_T_GET_ID. */
  id?: string;
  /** Bandwidth and operations limits on the disk's requests (a host resource, not VM state). */
  rateLimiter?: RateLimiter;
}

/** A network device: its backend, and optionally limits on each direction. */
export interface NetConfig {
  backend: NetBackend;
  txRateLimiter?: RateLimiter;
  rxRateLimiter?: RateLimiter;
}

function blkOptions(d: DiskConfig): { backend: BlockBackend; id?: string; rateLimiter?: RateLimiter } {
  return {
    backend: d.backend,
    ...(d.id ? { id: d.id } : {}),
    ...(d.rateLimiter ? { rateLimiter: d.rateLimiter } : {}),
  };
}

function netConfig(n: NetBackend | NetConfig): NetConfig {
  return "backend" in n ? n : { backend: n };
}

/**
 * Where guest console output goes (the UART, the SBI console, HTIF, the machine's own
 * virtio error notes). Output is flow-controlled: a console whose sink backs up (a pipe
 * nobody reads) returns false from write(), and the machine then runs no guest instruction
 * until the console calls the listener it registered with onDrain. The guest just sees a
 * slow line; nothing accumulates on the host beyond what the console itself buffers.
 */
export interface MachineConsole {
  /**
   * Take guest output (the bytes are the console's from now on). Return false when the
   * sink is full and no more should come until the onDrain listener is called; any other
   * return (true, nothing) means it can take more.
   */
  write(bytes: Uint8Array): unknown;
  /**
   * Register the one listener to call when a sink that refused more (write returned
   * false) can take output again. A console without it never holds the guest.
   */
  onDrain?(listener: () => void): void;
}

export interface MachineOptions {
  /** Guest RAM in bytes. */
  memory: number;
  harts?: number;
  /** Linux Image or Image.gz. */
  kernel?: Uint8Array;
  initrd?: Uint8Array;
  append?: string;
  /** Firmware ELF (fw_jump.elf or a bare-metal program with HTIF); absent = built-in SBI. */
  bios?: Uint8Array;
  disks?: DiskConfig[];
  nets?: (NetBackend | NetConfig)[];
  /** Add a virtio-rng device. Default true. */
  rng?: boolean;
  console: MachineConsole;
  /** "host": time follows the host clock; "deterministic": time = instructions retired / 10. */
  clock?: "host" | "deterministic";
  virt?: VirtMode;
  /**
   * Binary translation on every hart (HartOptions.jit): "off", "on" (default) or "always".
   * How the host runs guest code, not guest state: snapshots and migration streams do not
   * carry it (a restored or migrated machine takes RestoreOptions.jit).
   */
  jit?: JitMode;
  /** Collect exit statistics (--stats). */
  stats?: boolean;
  /**
   * How the run loop lets the host's event loop run (console and network I/O). Default
   * a zero-delay timer; Node hosts pass setImmediate, which has no minimum delay.
   */
  yieldToHost?: () => Promise<void>;
}

/** What Machine.restore needs besides the snapshot: the parts that live outside the VM. */
export interface RestoreOptions {
  console: MachineConsole;
  /**
   * Backends for the snapshot's disks, in order: the restoring side's own (a snapshot or a
   * migration stream never names a host file). They must match the saved devices in
   * number, transport and read-only setting.
   */
  disks?: DiskConfig[];
  nets?: (NetBackend | NetConfig)[];
  /** Binary translation on the restored machine's harts (see MachineOptions.jit); default "on". */
  jit?: JitMode;
  stats?: boolean;
  yieldToHost?: () => Promise<void>;
}

export type MachineExit =
  | { kind: "poweroff" }
  | { kind: "reset" }
  | { kind: "fail"; code: number }
  /** The guest kernel reported a panic through the pvpanic device. */
  | { kind: "panic" }
  | { kind: "htif"; code: number }
  | { kind: "stopped" };

const SLICE = 200_000;
/**
 * Host input kept for the SBI console once the UART's own input buffer is full. Input
 * beyond it, when the guest reads neither, is dropped (as a UART overruns).
 */
export const CONSOLE_INPUT_CAPACITY = 64 * 1024;

/** The smallest guest RAM the virt machine takes: 16 MiB. */
export const MIN_GUEST_MEMORY = 16 << 20;

/**
 * Throws a one-line Error unless `bytes` is a guest RAM size the virt machine supports: a
 * whole number of 4 KiB pages from MIN_GUEST_MEMORY (16 MiB) to MAX_GUEST_MEMORY (16 GiB,
 * see @visor/memory).
 */
export function checkGuestMemory(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < MIN_GUEST_MEMORY) {
    throw new Error(`memory ${bytes} bytes is too small (at least 16 MiB)`);
  }
  if (bytes > MAX_GUEST_MEMORY) {
    throw new Error(
      `memory ${bytes} bytes is above the supported maximum of ${MAX_GUEST_MEMORY / 2 ** 30} GiB`,
    );
  }
  if (bytes % PAGE_SIZE !== 0) throw new Error(`memory ${bytes} bytes is not a whole number of 4 KiB pages`);
}

/** Throws a one-line Error unless `mode` is a JitMode (a JavaScript caller may pass anything). */
function checkJitMode(mode: unknown): JitMode {
  if (!JIT_MODES.includes(mode as JitMode)) {
    throw new Error(`jit: '${String(mode)}' is not one of ${JIT_MODES.join(", ")}`);
  }
  return mode as JitMode;
}

/**
 * The translator counters of `harts` added up; the mode and the reason translation is
 * unavailable are the first hart's (every hart of a machine is built with the same mode).
 */

/** The machine is its vCPUs' host: they exit to it through VcpuHost (vcpu-host.ts). */
export class Machine implements VcpuHost {
  /** The host buffer: guest RAM and the hypervisor's pool after it (the harts' memory). */
  readonly ram: GuestRam;
  /** Guest RAM, and only that: what every guest-supplied address goes through. */
  readonly memory: GuestMemory;
  readonly io = new IoManager();
  readonly vcpus: Vcpu[] = [];
  readonly uart: Uart16550;
  readonly plic: Plic;
  readonly clint: Clint;
  readonly rtc: GoldfishRtc;
  readonly syscon: Syscon;
  readonly pvpanic: PvPanic;
  readonly virtio: VirtioMmio[] = [];
  readonly pci: PciBus | undefined;
  readonly sbi: Sbi;
  readonly sbiCalls = new SbiCallCounter();
  readonly exitStats: ExitStats;
  readonly virtMode: VirtMode;
  /** The binary translation mode every hart was built with (MachineOptions.jit). */
  readonly jit: JitMode;
  readonly deterministic: boolean;
  htif: Htif | undefined;
  /** End of guest RAM; the hypervisor's own memory (page tables) follows it. */
  readonly guestRamEnd: number;
  /** Pages for the hypervisor's G-stage or shadow tables. */
  readonly hvPool: PageAllocator;
  readonly gstage: GStage | undefined;

  private readonly console: MachineConsole;
  private readonly yieldToHost: () => Promise<void>;
  private t0 = performance.now();
  /** The deterministic machine's entropy (virtio-rng): reproducible, and saved in snapshots. */
  private readonly entropy = new Xorshift32(0x2545f491);
  private readonly config: MachineConfigState;
  private skippedTicks = 0;
  private exit: MachineExit | undefined;
  private wake: (() => void) | undefined;
  private readonly consoleIn = new ByteQueue(CONSOLE_INPUT_CAPACITY);
  private pauseGate: Promise<void> | undefined;
  private pauseRelease: (() => void) | undefined;
  private pauseHolds = 0;
  /** Set while the console is backed up: no guest instruction runs until it drains. */
  private outputGate: Promise<void> | undefined;
  private releaseOutput: (() => void) | undefined;
  /** How many times the guest was held because the console was backed up. */
  outputWaits = 0;
  bootTimeMs = 0;
  /** Instructions the harts had executed when this machine was built (a restored VM's count). */
  private instructionsAtStart = 0;

  private constructor(opts: MachineOptions, ram: GuestRam) {
    const harts = opts.harts ?? 1;
    this.ram = ram;
    this.memory = new GuestMemory(ram, opts.memory);
    this.guestRamEnd = this.memory.end;
    this.hvPool = new PageAllocator(new HvRegion(ram, this.memory, this.guestRamEnd, ram.end));
    this.gstage = hypervisorMode(opts) === "nested" ? new GStage(this.memory, this.hvPool) : undefined;
    this.console = opts.console;
    this.console.onDrain?.(() => this.outputDrained());
    this.yieldToHost = opts.yieldToHost ?? (() => new Promise<void>((r) => setTimeout(r, 0)));
    this.virtMode = opts.virt ?? "off";
    this.jit = checkJitMode(opts.jit ?? "on");
    this.deterministic = opts.clock === "deterministic";
    this.config = {
      memory: opts.memory,
      harts,
      virt: this.virtMode,
      clock: this.deterministic ? "deterministic" : "host",
      rng: opts.rng !== false,
      firmware: opts.bios !== undefined,
      disks: (opts.disks ?? []).map((d) => ({
        transport: d.transport ?? "mmio",
        readonly: d.backend.readonly === true,
        ...(d.id !== undefined ? { id: d.id } : {}),
      })),
      nets: opts.nets?.length ?? 0,
    };
    this.exitStats = new ExitStats(opts.stats ?? false);
    const clock = { now: () => this.now() };
    const firmware = opts.bios !== undefined;

    for (let i = 0; i < harts; i++) {
      // The harts share one RAM, so they share its decoded code too.
      const codeCache = i > 0 ? this.vcpus[0]!.hart.codeCache : undefined;
      this.vcpus.push(new Vcpu(this, i, this.virtMode, firmware, codeCache, this.jit));
    }
    const hartOf = (i: number): Hart => this.vcpus[i]!.hart;
    const line = (hart: number, bit: number): IrqLine => ({
      set: (l: boolean) => hartOf(hart).setIrq(bit, l),
    });

    this.syscon = new Syscon({ onEvent: (e) => this.onSyscon(e) });
    // Stateless, so snapshots leave it out; a panic ends the run whatever `panic=` says.
    this.pvpanic = new PvPanic({ onPanic: () => this.finish({ kind: "panic" }) });
    this.clint = new Clint({
      clock,
      msip: this.vcpus.map((_, i) => line(i, C.IRQ_MSI)),
      mtip: this.vcpus.map((_, i) => line(i, C.IRQ_MTI)),
    });
    const contexts: IrqLine[] = [];
    for (let i = 0; i < harts; i++) {
      contexts.push(line(i, C.IRQ_MEI)); // M-mode external
      contexts.push({
        set: (l: boolean) => {
          this.vcpus[i]!.setGuestExternal(l);
          if (l) this.wake?.(); // a device interrupt (network, disk) ends an idle sleep
        },
      }); // S-mode external
    }
    this.plic = new Plic({ harts, contexts });
    this.uart = new Uart16550({
      irq: this.plic.irqLine(VIRT_IRQ.uart0),
      output: (b) => this.consoleOut(Uint8Array.of(b)),
    });
    this.rtc = new GoldfishRtc({
      irq: this.plic.irqLine(VIRT_IRQ.rtc),
      // A deterministic machine's calendar follows its own clock from a fixed epoch, so
      // nothing the guest sees depends on the host.
      ...(this.deterministic
        ? { wallClock: { nowNs: () => DETERMINISTIC_EPOCH_NS + BigInt(this.now()) * NS_PER_TICK } }
        : {}),
    });

    const mmio = this.io.mmio;
    mmio.register(M.test.base, M.test.size, this.syscon);
    mmio.register(M.rtc.base, M.rtc.size, this.rtc);
    mmio.register(M.pvpanic.base, M.pvpanic.size, this.pvpanic);
    mmio.register(M.clint.base, M.clint.size, this.clint);
    mmio.register(M.plic.base, plicSize(harts * 2), this.plic);
    mmio.register(M.uart0.base, M.uart0.size, this.uart);

    const onError = (m: string) => this.consoleOut(new TextEncoder().encode(`visor: virtio: ${m}\r\n`));
    const devices = [
      ...(opts.disks ?? [])
        .filter((d) => d.transport !== "pci")
        .map((d) => new VirtioBlk({ ...blkOptions(d), onError })),
      ...(opts.nets ?? []).map((n, i) => new VirtioNet({ ...netConfig(n), mac: macFor(i) })),
      ...(opts.rng === false
        ? []
        : [new VirtioRng(this.deterministic ? { entropy: (b) => this.entropy.fill(b) } : {})]),
    ];
    if (devices.length > VIRT_VIRTIO_COUNT)
      throw new Error(`too many virtio devices: ${devices.length} (at most 8)`);
    devices.forEach((device, slot) => {
      const t = new VirtioMmio({
        device,
        ram: this.memory,
        irq: this.plic.irqLine(VIRT_IRQ.virtio + slot),
        onError,
      });
      mmio.register(virtioMmioBase(slot), M.virtio.size, t);
      // ioeventfd-style fast path: a queue notify skips the transport's register decode.
      mmio.addWriteListener(virtioMmioBase(slot) + 0x50, 4, (q) => t.notify(q));
      this.virtio.push(t);
    });
    const pciDisks = (opts.disks ?? []).filter((d) => d.transport === "pci");
    this.pci =
      pciDisks.length > 0
        ? attachPciBus({
            io: this.io,
            ram: this.memory,
            plic: this.plic,
            devices: pciDisks.map((d) => new VirtioBlk({ ...blkOptions(d), onError })),
            onError,
          })
        : undefined;
    if (opts.stats) this.io.enableStats();

    this.sbi = new Sbi(
      {
        hartCount: harts,
        setTimer: (h, t) => this.vcpus[h]!.setTimer(t),
        sendIpi: (h) => this.vcpus[h]!.injectSoftware(),
        remoteFenceI: () => {},
        remoteSfenceVma: (hs) => {
          // In shadow mode the vCPU's shadow tables cache the guest's translations too.
          for (const h of hs) {
            const v = this.vcpus[h]!;
            if (v.shadow !== undefined) v.shadow.flushAll();
            else v.hart.flushTlb();
          }
        },
        hartStart: (h, addr, opaque) => this.vcpus[h]!.start(addr, opaque),
        hartStop: (h) => this.vcpus[h]!.stop(),
        hartStatus: (h) => this.vcpus[h]!.hsmState() as SbiHsmState,
        hartSuspend: (h) => this.vcpus[h]!.suspend(),
        systemReset: (type) => this.finish(type === 0 ? { kind: "poweroff" } : { kind: "reset" }),
        consoleWrite: (b) => this.consoleOut(b),
        consoleRead: (max) => {
          const bytes = this.consoleIn.peek(max);
          this.consoleIn.drop(bytes.length);
          return bytes;
        },
        memory: this.memory,
      },
      this.sbiCalls,
    );
  }

  /**
   * Everything but RAM, for a snapshot: call it between runs (after stop(), or before
   * run()). `meta` is stored alongside for the caller.
   */
  saveState(meta?: unknown): MachineState {
    if (this.htif !== undefined) throw new Error("snapshot: a bare-metal HTIF program cannot be saved");
    return {
      version: SNAPSHOT_VERSION,
      config: this.config,
      now: this.now(),
      skippedTicks: this.skippedTicks,
      harts: this.vcpus.map((v) => v.hart.toState()),
      vcpus: this.vcpus.map((v) => v.toState()),
      devices: {
        uart: this.uart.toState(),
        clint: this.clint.toState(),
        plic: this.plic.toState(),
        rtc: this.rtc.toState(),
        syscon: this.syscon.toState(),
        virtio: this.virtio.map((t) => t.toState()),
        ...(this.pci !== undefined ? { pci: this.pci.toState() } : {}),
      },
      consoleIn: Array.from(this.consoleIn.peek(this.consoleIn.length)),
      entropy: this.entropy.state,
      hvPool: this.hvPool.position,
      ...(meta !== undefined ? { meta } : {}),
    };
  }

  /** The machine's configuration as a snapshot or migration stream records it. */
  get configState(): MachineConfigState {
    return this.config;
  }

  /** The snapshot file (see snapshot.ts) of this machine now: its state and its RAM. */
  snapshot(meta?: unknown): Uint8Array {
    return encodeSnapshot(this.saveState(meta), this.ram);
  }

  /**
   * A machine that continues from a snapshot file. Its configuration (memory, harts,
   * virtualization mode, clock, devices) is the snapshot's; the caller supplies what lives
   * outside it: the console, the disk backends (same number and transports, in order)
   * and network backends. Every malformation is an Error "snapshot: ...".
   */
  static async restore(bytes: Uint8Array, opts: RestoreOptions): Promise<Machine> {
    const snap = decodeSnapshot(bytes);
    return Machine.restoreState(snap.state, (ram) => snap.loadRam(ram), opts);
  }

  /**
   * Machine.restore from parts: a state (MachineState) and a function that fills the new
   * machine's zeroed RAM. Live migration uses it with the pages it received.
   */
  static async restoreState(
    state: MachineState,
    loadRam: (ram: GuestRam) => void,
    opts: RestoreOptions,
  ): Promise<Machine> {
    // Read from outside (a file, a peer): every field is checked before it is used.
    state = validateMachineState(state);
    const c = state.config;
    const disks = opts.disks ?? [];
    const nets = opts.nets ?? [];
    try {
      checkGuestMemory(c.memory);
    } catch (e) {
      throw new Error(`snapshot: ${(e as Error).message}`);
    }
    checkDevicesMatch(
      c,
      disks.map((d) => ({ transport: d.transport ?? "mmio", readonly: d.backend.readonly === true })),
      nets.length,
    );
    const m = await Machine.build({
      memory: c.memory,
      harts: c.harts,
      virt: c.virt,
      clock: c.clock,
      rng: c.rng,
      disks: disks.map((d, i) => ({ ...d, ...(c.disks[i]!.id !== undefined ? { id: c.disks[i]!.id } : {}) })),
      nets,
      console: opts.console,
      ...(opts.jit !== undefined ? { jit: opts.jit } : {}),
      ...(opts.stats !== undefined ? { stats: opts.stats } : {}),
      ...(opts.yieldToHost !== undefined ? { yieldToHost: opts.yieldToHost } : {}),
      // Firmware harts are built differently; the firmware itself is in the saved RAM.
      ...(c.firmware ? { bios: new Uint8Array(0) } : {}),
    });
    try {
      loadRam(m.ram);
      // The pool came with the RAM image: the G-stage table is the hypervisor's, rebuilt.
      m.gstage?.write();
      m.applyState(state);
      m.instructionsAtStart = m.instructionsNow();
    } catch (e) {
      const msg = (e as Error).message;
      throw new Error(msg.startsWith("snapshot: ") ? msg : `snapshot: ${msg}`);
    }
    return m;
  }

  private applyState(s: MachineState): void {
    const n = this.vcpus.length;
    if (!Array.isArray(s.harts) || s.harts.length !== n || !Array.isArray(s.vcpus) || s.vcpus.length !== n) {
      throw new Error(`snapshot: expected state for ${n} hart(s)`);
    }
    for (let i = 0; i < n; i++) this.vcpus[i]!.hart.fromState(s.harts[i]);
    // The clock next (the deterministic one counts the instructions just restored): the
    // CLINT and the SBI timers count from it.
    if (this.deterministic) this.skippedTicks = s.skippedTicks;
    else this.t0 = performance.now() - s.now / (TIMEBASE_HZ / 1000);
    if (s.hvPool < this.hvPool.start || s.hvPool > this.hvPool.end) {
      throw new Error(`snapshot: hvPool ${s.hvPool} lies outside the hypervisor's pages`);
    }
    this.hvPool.position = s.hvPool;
    for (let i = 0; i < n; i++) this.vcpus[i]!.fromState(s.vcpus[i]);
    const d = s.devices ?? {};
    this.uart.fromState(d.uart);
    this.clint.fromState(d.clint);
    this.plic.fromState(d.plic);
    this.rtc.fromState(d.rtc);
    this.syscon.fromState(d.syscon);
    const virtio = d.virtio;
    if (!Array.isArray(virtio) || virtio.length !== this.virtio.length) {
      throw new Error(`snapshot: expected ${this.virtio.length} virtio-mmio transport(s)`);
    }
    this.virtio.forEach((t, i) => {
      t.fromState(virtio[i]);
    });
    if (this.pci !== undefined) this.pci.fromState(d.pci);
    this.consoleIn.clear();
    if (Array.isArray(s.consoleIn)) {
      const saved = s.consoleIn.slice(0, CONSOLE_INPUT_CAPACITY);
      this.consoleIn.push(Uint8Array.from(saved, (b) => Number(b) & 0xff));
    }
    this.entropy.state = Number(s.entropy) | 0 || 1;
  }

  /** Build a machine and load the kernel/firmware (decompressing as needed). */
  static async create(opts: MachineOptions): Promise<Machine> {
    checkGuestMemory(opts.memory);
    const m = await Machine.build(opts);
    await m.load(opts);
    return m;
  }

  /** The machine with its devices, nothing loaded. */
  private static async build(opts: MachineOptions): Promise<Machine> {
    // The pool exists only when the hypervisor runs the guest under the H extension: with
    // firmware the harts run in M-mode without it, and M-mode reaches all host memory.
    const extra = hypervisorMode(opts) !== "off" ? Vcpu.hypervisorMemory(opts.memory) : 0;
    return new Machine(opts, new GuestRam(M.dram.base, opts.memory + extra));
  }

  private async load(opts: MachineOptions): Promise<void> {
    const harts = this.vcpus.length;
    let fwEntry: number | undefined;
    if (opts.bios !== undefined) {
      const elf = loadElf(this.memory, opts.bios);
      fwEntry = elf.entry;
      if (elf.tohost !== undefined && opts.kernel === undefined) {
        // A bare-metal test program speaking HTIF.
        this.htif = new Htif(this.memory, elf.tohost, elf.fromhost, (b) => this.consoleOut(b));
        for (const v of this.vcpus) v.bootFirmware(elf.entry, 0);
        return;
      }
    }
    if (opts.kernel === undefined) throw new Error("no kernel given (--kernel)");
    const initrd = opts.initrd !== undefined ? await hostInitrd(opts.initrd, opts.memory) : undefined;
    const dtbConfig = (initrd?: { start: bigint; end: bigint }) => ({
      harts,
      memorySize: opts.memory,
      mmu: "sv57" as const,
      hypervisor: this.vcpus[0]!.exposesH,
      bootargs: opts.append ?? "",
      ...(initrd ? { initrd } : {}),
      virtioDevices: this.virtio.length,
      pci: this.pci !== undefined,
    });
    const probe = buildVirtDtb(dtbConfig({ start: 0n, end: 0n }));
    const plan: LinuxBootPlan = await planLinuxBoot({
      kernel: opts.kernel,
      ramSize: opts.memory,
      initrdSize: initrd?.length ?? 0,
      fdtSize: probe.length + 1024,
      ...(fwEntry !== undefined ? { reserved: fwJumpReservedRanges(probe.length + 1024) } : {}),
    });
    const dtb = buildVirtDtb(
      dtbConfig(initrd ? { start: BigInt(plan.initrdStart), end: BigInt(plan.initrdEnd) } : undefined),
    );
    loadLinux(this.memory, { plan, fdt: dtb, ...(initrd ? { initrd } : {}) });
    if (fwEntry !== undefined) {
      for (const v of this.vcpus) v.bootFirmware(fwEntry, plan.fdtAddr);
    } else {
      this.vcpus[0]!.bootKernel(plan.entry, plan.fdtAddr);
    }
  }

  /** mtime in 10 MHz ticks. */
  now(): number {
    if (this.deterministic) return Math.floor(this.instructionsNow() / 10) + this.skippedTicks;
    return Math.floor((performance.now() - this.t0) * (TIMEBASE_HZ / 1000));
  }

  /** Total guest instructions executed so far, all harts. */
  get instructions(): number {
    return this.instructionsNow();
  }

  /**
   * Guest instructions executed by this machine object, all harts: `instructions` less
   * what a restored or migrated VM had executed before it came here.
   */
  get instructionsHere(): number {
    return this.instructionsNow() - this.instructionsAtStart;
  }

  /**
   * The binary translator's counters (Hart.jitStats) summed over the harts, with the mode
   * in effect and why translation is unavailable, if it is.
   */
  get jitStats(): JitStats {
    return sumJitStats(
      this.vcpus.map((v) => v.hart),
      this.jit,
    );
  }

  private instructionsNow(): number {
    let n = 0;
    for (const v of this.vcpus) n += v.hart.executedCount();
    return n;
  }

  /**
   * Bytes typed for the guest (UART; the SBI console reads the same queue). Returns how
   * many were kept: both buffers are bounded, and input the guest does not read is dropped.
   */
  input(bytes: Uint8Array): number {
    const took = this.uart.pushInput(bytes);
    const kept = took + this.consoleIn.push(bytes.subarray(took));
    this.wake?.();
    return kept;
  }

  get exited(): boolean {
    return this.exit !== undefined;
  }

  /** Stop the run loop from outside (Ctrl-A X). */
  stop(): void {
    this.finish({ kind: "stopped" });
  }

  /**
   * Hold the run loop between two instruction slices until the returned function is
   * called (and every other hold is released too): no guest instruction runs meanwhile (live migration's paused step). Call it
   * while run() is waiting on the host (from an event handler or a timer), as then no
   * slice is in progress.
   */
  pause(): () => void {
    // Holds are counted: the debugger, the control socket and a migration may each hold
    // the VM, and it runs again only once every holder has let go.
    if (this.pauseHolds++ === 0) {
      this.pauseGate = new Promise<void>((r) => {
        this.pauseRelease = r;
      });
    }
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.pauseHolds === 0) {
        const release = this.pauseRelease;
        this.pauseGate = undefined;
        this.pauseRelease = undefined;
        release?.();
      }
    };
  }

  finish(e: MachineExit): void {
    if (this.exit === undefined) this.exit = e;
    for (const v of this.vcpus) v.hart.requestStop();
    this.wake?.();
    // A machine held for console output stops too (Ctrl-A X while stdout is not read).
    this.outputDrained();
  }

  /** True while guest output waits for the console to drain (no guest instruction runs). */
  get outputBlocked(): boolean {
    return this.outputGate !== undefined;
  }

  /** Guest output to the console; a full console holds the vCPUs (see MachineConsole). */
  private consoleOut(bytes: Uint8Array): void {
    if (this.console.write(bytes) !== false || this.console.onDrain === undefined) return;
    if (this.outputGate !== undefined) return;
    this.outputWaits++;
    this.outputGate = new Promise<void>((resolve) => {
      this.releaseOutput = resolve;
    });
    // The slice in progress ends at the next instruction boundary the hart checks (right
    // after an MMIO access); vcpu.run ends it after an SBI or HTIF exit.
    for (const v of this.vcpus) v.hart.requestStop();
  }

  private outputDrained(): void {
    const release = this.releaseOutput;
    this.outputGate = undefined;
    this.releaseOutput = undefined;
    release?.();
  }

  private onSyscon(e: SysconEvent): void {
    if (e.kind === "poweroff") this.finish({ kind: "poweroff" });
    else if (e.kind === "reset") this.finish({ kind: "reset" });
    else this.finish({ kind: "fail", code: e.code });
  }

  /** Run until power-off (or another exit). Yields to the event loop regularly. */
  async run(): Promise<MachineExit> {
    const start = performance.now();
    let lastYield = start;
    while (this.exit === undefined) {
      if (this.pauseGate !== undefined) {
        await this.pauseGate;
        continue;
      }
      if (this.outputGate !== undefined) {
        await this.outputGate;
        continue;
      }
      let allIdle = true;
      for (const v of this.vcpus) {
        if (!v.running) continue;
        // A slice cut short by stop() (and saved) goes on as if never cut: no timer tick
        // in between, the rest of its budget.
        const resume = v.sliceLeft;
        if (resume === 0) this.tickTimers();
        const r = v.run(resume > 0 ? resume : SLICE);
        if (r !== "wfi") allIdle = false;
        if (this.exit !== undefined || this.outputGate !== undefined) break;
      }
      if (this.outputGate === undefined && this.htif?.poll())
        this.finish({ kind: "htif", code: this.htif.exitCode ?? 1 });
      if (this.exit !== undefined) break;
      this.tickTimers();
      if (allIdle && !this.anyInterruptPending()) await this.idle();
      const t = performance.now();
      if (t - lastYield > 15) {
        await this.yieldToHost();
        lastYield = performance.now();
      }
    }
    this.bootTimeMs = performance.now() - start;
    return this.exit;
  }

  private anyInterruptPending(): boolean {
    for (const v of this.vcpus) if (v.running && v.hart.interruptPending()) return true;
    return false;
  }

  private tickTimers(): void {
    const now = this.now();
    this.clint.tick();
    for (const v of this.vcpus) v.checkTimer(now);
  }

  /** Every hart waits for an interrupt: sleep until the next timer or an input event. */
  private async idle(): Promise<void> {
    let next = this.clint.nextEvent();
    for (const v of this.vcpus) next = Math.min(next, v.timerDeadline());
    const now = this.now();
    this.exitStats.idle++;
    if (this.deterministic) {
      if (Number.isFinite(next) && next > now) this.skippedTicks += next - now;
      else if (!Number.isFinite(next)) await this.sleep(50);
      return;
    }
    const ms = Number.isFinite(next) ? Math.max(0, (next - now) / (TIMEBASE_HZ / 1000)) : 50;
    if (ms > 0.05) await this.sleep(Math.min(ms, 50));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }
}

/**
 * The restoring side's disks and network backends against the saved machine's devices:
 * the same number, and each disk on the same transport and equally read-only (a disk the
 * guest had read-only does not become writable, and one it wrote to is not taken away).
 * Throws one line naming the first mismatch.
 */
export function checkDevicesMatch(
  c: MachineConfigState,
  disks: { transport: "mmio" | "pci"; readonly: boolean }[],
  nets: number,
): void {
  if (disks.length !== c.disks.length) {
    throw new Error(`snapshot: the machine had ${c.disks.length} disk(s), ${disks.length} given`);
  }
  disks.forEach((d, i) => {
    const want = c.disks[i]!;
    if (d.transport !== want.transport) {
      throw new Error(`snapshot: disk ${i + 1} was on ${want.transport}, not ${d.transport}`);
    }
    const ro = d.readonly;
    if (ro !== want.readonly) {
      throw new Error(
        `snapshot: disk ${i + 1} was ${want.readonly ? "read-only" : "writable"}, the one given is ${ro ? "read-only" : "writable"}`,
      );
    }
  });
  if (nets !== c.nets)
    throw new Error(`snapshot: the machine had ${c.nets} network device(s), ${nets} given`);
}

/** How the vCPUs run the guest: firmware (`bios`) always runs on the bare hart. */
function hypervisorMode(opts: MachineOptions): VirtMode {
  return opts.bios !== undefined ? "off" : (opts.virt ?? "off");
}

function macFor(i: number): string {
  // A locally administered unicast address (bit 1 of the first byte set), distinct per NIC
  // and, with two random bytes, per VM, so two visor VMs on one LAN differ.
  const r = Math.floor(Math.random() * 65536);
  const b = [0x52, 0x56, 0x00, (r >>> 8) & 0xff, r & 0xff, i & 0xff];
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/**
 * Marsaglia's xorshift32 (Journal of Statistical Software 8(14), 2003): the entropy of a
 * deterministic machine. Not a secure random source, by design: the point is that the
 * same run gives the guest the same bytes.
 */
class Xorshift32 {
  state: number;

  constructor(seed: number) {
    this.state = seed | 0 || 1;
  }

  fill(buf: Uint8Array): void {
    let x = this.state;
    for (let i = 0; i < buf.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      buf[i] = x & 0xff;
    }
    this.state = x;
  }
}
