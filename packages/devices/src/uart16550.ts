import { type BusDevice, WIDTH_1 } from "@visor/io-bus";
import { type IrqLine, NO_IRQ } from "./irq.ts";
import { stateBool, stateInt, stateIntArray, stateObject } from "./state.ts";

/*
 * NS16550A UART, as Linux's 8250 driver (compatible "ns16550a") and OpenSBI's uart8250
 * driver use it with reg-shift 0 and 1-byte registers. Register map and bit names follow
 * the National Semiconductor PC16550D datasheet (also Linux include/uapi/linux/serial_reg.h).
 *
 * Model of time: transmission is instantaneous (the sink is called during the THR write),
 * so THR and the transmitter are always empty when the guest looks (LSR.THRE = LSR.TEMT =
 * 1). Flow control toward a slow host is not the UART's business: a machine whose console
 * is backed up stops running the guest (packages/hypervisor MachineConsole), so the guest
 * sees a slow line in time, never a full THR, and a guest that ignores LSR loses nothing. Reception is fed from a bounded host-side input buffer (the "wire"); the receive FIFO
 * the guest sees is the first 16 bytes of it (1 byte with FIFOs disabled). Because bytes
 * wait on the wire until the FIFO has room, there is never a receiver overrun from host
 * input; `pushInput` returns how much it accepted so the host can apply back-pressure.
 *
 * The character-timeout interrupt (IIR 0xC) is reported as soon as the FIFO holds data
 * below the trigger level: in a machine where the wire delivers instantly, "no new
 * character for four character times" is already true. Linux treats it like "received
 * data available".
 *
 * MCR.OUT2 does not gate the interrupt output (it does on PC boards, not on QEMU `virt`).
 */

/** Register offsets with reg-shift 0. */
export const UART_RBR = 0; // read, DLAB=0: receiver buffer
export const UART_THR = 0; // write, DLAB=0: transmitter holding
export const UART_DLL = 0; // DLAB=1: divisor latch low
export const UART_IER = 1; // DLAB=0: interrupt enable
export const UART_DLM = 1; // DLAB=1: divisor latch high
export const UART_IIR = 2; // read: interrupt identification
export const UART_FCR = 2; // write: FIFO control
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

export const UART_IER_RDI = 0x01; // ERBFI: received data available
export const UART_IER_THRI = 0x02; // ETBEI: THR empty
export const UART_IER_RLSI = 0x04; // ELSI: receiver line status
export const UART_IER_MSI = 0x08; // EDSSI: modem status

export const UART_IIR_NO_INT = 0x01;
export const UART_IIR_MSI = 0x00;
export const UART_IIR_THRI = 0x02;
export const UART_IIR_RDI = 0x04;
export const UART_IIR_RLSI = 0x06;
export const UART_IIR_TIMEOUT = 0x0c;
export const UART_IIR_FIFO_ENABLED = 0xc0;

export const UART_FCR_ENABLE_FIFO = 0x01;
export const UART_FCR_CLEAR_RCVR = 0x02;
export const UART_FCR_CLEAR_XMIT = 0x04;
export const UART_FCR_DMA_SELECT = 0x08;
export const UART_FCR_TRIGGER_MASK = 0xc0;

export const UART_LCR_DLAB = 0x80;

export const UART_MCR_DTR = 0x01;
export const UART_MCR_RTS = 0x02;
export const UART_MCR_OUT1 = 0x04;
export const UART_MCR_OUT2 = 0x08;
export const UART_MCR_LOOP = 0x10;

export const UART_LSR_DR = 0x01;
export const UART_LSR_OE = 0x02;
export const UART_LSR_PE = 0x04;
export const UART_LSR_FE = 0x08;
export const UART_LSR_BI = 0x10;
export const UART_LSR_THRE = 0x20;
export const UART_LSR_TEMT = 0x40;
export const UART_LSR_FIFOE = 0x80;

export const UART_MSR_DCTS = 0x01;
export const UART_MSR_DDSR = 0x02;
export const UART_MSR_TERI = 0x04;
export const UART_MSR_DDCD = 0x08;
export const UART_MSR_CTS = 0x10;
export const UART_MSR_DSR = 0x20;
export const UART_MSR_RI = 0x40;
export const UART_MSR_DCD = 0x80;

/** Receive FIFO depth of the 16550A. */
export const UART_FIFO_SIZE = 16;
/** Receive trigger levels selected by FCR[7:6]. */
const TRIGGER_LEVELS = [1, 4, 8, 14] as const;
/** Modem inputs seen when not in loopback: the other end is present and ready. */
const MSR_LINES_CONNECTED = UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD;

export interface Uart16550Options {
  /** Bus name; default "uart16550". */
  name?: string;
  /** Interrupt output (a PLIC source on `virt`: IRQ 10). */
  irq?: IrqLine;
  /** Called once per transmitted byte. Default: discard. */
  output?: (byte: number) => void;
  /** Size of the host-side input buffer in bytes; default 4096. */
  inputCapacity?: number;
}

export interface Uart16550State {
  ier: number;
  lcr: number;
  mcr: number;
  scr: number;
  dll: number;
  dlm: number;
  fcr: number;
  lsrErrors: number;
  msr: number;
  thrIpending: boolean;
  input: number[];
}

export class Uart16550 implements BusDevice {
  readonly name: string;
  readonly widths = WIDTH_1;
  private readonly irq: IrqLine;
  private readonly output: (byte: number) => void;

  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private dll = 0;
  private dlm = 0;
  /** FIFO enable, DMA mode and trigger bits of the last FCR write. */
  private fcr = 0;
  /** Sticky LSR error bits (OE/PE/FE/BI), cleared when LSR is read. */
  private lsrErrors = 0;
  private msr = MSR_LINES_CONNECTED;
  /** THR-empty interrupt condition, cleared by an IIR read that reports it or a THR write. */
  private thrIpending = false;
  private irqLevel = false;

  /** Host input ring buffer. */
  private readonly input: Uint8Array;
  private inHead = 0;
  private inCount = 0;

  constructor(options: Uart16550Options = {}) {
    this.name = options.name ?? "uart16550";
    this.irq = options.irq ?? NO_IRQ;
    this.output = options.output ?? (() => {});
    const cap = options.inputCapacity ?? 4096;
    if (!Number.isInteger(cap) || cap < 1) throw new RangeError(`UART input capacity ${cap} must be >= 1`);
    this.input = new Uint8Array(cap);
  }

  /** Free space in the input buffer, in bytes. */
  get inputFree(): number {
    return this.input.length - this.inCount;
  }

  /** Bytes waiting to be read by the guest (FIFO plus wire). */
  get inputPending(): number {
    return this.inCount;
  }

  /**
   * Queue bytes for the guest to receive. Returns how many were accepted (fewer than
   * `bytes.length` when the input buffer is full; the caller keeps the rest).
   */
  pushInput(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.input.length - this.inCount);
    const cap = this.input.length;
    for (let i = 0; i < n; i++) this.input[(this.inHead + this.inCount + i) % cap] = bytes[i]!;
    this.inCount += n;
    if (n > 0) this.update();
    return n;
  }

  read(offset: number, _size: 1 | 2 | 4): number {
    const dlab = (this.lcr & UART_LCR_DLAB) !== 0;
    switch (offset) {
      case UART_RBR:
        return dlab ? this.dll : this.readRbr();
      case UART_IER:
        return dlab ? this.dlm : this.ier;
      case UART_IIR: {
        const id = this.interruptId();
        if (id === UART_IIR_THRI) {
          this.thrIpending = false;
          this.update();
        }
        return id | (this.fifoEnabled ? UART_IIR_FIFO_ENABLED : 0);
      }
      case UART_LCR:
        return this.lcr;
      case UART_MCR:
        return this.mcr;
      case UART_LSR: {
        const v = (this.rxCount() > 0 ? UART_LSR_DR : 0) | this.lsrErrors | UART_LSR_THRE | UART_LSR_TEMT;
        if (this.lsrErrors !== 0) {
          this.lsrErrors = 0;
          this.update();
        }
        return v;
      }
      case UART_MSR: {
        const v = this.msr;
        if ((v & 0x0f) !== 0) {
          this.msr &= 0xf0;
          this.update();
        }
        return v;
      }
      case UART_SCR:
        return this.scr;
      default:
        return 0;
    }
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    const v = value & 0xff;
    const dlab = (this.lcr & UART_LCR_DLAB) !== 0;
    switch (offset) {
      case UART_THR:
        if (dlab) this.dll = v;
        else this.writeThr(v);
        return;
      case UART_IER:
        if (dlab) {
          this.dlm = v;
        } else {
          const old = this.ier;
          this.ier = v & 0x0f;
          // Enabling ETBEI while THR is empty (always, here) raises the THRE interrupt;
          // disabling it drops the condition. Linux's startup test toggles it to check.
          if ((this.ier ^ old) & UART_IER_THRI) this.thrIpending = (this.ier & UART_IER_THRI) !== 0;
          this.update();
        }
        return;
      case UART_FCR:
        this.writeFcr(v);
        return;
      case UART_LCR:
        this.lcr = v;
        return;
      case UART_MCR:
        this.mcr = v & 0x1f;
        this.updateModemStatus();
        return;
      case UART_SCR:
        this.scr = v;
        return;
      default:
        // LSR and MSR are read-only; offsets past 7 are unimplemented.
        return;
    }
  }

  /** The interrupt currently reported in IIR[3:0], without side effects. */
  interruptId(): number {
    const ier = this.ier;
    if (ier & UART_IER_RLSI && this.lsrErrors !== 0) return UART_IIR_RLSI;
    if (ier & UART_IER_RDI) {
      const n = this.rxCount();
      if (n > 0) return !this.fifoEnabled || n >= this.triggerLevel() ? UART_IIR_RDI : UART_IIR_TIMEOUT;
    }
    if (ier & UART_IER_THRI && this.thrIpending) return UART_IIR_THRI;
    if (ier & UART_IER_MSI && (this.msr & 0x0f) !== 0) return UART_IIR_MSI;
    return UART_IIR_NO_INT;
  }

  /** Back to power-on state (input buffer emptied). */
  reset(): void {
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.scr = 0;
    this.dll = 0;
    this.dlm = 0;
    this.fcr = 0;
    this.lsrErrors = 0;
    this.msr = MSR_LINES_CONNECTED;
    this.thrIpending = false;
    this.inHead = 0;
    this.inCount = 0;
    this.update();
  }

  toState(): Uart16550State {
    const input: number[] = [];
    for (let i = 0; i < this.inCount; i++) input.push(this.input[(this.inHead + i) % this.input.length]!);
    return {
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      fcr: this.fcr,
      lsrErrors: this.lsrErrors,
      msr: this.msr,
      thrIpending: this.thrIpending,
      input,
    };
  }

  fromState(state: unknown): void {
    const d = "uart16550";
    const s = stateObject(state, d);
    const ier = stateInt(s, "ier", d, 0x0f);
    const lcr = stateInt(s, "lcr", d, 0xff);
    const mcr = stateInt(s, "mcr", d, 0x1f);
    const scr = stateInt(s, "scr", d, 0xff);
    const dll = stateInt(s, "dll", d, 0xff);
    const dlm = stateInt(s, "dlm", d, 0xff);
    const fcr =
      stateInt(s, "fcr", d, 0xff) & (UART_FCR_ENABLE_FIFO | UART_FCR_DMA_SELECT | UART_FCR_TRIGGER_MASK);
    const lsrErrors =
      stateInt(s, "lsrErrors", d, 0xff) & (UART_LSR_OE | UART_LSR_PE | UART_LSR_FE | UART_LSR_BI);
    const msr = stateInt(s, "msr", d, 0xff);
    const thrIpending = stateBool(s, "thrIpending", d);
    const input = stateIntArray(s, "input", d, 0xff, { max: this.input.length });
    this.ier = ier;
    this.lcr = lcr;
    this.mcr = mcr;
    this.scr = scr;
    this.dll = dll;
    this.dlm = dlm;
    this.fcr = fcr;
    this.lsrErrors = lsrErrors;
    this.msr = msr;
    this.thrIpending = thrIpending;
    this.inHead = 0;
    this.inCount = input.length;
    this.input.set(input);
    this.irqLevel = this.interruptId() !== UART_IIR_NO_INT;
    this.irq.set(this.irqLevel);
  }

  private get fifoEnabled(): boolean {
    return (this.fcr & UART_FCR_ENABLE_FIFO) !== 0;
  }

  private triggerLevel(): number {
    return TRIGGER_LEVELS[this.fcr >> 6]!;
  }

  /** Bytes in the receive FIFO (or holding register) as the guest sees it. */
  private rxCount(): number {
    return Math.min(this.inCount, this.fifoEnabled ? UART_FIFO_SIZE : 1);
  }

  private readRbr(): number {
    if (this.inCount === 0) return 0;
    const b = this.input[this.inHead]!;
    this.inHead = (this.inHead + 1) % this.input.length;
    this.inCount--;
    this.update();
    return b;
  }

  private writeThr(v: number): void {
    if (this.mcr & UART_MCR_LOOP) {
      // Loopback: the transmitter feeds the receiver; a full receiver overruns.
      if (this.inCount < this.input.length) {
        this.input[(this.inHead + this.inCount) % this.input.length] = v;
        this.inCount++;
      } else {
        this.lsrErrors |= UART_LSR_OE;
      }
    } else {
      this.output(v);
    }
    // The write clears the THRE interrupt; the byte leaves at once, so THR is empty again
    // and the condition comes straight back.
    this.thrIpending = true;
    this.update();
  }

  private writeFcr(v: number): void {
    const wasEnabled = this.fifoEnabled;
    const clearRx =
      (v & UART_FCR_CLEAR_RCVR) !== 0 || (v & UART_FCR_ENABLE_FIFO) !== (this.fcr & UART_FCR_ENABLE_FIFO);
    if (clearRx) {
      // Drop what sits in the FIFO (as sized before this write); bytes still on the wire stay.
      const drop = Math.min(this.inCount, wasEnabled ? UART_FIFO_SIZE : 1);
      this.inHead = (this.inHead + drop) % this.input.length;
      this.inCount -= drop;
    }
    // CLEAR_XMIT: the transmit FIFO is always empty here.
    this.fcr = v & (UART_FCR_ENABLE_FIFO | UART_FCR_DMA_SELECT | UART_FCR_TRIGGER_MASK);
    this.update();
  }

  private updateModemStatus(): void {
    let lines: number;
    if (this.mcr & UART_MCR_LOOP) {
      const m = this.mcr;
      lines =
        (m & UART_MCR_RTS ? UART_MSR_CTS : 0) |
        (m & UART_MCR_DTR ? UART_MSR_DSR : 0) |
        (m & UART_MCR_OUT1 ? UART_MSR_RI : 0) |
        (m & UART_MCR_OUT2 ? UART_MSR_DCD : 0);
    } else {
      lines = MSR_LINES_CONNECTED;
    }
    const old = this.msr & 0xf0;
    const changed = old ^ lines;
    let delta = this.msr & 0x0f;
    if (changed & UART_MSR_CTS) delta |= UART_MSR_DCTS;
    if (changed & UART_MSR_DSR) delta |= UART_MSR_DDSR;
    if (changed & UART_MSR_DCD) delta |= UART_MSR_DDCD;
    if (old & UART_MSR_RI && !(lines & UART_MSR_RI)) delta |= UART_MSR_TERI;
    this.msr = lines | delta;
    this.update();
  }

  private update(): void {
    const level = this.interruptId() !== UART_IIR_NO_INT;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }
}
