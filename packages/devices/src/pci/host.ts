import { type BusDevice, type IoBus, PORT_LIMIT } from "@visor/io-bus";
import { type IrqLine, NO_IRQ } from "../irq.ts";
import { DeviceStateError, stateInt, stateObject } from "../state.ts";
import { type PciBarListener, type PciBarRange, PciConfig } from "./config.ts";
import {
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CLASS_BRIDGE_HOST,
  PCI_DEVICE_ID_REDHAT_PCIE_HOST,
  PCI_ECAM_BUS_SHIFT,
  PCI_ECAM_DEVICE_SHIFT,
  PCI_ECAM_FUNCTION_SHIFT,
  PCI_NUM_BARS,
  PCI_SLOTS,
  PCI_VENDOR_ID_REDHAT,
} from "./constants.ts";

/*
 * A generic ECAM PCI host bridge, as QEMU's `gpex` on the RISC-V `virt` board (Linux
 * binding pci/host-generic-pci.yaml, compatible "pci-host-ecam-generic").
 *
 * Configuration space (PCIe Base Specification §7.2.2, ECAM): this object is the BusDevice
 * for the ECAM region; an access at offset bus << 20 | device << 15 | function << 12 | reg
 * reaches register `reg` of that function. There is one bus (0), no PCI-to-PCI bridge,
 * and single-function devices: the host bridge itself at 00:00.0 (vendor 0x1b36, device
 * 0x0008, class 0x060000, as QEMU's) and up to 31 endpoints in slots 1..31. A function that
 * does not exist reads all ones (a master abort, which is how the driver's scan learns the
 * slot is empty) and ignores writes.
 *
 * BARs: the driver assigns them (Linux does, with pci-host-generic). Whenever a command
 * register or a BAR changes, the bridge recomputes where every enabled BAR decodes and
 * updates the buses: I/O BARs are registered on the port-I/O bus at their port range,
 * memory BARs on the MMIO bus at their address if that lies inside the 32-bit MMIO window
 * (a real bridge forwards nothing else). A BAR whose range collides with another
 * registration stays unmapped, the collision is reported to `onError`, and it is mapped as
 * soon as a later change frees the range. Nothing a guest writes makes the bridge throw.
 *
 * INTx: slot s's pin p (1..4 = INTA..INTD) drives intx[(s + p - 1) % 4], the standard
 * swizzle that the device tree's interrupt-map describes (on virt: PLIC sources 32..35).
 * Functions sharing a line are wire-ORed: the line is high while any of them asserts.
 */

/** A function on the bus: its configuration space (which holds its BARs and INTx pin). */
export interface PciFunction {
  readonly name: string;
  readonly config: PciConfig;
}

/** What the bridge needs of a bus to map BARs on it (an io-bus MmioBus or PortBus). */
export type PciBarBus = Pick<IoBus, "register" | "unregister" | "addWriteListener">;

export interface PciHostBridgeOptions {
  /** The port-I/O bus I/O BARs are mapped on (`IoManager.pio`). */
  pio: PciBarBus;
  /** The MMIO bus memory BARs are mapped on; without it memory BARs never decode. */
  mmio?: PciBarBus;
  /** The 32-bit memory window; on virt 0x40000000 + 0x40000000. Required with `mmio`. */
  mmioWindow?: { base: number; size: number };
  /** The four shared INTx lines after swizzling (virt: PLIC sources 32..35). Default unwired. */
  intx?: readonly IrqLine[];
  /** Number of buses ECAM decodes (its size is buses << 20). Default 256. */
  buses?: number;
  /** Name of the ECAM region on the MMIO bus. Default "pci-ecam". */
  name?: string;
  /** Told about BARs left unmapped because their range collides. Default: ignore. */
  onError?: (message: string) => void;
}

export interface PciHostBridgeState {
  functions: { slot: number; config: unknown }[];
}

/** Number of swizzled INTx lines (INTA..INTD). */
export const PCI_INTX_LINES = 4;

/** The INTx line slot `slot`'s pin `pin` (1..4) drives: (slot + pin - 1) mod 4. */
export function pciSwizzle(slot: number, pin: number): number {
  return (slot + pin - 1) % PCI_INTX_LINES;
}

interface Mapped {
  bus: "pio" | "mmio";
  base: number;
  size: number;
  device: BusDevice;
  listeners: readonly PciBarListener[];
  /** Removers of the write listeners installed for this mapping. */
  unlisten: (() => void)[];
}

export class PciHostBridge implements BusDevice {
  readonly name: string;
  /** Bytes of ECAM space: buses << 20. */
  readonly size: number;
  /** The host bridge function at 00:00.0. */
  readonly host: PciFunction;
  private readonly slots: (PciFunction | undefined)[] = new Array(PCI_SLOTS).fill(undefined);
  private readonly pio: PciBarBus;
  private readonly mmio: PciBarBus | undefined;
  private readonly windowBase: number;
  private readonly windowEnd: number;
  private readonly intx: IrqLine[];
  /** Per INTx line, how many functions assert it. */
  private readonly intxCount = new Int32Array(PCI_INTX_LINES);
  private readonly onError: (message: string) => void;
  /** BAR handler -> where it is registered now. */
  private readonly mapped = new Map<BusDevice, Mapped>();
  /** Conflicts already reported, so a guest rewriting a BAR does not flood the sink. */
  private readonly reported = new Set<string>();
  private holdRemap = false;

  constructor(options: PciHostBridgeOptions) {
    const buses = options.buses ?? 256;
    if (!Number.isInteger(buses) || buses < 1 || buses > 256) {
      throw new RangeError(`PCI host bridge: bus count ${String(buses)} must be in 1..256`);
    }
    this.size = buses << PCI_ECAM_BUS_SHIFT;
    this.name = options.name ?? "pci-ecam";
    this.pio = options.pio;
    this.mmio = options.mmio;
    if (options.mmio !== undefined && options.mmioWindow === undefined) {
      throw new Error("PCI host bridge: an MMIO bus needs an mmioWindow for memory BARs");
    }
    const w = options.mmioWindow ?? { base: 0, size: 0 };
    if (!Number.isSafeInteger(w.base) || !Number.isSafeInteger(w.size) || w.base < 0 || w.size < 0) {
      throw new RangeError(`PCI host bridge: bad MMIO window ${String(w.base)} + ${String(w.size)}`);
    }
    this.windowBase = w.base;
    this.windowEnd = w.base + w.size;
    const intx = options.intx ?? [];
    if (intx.length !== 0 && intx.length !== PCI_INTX_LINES) {
      throw new RangeError(
        `PCI host bridge: intx needs ${PCI_INTX_LINES} lines (INTA..INTD), got ${intx.length}`,
      );
    }
    this.intx = intx.length === 0 ? [NO_IRQ, NO_IRQ, NO_IRQ, NO_IRQ] : [...intx];
    this.onError = options.onError ?? (() => {});
    this.host = {
      name: "pci-host",
      config: new PciConfig({
        vendorId: PCI_VENDOR_ID_REDHAT,
        deviceId: PCI_DEVICE_ID_REDHAT_PCIE_HOST,
        classCode: PCI_CLASS_BRIDGE_HOST,
      }),
    };
    this.plug(0, this.host);
  }

  /**
   * Put `fn` in slot `slot` (1..31; default the lowest free one) and return the slot.
   * Its INTx pin is routed by the swizzle; its BARs decode once the driver assigns them.
   */
  addDevice(fn: PciFunction, slot?: number): number {
    if (this.slots.includes(fn)) throw new Error(`PCI: "${fn.name}" is already on the bus`);
    let s = slot;
    if (s === undefined) {
      s = this.slots.indexOf(undefined);
      if (s < 0) throw new Error(`PCI: no free slot for "${fn.name}" (31 endpoints at most)`);
    } else if (!Number.isInteger(s) || s < 1 || s >= PCI_SLOTS) {
      throw new RangeError(`PCI: slot ${String(s)} for "${fn.name}" must be in 1..${PCI_SLOTS - 1}`);
    } else if (this.slots[s] !== undefined) {
      throw new Error(`PCI: slot ${s} is taken by "${this.slots[s]!.name}"`);
    }
    this.plug(s, fn);
    return s;
  }

  /** The function in `slot` (0 is the host bridge), if any. */
  functionAt(slot: number): PciFunction | undefined {
    return this.slots[slot];
  }

  /** The slot `fn` occupies, or -1. */
  slotOf(fn: PciFunction): number {
    return this.slots.indexOf(fn);
  }

  /** Every BAR decoding right now, in slot then BAR order. */
  mappings(): (PciBarRange & { slot: number })[] {
    const out: (PciBarRange & { slot: number })[] = [];
    this.slots.forEach((fn, slot) => {
      if (fn === undefined) return;
      for (let i = 0; i < PCI_NUM_BARS; i++) {
        const r = fn.config.barRange(i);
        if (r !== undefined && this.mapped.get(r.device)?.base === r.base) out.push({ ...r, slot });
      }
    });
    return out;
  }

  /** Whether INTx line `index` (0..3) is high. */
  intxLevel(index: number): boolean {
    return (this.intxCount[index] ?? 0) > 0;
  }

  // ---------------------------------------------------------------- ECAM

  read(offset: number, size: 1 | 2 | 4): number {
    const fn = this.decode(offset);
    if (fn === undefined) return size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    return fn.config.read(offset & (PCI_CFG_SPACE_EXP_SIZE - 1), size);
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    const fn = this.decode(offset);
    if (fn === undefined) return;
    fn.config.write(offset & (PCI_CFG_SPACE_EXP_SIZE - 1), size, value);
  }

  /** The function an ECAM offset addresses: bus 0, function 0 of an occupied slot. */
  private decode(offset: number): PciFunction | undefined {
    if (offset < 0 || offset >= this.size) return undefined;
    if (offset >>> PCI_ECAM_BUS_SHIFT !== 0) return undefined;
    if (((offset >>> PCI_ECAM_FUNCTION_SHIFT) & 7) !== 0) return undefined;
    return this.slots[(offset >>> PCI_ECAM_DEVICE_SHIFT) & 31];
  }

  // ---------------------------------------------------------------- reset and state

  /** Every function's configuration space to its power-on state; all BARs unmapped. */
  reset(): void {
    this.batch(() => {
      for (const fn of this.slots) fn?.config.reset();
    });
  }

  toState(): PciHostBridgeState {
    const functions: { slot: number; config: unknown }[] = [];
    this.slots.forEach((fn, slot) => {
      if (fn !== undefined) functions.push({ slot, config: fn.config.toState() });
    });
    return { functions };
  }

  /** Restore every function's configuration space; the same slots must be occupied. */
  fromState(state: unknown): void {
    const d = "PCI host bridge";
    const s = stateObject(state, d);
    const list = s.functions;
    const occupied = this.slots.flatMap((fn, slot) => (fn === undefined ? [] : [slot]));
    if (!Array.isArray(list) || list.length !== occupied.length) {
      throw new DeviceStateError(`invalid ${d} state: functions must list slots ${occupied.join(", ")}`);
    }
    const entries = list.map((e: unknown, i) => {
      const o = stateObject(e, `${d} function ${i}`);
      const slot = stateInt(o, "slot", `${d} function ${i}`, PCI_SLOTS - 1);
      if (slot !== occupied[i]) {
        throw new DeviceStateError(
          `invalid ${d} state: function ${i} is in slot ${slot}, expected ${occupied[i]}`,
        );
      }
      return { fn: this.slots[slot]!, config: o.config };
    });
    this.batch(() => {
      for (const e of entries) e.fn.config.fromState(e.config);
    });
  }

  // ---------------------------------------------------------------- internals

  private plug(slot: number, fn: PciFunction): void {
    this.slots[slot] = fn;
    fn.config.setDecodeListener(() => this.remap());
    const pin = fn.config.interruptPin;
    if (pin !== 0) fn.config.connectIntx(this.intxInput(pciSwizzle(slot, pin)));
    this.remap();
  }

  /** One function's input to shared line `index`: counted, so the line is a wired OR. */
  private intxInput(index: number): IrqLine {
    let level = false;
    return {
      set: (l: boolean) => {
        if (l === level) return;
        level = l;
        const n = (this.intxCount[index]! += l ? 1 : -1);
        if (n === (l ? 1 : 0)) this.intx[index]!.set(l);
      },
    };
  }

  /** Run `f` with remapping deferred to one pass at the end. */
  private batch(f: () => void): void {
    this.holdRemap = true;
    try {
      f();
    } finally {
      this.holdRemap = false;
    }
    this.remap();
  }

  /** Bring the buses in line with what every enabled BAR decodes now. */
  private remap(): void {
    if (this.holdRemap) return;
    const want = new Map<BusDevice, Mapped & { what: string }>();
    this.slots.forEach((fn, slot) => {
      if (fn === undefined) return;
      for (let i = 0; i < PCI_NUM_BARS; i++) {
        const r = fn.config.barRange(i);
        if (r === undefined) continue;
        const what = `00:${slot.toString(16).padStart(2, "0")}.0 BAR ${i} ("${fn.name}")`;
        const listeners = fn.config.bars[i]?.listeners ?? [];
        const m = { base: r.base, size: r.size, device: r.device, listeners, unlisten: [], what };
        if (r.kind === "io") {
          if (r.base + r.size > PORT_LIMIT) continue; // cannot happen with 16-bit I/O BARs
          want.set(r.device, { bus: "pio", ...m });
        } else if (
          this.mmio !== undefined &&
          r.base >= this.windowBase &&
          r.base + r.size <= this.windowEnd
        ) {
          want.set(r.device, { bus: "mmio", ...m });
        }
      }
    });
    for (const [dev, m] of this.mapped) {
      const w = want.get(dev);
      if (w !== undefined && w.bus === m.bus && w.base === m.base && w.size === m.size) {
        want.delete(dev);
        continue;
      }
      for (const off of m.unlisten) off();
      this.busOf(m.bus).unregister(dev);
      this.mapped.delete(dev);
    }
    for (const w of want.values()) {
      const bus = this.busOf(w.bus);
      try {
        bus.register(w.base, w.size, w.device);
      } catch (e) {
        this.report(`${w.what} at ${w.bus} 0x${w.base.toString(16)} left unmapped`, e);
        continue;
      }
      const unlisten: (() => void)[] = [];
      for (const l of w.listeners) {
        try {
          unlisten.push(bus.addWriteListener(w.base + l.offset, l.size, l.handler));
        } catch (e) {
          this.report(`${w.what}: no fast path at ${w.bus} 0x${(w.base + l.offset).toString(16)}`, e);
        }
      }
      const { what: _, ...mapped } = w;
      this.mapped.set(w.device, { ...mapped, unlisten });
    }
  }

  private report(what: string, e: unknown): void {
    const msg = `PCI: ${what}: ${e instanceof Error ? e.message : String(e)}`;
    if (this.reported.has(msg)) return;
    if (this.reported.size > 64) this.reported.clear();
    this.reported.add(msg);
    this.onError(msg);
  }

  private busOf(bus: "pio" | "mmio"): PciBarBus {
    return bus === "pio" ? this.pio : this.mmio!;
  }
}
