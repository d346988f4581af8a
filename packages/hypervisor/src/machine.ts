/**
 * The `virt` machine: QEMU's memory map (hw/riscv/virt.c), our devices, and the run loop.
 *
 *   0x0010_0000  syscon (sifive,test1)        0x0c00_0000  PLIC
 *   0x0010_1000  goldfish RTC (IRQ 11)        0x1000_0000  ns16550a UART (IRQ 10)
 *   0x0200_0000  CLINT                        0x1000_1000  virtio-mmio slots, every 0x1000 (IRQ 1..8)
 *   0x8000_0000  DRAM
 *
 * Firmware: the built-in SBI (hypercalls served in TypeScript, see sbi/) or a real one
 * (`bios`, e.g. OpenSBI fw_jump.elf) running in M-mode on the hart.
 *
 * How the guest kernel runs is the vCPU's business (vcpu.ts): directly in S-mode
 * (`virt: "off"`), or as a VS-mode guest under the H extension with nested (G-stage) or
 * shadow paging. The machine only sees exits.
 */
import { csr as C, type Hart } from "@visor/cpu";
import {
  type BlockBackend,
  Clint,
  GoldfishRtc,
  type IrqLine,
  type NetBackend,
  Plic,
  plicSize,
  Syscon,
  type SysconEvent,
  Uart16550,
  VirtioBlk,
  VirtioMmio,
  VirtioNet,
  VirtioRng,
} from "@visor/devices";
import { IoManager } from "@visor/io-bus";
import { GuestRam } from "@visor/memory";
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
} from "./snapshot.ts";
import { ExitStats } from "./stats.ts";
import { Vcpu, type VirtMode } from "./vcpu.ts";

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
}

export interface MachineConsole {
  /** Guest console output (UART and SBI console). */
  write(bytes: Uint8Array): void;
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
  nets?: NetBackend[];
  /** Add a virtio-rng device. Default true. */
  rng?: boolean;
  console: MachineConsole;
  /** "host": time follows the host clock; "deterministic": time = instructions retired / 10. */
  clock?: "host" | "deterministic";
  virt?: VirtMode;
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
  /** Backends for the snapshot's disks, in order, on the same transports. */
  disks?: DiskConfig[];
  nets?: NetBackend[];
  stats?: boolean;
  yieldToHost?: () => Promise<void>;
}

export type MachineExit =
  | { kind: "poweroff" }
  | { kind: "reset" }
  | { kind: "fail"; code: number }
  | { kind: "htif"; code: number }
  | { kind: "stopped" };

/** A fatal guest error (an exit nobody handles): one line with the pc and cause. */
export class GuestError extends Error {
  override name = "GuestError";
}

const SLICE = 200_000;

export class Machine {
  readonly ram: GuestRam;
  readonly io = new IoManager();
  readonly vcpus: Vcpu[] = [];
  readonly uart: Uart16550;
  readonly plic: Plic;
  readonly clint: Clint;
  readonly rtc: GoldfishRtc;
  readonly syscon: Syscon;
  readonly virtio: VirtioMmio[] = [];
  readonly pci: PciBus | undefined;
  readonly sbi: Sbi;
  readonly sbiCalls = new SbiCallCounter();
  readonly exitStats: ExitStats;
  readonly virtMode: VirtMode;
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
  private consoleIn: number[] = [];
  private pauseGate: Promise<void> | undefined;
  /** Total guest instructions executed, all harts. */
  instructions = 0;
  bootTimeMs = 0;

  private constructor(opts: MachineOptions, ram: GuestRam) {
    const harts = opts.harts ?? 1;
    this.ram = ram;
    this.guestRamEnd = ram.base + opts.memory;
    this.hvPool = new PageAllocator(this.guestRamEnd, ram.end);
    this.gstage = opts.virt === "nested" ? new GStage(ram, ram.base, opts.memory, this.hvPool) : undefined;
    this.console = opts.console;
    this.yieldToHost = opts.yieldToHost ?? (() => new Promise<void>((r) => setTimeout(r, 0)));
    this.virtMode = opts.virt ?? "off";
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
        ...(d.id !== undefined ? { id: d.id } : {}),
      })),
      nets: opts.nets?.length ?? 0,
    };
    this.exitStats = new ExitStats(opts.stats ?? false);
    const clock = { now: () => this.now() };
    const firmware = opts.bios !== undefined;

    for (let i = 0; i < harts; i++) {
      this.vcpus.push(new Vcpu(this, i, this.virtMode, firmware));
    }
    const hartOf = (i: number): Hart => this.vcpus[i]!.hart;
    const line = (hart: number, bit: number): IrqLine => ({
      set: (l: boolean) => hartOf(hart).setIrq(bit, l),
    });

    this.syscon = new Syscon({ onEvent: (e) => this.onSyscon(e) });
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
      output: (b) => this.console.write(Uint8Array.of(b)),
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
    mmio.register(M.clint.base, M.clint.size, this.clint);
    mmio.register(M.plic.base, plicSize(harts * 2), this.plic);
    mmio.register(M.uart0.base, M.uart0.size, this.uart);

    const onError = (m: string) => this.console.write(new TextEncoder().encode(`visor: virtio: ${m}\r\n`));
    const devices = [
      ...(opts.disks ?? [])
        .filter((d) => d.transport !== "pci")
        .map((d) => new VirtioBlk({ backend: d.backend, ...(d.id ? { id: d.id } : {}), onError })),
      ...(opts.nets ?? []).map((n, i) => new VirtioNet({ backend: n, mac: macFor(i) })),
      ...(opts.rng === false
        ? []
        : [new VirtioRng(this.deterministic ? { entropy: (b) => this.entropy.fill(b) } : {})]),
    ];
    if (devices.length > VIRT_VIRTIO_COUNT)
      throw new Error(`too many virtio devices: ${devices.length} (at most 8)`);
    devices.forEach((device, slot) => {
      const t = new VirtioMmio({ device, ram, irq: this.plic.irqLine(VIRT_IRQ.virtio + slot), onError });
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
            ram,
            plic: this.plic,
            devices: pciDisks.map(
              (d) => new VirtioBlk({ backend: d.backend, ...(d.id ? { id: d.id } : {}), onError }),
            ),
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
          for (const h of hs) this.vcpus[h]!.hart.flushTlb();
        },
        hartStart: (h, addr, opaque) => this.vcpus[h]!.start(addr, opaque),
        hartStop: (h) => this.vcpus[h]!.stop(),
        hartStatus: (h) => this.vcpus[h]!.hsmState() as SbiHsmState,
        hartSuspend: (h) => this.vcpus[h]!.suspend(),
        systemReset: (type) => this.finish(type === 0 ? { kind: "poweroff" } : { kind: "reset" }),
        consoleWrite: (b) => this.console.write(b),
        consoleRead: (max) => Uint8Array.from(this.consoleIn.splice(0, max)),
        readPhys: (pa, len) => (ram.contains(pa, len) ? ram.view(pa, len) : undefined),
        writePhys: (pa, b) => {
          if (!ram.contains(pa, b.length)) return false;
          ram.write(pa, b);
          return true;
        },
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
      consoleIn: [...this.consoleIn],
      entropy: this.entropy.state,
      hvPool: this.hvPool.position,
      ...(meta !== undefined ? { meta } : {}),
    };
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
    if (
      state === null ||
      typeof state !== "object" ||
      state.config === null ||
      typeof state.config !== "object"
    ) {
      throw new Error("snapshot: corrupt state (no machine configuration)");
    }
    const c = state.config;
    const disks = opts.disks ?? [];
    const nets = opts.nets ?? [];
    if (
      !Array.isArray(c.disks) ||
      !Number.isSafeInteger(c.memory) ||
      c.memory < 16 << 20 ||
      c.memory > 2 ** 36 ||
      !Number.isInteger(c.harts) ||
      c.harts < 1 ||
      c.harts > 64 ||
      !["off", "nested", "shadow"].includes(c.virt)
    ) {
      throw new Error("snapshot: corrupt machine configuration");
    }
    if (disks.length !== c.disks.length) {
      throw new Error(`snapshot: the machine had ${c.disks.length} disk(s), ${disks.length} given`);
    }
    disks.forEach((d, i) => {
      if ((d.transport ?? "mmio") !== c.disks[i]!.transport) {
        throw new Error(
          `snapshot: disk ${i + 1} was on ${c.disks[i]!.transport}, not ${d.transport ?? "mmio"}`,
        );
      }
    });
    if (nets.length !== c.nets)
      throw new Error(`snapshot: the machine had ${c.nets} network device(s), ${nets.length} given`);
    const m = await Machine.build({
      memory: c.memory,
      harts: c.harts,
      virt: c.virt,
      clock: c.clock,
      rng: c.rng,
      disks: disks.map((d, i) => ({ ...d, ...(c.disks[i]!.id !== undefined ? { id: c.disks[i]!.id } : {}) })),
      nets,
      console: opts.console,
      ...(opts.stats !== undefined ? { stats: opts.stats } : {}),
      ...(opts.yieldToHost !== undefined ? { yieldToHost: opts.yieldToHost } : {}),
      // Firmware harts are built differently; the firmware itself is in the saved RAM.
      ...(c.firmware ? { bios: new Uint8Array(0) } : {}),
    });
    try {
      loadRam(m.ram);
      m.applyState(state);
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
    if (this.deterministic) this.skippedTicks = Number(s.skippedTicks) || 0;
    else this.t0 = performance.now() - Number(s.now) / (TIMEBASE_HZ / 1000);
    this.hvPool.position = Number(s.hvPool);
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
    this.consoleIn = Array.isArray(s.consoleIn) ? s.consoleIn.map((b) => b & 0xff) : [];
    this.entropy.state = Number(s.entropy) | 0 || 1;
  }

  /** Build a machine and load the kernel/firmware (decompressing as needed). */
  static async create(opts: MachineOptions): Promise<Machine> {
    if (!Number.isSafeInteger(opts.memory) || opts.memory < 16 << 20) {
      throw new Error(`memory ${opts.memory} bytes is too small (at least 16 MiB)`);
    }
    const m = await Machine.build(opts);
    await m.load(opts);
    return m;
  }

  /** The machine with its devices, nothing loaded. */
  private static async build(opts: MachineOptions): Promise<Machine> {
    const extra = opts.virt === "nested" || opts.virt === "shadow" ? Vcpu.hypervisorMemory(opts.memory) : 0;
    return new Machine(opts, new GuestRam(M.dram.base, opts.memory + extra));
  }

  private async load(opts: MachineOptions): Promise<void> {
    const harts = this.vcpus.length;
    let fwEntry: number | undefined;
    if (opts.bios !== undefined) {
      const elf = loadElf(this.ram, opts.bios);
      fwEntry = elf.entry;
      if (elf.tohost !== undefined && opts.kernel === undefined) {
        // A bare-metal test program speaking HTIF.
        this.htif = new Htif(this.ram, elf.tohost, elf.fromhost, (b) => this.console.write(b));
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
    loadLinux(this.ram, { plan, fdt: dtb, ...(initrd ? { initrd } : {}) });
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

  private instructionsNow(): number {
    let n = 0;
    for (const v of this.vcpus) n += v.hart.executedCount();
    return n;
  }

  /** Bytes typed for the guest (UART; the SBI console reads the same queue). */
  input(bytes: Uint8Array): void {
    const took = this.uart.pushInput(bytes);
    for (let i = took; i < bytes.length; i++) this.consoleIn.push(bytes[i]!);
    this.wake?.();
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
   * called: no guest instruction runs meanwhile (live migration's paused step). Call it
   * while run() is waiting on the host (from an event handler or a timer), as then no
   * slice is in progress.
   */
  pause(): () => void {
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    this.pauseGate = gate;
    return () => {
      if (this.pauseGate === gate) this.pauseGate = undefined;
      release();
    };
  }

  finish(e: MachineExit): void {
    if (this.exit === undefined) this.exit = e;
    for (const v of this.vcpus) v.hart.requestStop();
    this.wake?.();
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
      let allIdle = true;
      for (const v of this.vcpus) {
        if (!v.running) continue;
        // A slice cut short by stop() (and saved) goes on as if never cut: no timer tick
        // in between, the rest of its budget.
        const resume = v.sliceLeft;
        if (resume === 0) this.tickTimers();
        const r = v.run(resume > 0 ? resume : SLICE);
        if (r !== "wfi") allIdle = false;
        if (this.exit !== undefined) break;
      }
      if (this.htif?.poll()) this.finish({ kind: "htif", code: this.htif.exitCode ?? 1 });
      if (this.exit !== undefined) break;
      this.tickTimers();
      if (allIdle && !this.anyInterruptPending()) await this.idle();
      const t = performance.now();
      if (t - lastYield > 15) {
        await this.yieldToHost();
        lastYield = performance.now();
      }
    }
    this.instructions = this.instructionsNow();
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
