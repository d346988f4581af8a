import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../src/irq.ts";
import {
  UART_FCR,
  UART_IER,
  UART_IER_MSI,
  UART_IER_RDI,
  UART_IER_RLSI,
  UART_IER_THRI,
  UART_IIR,
  UART_LCR,
  UART_LSR,
  UART_MCR,
  UART_MSR,
  UART_RBR,
  UART_SCR,
  UART_THR,
  Uart16550,
} from "../src/uart16550.ts";

function make(inputCapacity?: number) {
  const irq = new IrqLevel();
  const out: number[] = [];
  const uart = new Uart16550({
    irq,
    output: (b) => out.push(b),
    ...(inputCapacity ? { inputCapacity } : {}),
  });
  return { uart, irq, out };
}

const bytes = (s: string) => new TextEncoder().encode(s);

describe("Uart16550", () => {
  it("transmits THR writes to the sink and always shows THR/transmitter empty", () => {
    const { uart, out } = make();
    for (const b of bytes("hi\n")) uart.write(UART_THR, 1, b);
    expect(String.fromCharCode(...out)).toBe("hi\n");
    expect(uart.read(UART_LSR, 1) & 0x60).toBe(0x60);
  });

  it("maps offsets 0 and 1 to the divisor latch while LCR.DLAB is set", () => {
    const { uart, out } = make();
    uart.write(UART_IER, 1, 0x05);
    uart.write(UART_LCR, 1, 0x83);
    uart.write(0, 1, 0x01);
    uart.write(1, 1, 0x02);
    expect(uart.read(0, 1)).toBe(0x01);
    expect(uart.read(1, 1)).toBe(0x02);
    uart.write(UART_LCR, 1, 0x03);
    expect(uart.read(UART_IER, 1)).toBe(0x05);
    expect(uart.read(UART_LCR, 1)).toBe(0x03);
    expect(out).toEqual([]);
  });

  it("keeps only the low four IER bits (Linux's autoconfig probe)", () => {
    const { uart } = make();
    uart.write(UART_IER, 1, 0xff);
    expect(uart.read(UART_IER, 1)).toBe(0x0f);
    uart.write(UART_IER, 1, 0);
    expect(uart.read(UART_IER, 1)).toBe(0);
  });

  it("receives input in order with LSR.DR and a data-available interrupt", () => {
    const { uart, irq } = make();
    expect(uart.pushInput(bytes("ab"))).toBe(2);
    expect(uart.read(UART_LSR, 1) & 1).toBe(1);
    expect(irq.level).toBe(false);
    uart.write(UART_IER, 1, UART_IER_RDI);
    expect(irq.level).toBe(true);
    expect(uart.read(UART_IIR, 1)).toBe(0x04);
    expect(uart.read(UART_RBR, 1)).toBe(0x61);
    expect(uart.read(UART_RBR, 1)).toBe(0x62);
    expect(uart.read(UART_LSR, 1) & 1).toBe(0);
    expect(irq.level).toBe(false);
    expect(uart.read(UART_IIR, 1)).toBe(0x01);
  });

  it("reports character timeout below the FIFO trigger level and data-available at it", () => {
    const { uart } = make();
    uart.write(UART_FCR, 1, 0x81); // FIFO on, trigger 8
    uart.write(UART_IER, 1, UART_IER_RDI);
    uart.pushInput(bytes("abc"));
    expect(uart.read(UART_IIR, 1)).toBe(0xcc);
    uart.pushInput(bytes("defgh"));
    expect(uart.read(UART_IIR, 1)).toBe(0xc4);
  });

  it("bounds the input buffer and says how much it took", () => {
    const { uart } = make(8);
    expect(uart.pushInput(new Uint8Array(5))).toBe(5);
    expect(uart.pushInput(new Uint8Array(5))).toBe(3);
    expect(uart.inputFree).toBe(0);
    uart.read(UART_RBR, 1);
    expect(uart.pushInput(new Uint8Array(5))).toBe(1);
  });

  it("FCR clear-receiver drops what is in the FIFO but not what waits behind it", () => {
    const { uart } = make();
    uart.write(UART_FCR, 1, 0x01);
    uart.pushInput(new Uint8Array(20).map((_, i) => i));
    uart.write(UART_FCR, 1, 0x03);
    expect(uart.inputPending).toBe(4);
    expect(uart.read(UART_RBR, 1)).toBe(16);
  });

  it("raises THRE when ETBEI is enabled, clears it on IIR read and re-raises on THR write or re-enable", () => {
    const { uart, irq } = make();
    uart.write(UART_IER, 1, UART_IER_THRI);
    expect(irq.level).toBe(true);
    expect(uart.read(UART_IIR, 1)).toBe(0x02);
    expect(irq.level).toBe(false);
    expect(uart.read(UART_IIR, 1)).toBe(0x01);
    uart.write(UART_THR, 1, 0x41);
    expect(irq.level).toBe(true);
    expect(uart.read(UART_IIR, 1)).toBe(0x02);
    // Linux's UART_BUG_THRE probe: IER=0 then IER=THRI must re-assert THRE.
    uart.write(UART_IER, 1, 0);
    uart.write(UART_IER, 1, UART_IER_THRI);
    expect(uart.read(UART_IIR, 1)).toBe(0x02);
    uart.write(UART_IER, 1, 0);
    expect(irq.level).toBe(false);
  });

  it("orders interrupts: line status > received data > THRE > modem status", () => {
    const { uart } = make(1);
    uart.write(UART_IER, 1, 0x0f);
    uart.write(UART_MCR, 1, 0x10 | 0x02); // loopback with RTS only: DSR and DCD drop
    uart.write(UART_THR, 1, 1); // loops back into the 1-byte input buffer
    uart.write(UART_THR, 1, 2); // overruns
    expect(uart.interruptId()).toBe(0x06);
    expect(uart.read(UART_LSR, 1) & 0x03).toBe(0x03); // DR | OE; the read clears OE
    expect(uart.interruptId()).toBe(0x04);
    uart.read(UART_RBR, 1);
    expect(uart.interruptId()).toBe(0x02);
    uart.read(UART_IIR, 1);
    expect(uart.interruptId()).toBe(0x00);
    expect(uart.read(UART_MSR, 1) & 0x0f).toBe(0x0a); // DDSR | DDCD: DSR and DCD dropped
    expect(uart.interruptId()).toBe(0x01);
  });

  it("loops MCR outputs back to MSR inputs (Linux's loopback test)", () => {
    const { uart } = make();
    uart.write(UART_MCR, 1, 0x10 | 0x0a);
    expect(uart.read(UART_MSR, 1) & 0xf0).toBe(0x90); // DCD | CTS
    uart.write(UART_MCR, 1, 0x00);
    expect(uart.read(UART_MSR, 1) & 0xf0).toBe(0xb0); // back to connected lines
  });

  it("has a scratch register", () => {
    const { uart } = make();
    uart.write(UART_SCR, 1, 0x5a);
    expect(uart.read(UART_SCR, 1)).toBe(0x5a);
  });

  it("round-trips its state", () => {
    const a = make();
    a.uart.write(UART_FCR, 1, 0xc1);
    a.uart.write(UART_IER, 1, UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI);
    a.uart.write(UART_LCR, 1, 0x03);
    a.uart.write(UART_SCR, 1, 7);
    a.uart.pushInput(bytes("state"));
    const s = JSON.parse(JSON.stringify(a.uart.toState()));
    const b = make();
    b.uart.fromState(s);
    expect(b.uart.toState()).toEqual(a.uart.toState());
    expect(b.irq.level).toBe(a.irq.level);
    expect(b.uart.read(UART_RBR, 1)).toBe(0x73);
  });

  it("refuses a bad state with a clear error", () => {
    const { uart } = make();
    expect(() => uart.fromState({ ...uart.toState(), ier: 300 })).toThrow(/invalid uart16550 state: ier/);
    expect(() => uart.fromState(null)).toThrow(/not an object/);
  });

  it("never throws and keeps the IRQ line equal to IIR's pending bit under random guest access", () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant("r" as const), off: fc.integer({ min: 0, max: 15 }) }),
      fc.record({
        k: fc.constant("w" as const),
        off: fc.integer({ min: 0, max: 15 }),
        v: fc.integer({ min: 0, max: 0xffff_ffff }),
      }),
      fc.record({ k: fc.constant("in" as const), data: fc.uint8Array({ maxLength: 40 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const { uart, irq } = make(64);
        for (const o of ops) {
          if (o.k === "r") uart.read(o.off, 1);
          else if (o.k === "w") uart.write(o.off, 1, o.v);
          else uart.pushInput(o.data);
          expect(irq.level).toBe(uart.interruptId() !== 0x01);
        }
        const copy = make(64);
        copy.uart.fromState(uart.toState());
        expect(copy.uart.toState()).toEqual(uart.toState());
      }),
    );
  });
});
