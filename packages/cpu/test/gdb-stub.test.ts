/**
 * The GDB remote stub against a scripted client (no gdb needed): hostile framing first
 * (bad checksums, overlong packets, bad hex, huge lengths), then the protocol over a hart
 * running a three-instruction loop in a minimal host (the way Machine and Kernel drive
 * it: run in budgets, stop while paused).
 */
import { GuestRam, hpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { framePacket, fromLatin1, latin1, MAX_PACKET, PacketReader } from "../src/gdb/packets.ts";
import { readRegister, writeRegister } from "../src/gdb/registers.ts";
import { MAX_POINTS } from "../src/gdb/stub.ts";
import {
  GdbStub,
  type GdbTarget,
  type GdbThread,
  Hart,
  type HartDebugHook,
  type JitMode,
} from "../src/index.ts";

const BASE = 0x8000_0000;
// addi x1,x1,1 ; sd x1,0(x2) ; jal x0,-8
const PROGRAM = [0x00108093, 0x00113023, 0xff9ff06f];
const DATA = 0x8000_1000;
const noBus = { read: () => -1, write: () => false, read64: () => undefined, write64: () => false };

/** A host like Machine.run: the hart in budgets, nothing while paused. */
class Host implements GdbTarget {
  readonly hart: Hart;
  /** Every hart; the second (if any) runs the same loop with its data 0x100 further. */
  readonly harts: Hart[];
  readonly ram = new GuestRam(BASE, 64 * 1024);
  system = true;
  paused = false;
  killed = false;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(jit: JitMode, count = 1) {
    for (const [i, w] of PROGRAM.entries()) this.ram.write32(hpa(BASE + 4 * i), w);
    this.harts = [];
    for (let i = 0; i < count; i++) {
      const h = new Hart({ ram: this.ram, bus: noBus, jit, hartId: i });
      h.reset(BASE);
      h.setX(2, BigInt(DATA + 0x100 * i));
      this.harts.push(h);
    }
    this.hart = this.harts[0]!;
  }
  threads(): GdbThread[] {
    return this.harts.map((hart, i) => ({ id: i + 1, hart }));
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.wake?.();
  }
  setHook(hook: HartDebugHook<Hart> | undefined): void {
    for (const h of this.harts) h.debugHook = hook;
  }
  kill(): void {
    this.killed = true;
    this.stopped = true;
    this.wake?.();
  }
  async loop(): Promise<void> {
    while (!this.stopped) {
      if (this.paused) {
        await new Promise<void>((r) => {
          this.wake = r;
        });
        continue;
      }
      for (const h of this.harts) {
        h.run(1000);
        if (this.paused) break;
      }
      await new Promise<void>((r) => setImmediate(r));
    }
  }
  end(): void {
    this.kill();
  }
}

/** A scripted gdb: sends packets, collects the stub's replies. */
class Client {
  readonly raw: number[] = [];
  closed = false;
  private readonly reader = new PacketReader();
  private readonly replies: string[] = [];
  readonly stub: GdbStub;
  constructor(stub: GdbStub) {
    this.stub = stub;
    stub.attach({
      write: (b) => {
        this.raw.push(...b);
        for (const f of this.reader.push(b))
          if (f.kind === "packet") this.replies.push(fromLatin1(f.payload));
      },
      close: () => {
        this.closed = true;
      },
    });
  }
  sendRaw(s: string | Uint8Array): void {
    this.stub.receive(typeof s === "string" ? latin1(s) : s);
  }
  /** Send a packet and return the reply (waiting for it: a stop reply comes later). */
  async ask(payload: string): Promise<string> {
    this.stub.receive(framePacket(payload));
    return this.next();
  }
  async next(): Promise<string> {
    for (let i = 0; i < 2000 && this.replies.length === 0; i++) await new Promise((r) => setTimeout(r, 2));
    const r = this.replies.shift();
    if (r === undefined) throw new Error("no reply");
    return r;
  }
  pending(): number {
    return this.replies.length;
  }
}

function setup(paused = true, jit: JitMode = "always", harts = 1) {
  const host = new Host(jit, harts);
  const stub = new GdbStub(host, paused);
  const client = new Client(stub);
  const running = host.loop();
  return {
    host,
    stub,
    client,
    done: async () => {
      host.end();
      await running;
    },
  };
}

const le64 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b.toString("hex");
};

describe("packet framing (hostile client)", () => {
  it("refuses a bad checksum with '-' and no reply", async () => {
    const { client, done } = setup();
    client.raw.length = 0;
    client.sendRaw("$g#00");
    expect(String.fromCharCode(...client.raw)).toBe("-");
    client.sendRaw("$g#zz");
    expect(String.fromCharCode(...client.raw)).toBe("--");
    await done();
  });

  it("drops an overlong packet whole, answers E01, and goes on", async () => {
    const { client, done } = setup();
    const big = `$m${"0".repeat(MAX_PACKET * 4)}#00`;
    client.sendRaw(big);
    expect(await client.next()).toBe("E01");
    expect(await client.ask("?")).toMatch(/^T05/);
    await done();
  });

  it("answers malformed packets with errors, not exceptions", async () => {
    const { client, done } = setup();
    for (const p of [
      "mzz,4",
      "m80000000",
      "m80000000,",
      "m1,2,3",
      "M80000000,2:zz",
      "M80000000,4:00",
      "X80000000,4:",
      "Z9,0,4",
      "Z0,xyz,4",
      "Z2,80001000,0",
      "pzz",
      "p99999",
      "Pzz=00",
      "P20=00",
      "Hgzz",
      "Hq1",
      "Tzz",
      "vCont;q",
      "C",
      "Cxx",
      "qXfer:features:read:other.xml:0,10",
      "qXfer:features:read:target.xml:zz,10",
      "G00",
    ]) {
      expect(await client.ask(p), p).toMatch(/^E/);
    }
    expect(await client.ask("unknown-packet")).toBe("");
    await done();
  });

  it("caps a huge m length at one packet and answers E14 for unmapped memory", async () => {
    const { client, done } = setup();
    const r = await client.ask("m80000000,ffffffffffffffff");
    expect(r.length).toBeLessThanOrEqual(MAX_PACKET);
    expect(r.length).toBeGreaterThan(1000);
    expect(r.slice(0, 8)).toBe("93801000");
    expect(await client.ask("m10,4")).toBe("E14");
    // a read running off the end of RAM returns the part that is there
    expect(await client.ask(`m${(BASE + 64 * 1024 - 2).toString(16)},8`)).toBe("0000");
    await done();
  });

  it("limits how many breakpoints and watchpoints a client can set", async () => {
    const { client, done } = setup();
    for (let i = 0; i < MAX_POINTS; i++) client.sendRaw(framePacket(`Z0,${(0x1000 + 2 * i).toString(16)},2`));
    for (let i = 0; i < MAX_POINTS; i++) await client.next();
    expect(await client.ask("Z0,90000000,2")).toBe("E22");
    expect(await client.ask("Z0,1000,2")).toBe("OK"); // one already there
    expect(await client.ask("z0,1000,2")).toBe("OK");
    expect(await client.ask("Z0,90000000,2")).toBe("OK");
    await done();
  });

  it("decodes run-length encoding and escapes", () => {
    const r = new PacketReader();
    // "0* " is '0' and 3 more copies (' ' = 32 = 29 + 3)
    const body = "m0* ";
    let sum = 0;
    for (const c of body) sum += c.charCodeAt(0);
    const f = r.push(latin1(`$${body}#${(sum & 0xff).toString(16).padStart(2, "0")}`));
    expect(f[0]?.kind === "packet" && fromLatin1(f[0].payload)).toBe("m0000");
    const framed = framePacket("a}b#c$d*e");
    const g = r.push(framed);
    expect(g[0]?.kind === "packet" && fromLatin1(g[0].payload)).toBe("a}b#c$d*e");
  });
});

describe("the protocol over a hart", () => {
  it("describes the target and reads registers and memory", async () => {
    const { client, done } = setup();
    expect(await client.ask("qSupported:multiprocess+;swbreak+")).toContain("qXfer:features:read+");
    const xml = await client.ask("qXfer:features:read:target.xml:0,3fff");
    expect(xml[0]).toBe("l");
    expect(xml).toContain('<feature name="org.gnu.gdb.riscv.cpu">');
    expect(xml).toContain('<reg name="mstatus"');
    expect(xml).toContain('<reg name="priv"');
    const part = await client.ask("qXfer:features:read:target.xml:0,10");
    expect(part).toBe(`m${xml.slice(1, 17)}`);
    const g = await client.ask("g");
    expect(g.length).toBe(33 * 16);
    expect(g.slice(32 * 16)).toBe(le64(BigInt(BASE)));
    expect(await client.ask("p20")).toBe(le64(BigInt(BASE)));
    expect(await client.ask("p2")).toBe(le64(BigInt(DATA)));
    expect(await client.ask(`p${(65 + 0x301).toString(16)}`)).toMatch(/^[0-9a-f]{16}$/); // misa
    expect(await client.ask(`p${(65 + 4096).toString(16)}`)).toBe(le64(3n)); // priv: M
    expect(await client.ask("p43")).toBe("00000000"); // fflags, 32 bits
    expect(await client.ask("qfThreadInfo")).toBe("m1");
    expect(await client.ask("qsThreadInfo")).toBe("l");
    expect(await client.ask("qAttached")).toBe("1");
    expect(await client.ask("vCont?")).toBe("vCont;c;C;s;S");
    expect(await client.ask("m80000000,c")).toBe("938010002330110023f09fff".replace("23f09fff", "6ff09fff"));
    expect(await client.ask("P5=2a00000000000000")).toBe("OK");
    expect(await client.ask("p5")).toBe(le64(42n));
    expect(await client.ask("M80002000,4:deadbeef")).toBe("OK");
    expect(await client.ask("m80002000,4")).toBe("deadbeef");
    expect(await client.ask("X80002004,2:#$")).toBe("OK"); // sent escaped by framePacket
    expect(await client.ask("m80002004,2")).toBe("2324");
    await done();
  });

  for (const jit of ["always", "off"] as const) {
    it(`stops at breakpoints, steps one instruction, and reports watchpoints (jit ${jit})`, async () => {
      const { host, client, done } = setup(true, jit);
      expect(await client.ask("Z0,80000008,4")).toBe("OK");
      expect(await client.ask("c")).toBe("T05swbreak:;thread:1;");
      expect(host.hart.pc).toBe(BigInt(BASE + 8));
      expect(host.hart.getX(1)).toBe(1n);
      // continuing from a breakpoint runs the instruction under it, and stops there again next time round
      expect(await client.ask("c")).toBe("T05swbreak:;thread:1;");
      expect(host.hart.getX(1)).toBe(2n);
      expect(await client.ask("z0,80000008,4")).toBe("OK");
      expect(await client.ask("s")).toBe("T05thread:1;");
      expect(host.hart.pc).toBe(BigInt(BASE));
      expect(await client.ask("vCont;s:1")).toBe("T05thread:1;");
      expect(host.hart.pc).toBe(BigInt(BASE + 4));
      expect(host.hart.getX(1)).toBe(3n);
      // a write watchpoint stops before the store, at the sd (not the one it was resumed at)
      expect(await client.ask("Z2,80001000,8")).toBe("OK");
      expect(await client.ask("s")).toBe("T05thread:1;");
      expect(host.hart.pc).toBe(BigInt(BASE + 8));
      expect(await client.ask("c")).toBe("T05watch:80001000;thread:1;");
      expect(host.hart.pc).toBe(BigInt(BASE + 4));
      expect(host.hart.getX(1)).toBe(4n);
      expect(await client.ask("z2,80001000,8")).toBe("OK");
      expect(await client.ask("Z1,80000000,4")).toBe("OK");
      expect(await client.ask("c")).toBe("T05hwbreak:;thread:1;");
      expect(await client.ask("z1,80000000,4")).toBe("OK");
      // a read watchpoint does not fire on a store
      expect(await client.ask("Z3,80001000,8")).toBe("OK");
      expect(await client.ask("Z0,80000000,4")).toBe("OK");
      expect(await client.ask("c")).toBe("T05swbreak:;thread:1;");
      await done();
    });
  }

  it("shows one thread per hart: Hg selects registers, a step runs only the stepped hart", async () => {
    const { host, client, done } = setup(true, "always", 2);
    const [h1, h2] = host.harts as [Hart, Hart];
    expect(await client.ask("qfThreadInfo")).toBe("m1,2");
    expect(await client.ask("Hg2")).toBe("OK");
    expect(await client.ask("p2")).toBe(le64(BigInt(DATA + 0x100)));
    expect(await client.ask("Hg1")).toBe("OK");
    expect(await client.ask("p2")).toBe(le64(BigInt(DATA)));
    expect(await client.ask("Hg3")).toBe("E01");
    expect(await client.ask("T2")).toBe("OK");
    expect(await client.ask("T3")).toBe("E01");
    expect(await client.ask("vCont;s:2;c")).toBe("T05thread:2;");
    expect(h2.pc).toBe(BigInt(BASE + 4));
    expect(h1.pc).toBe(BigInt(BASE));
    expect(await client.ask("Hc1")).toBe("OK");
    expect(await client.ask("s")).toBe("T05thread:1;");
    expect(h1.pc).toBe(BigInt(BASE + 4));
    expect(h2.pc).toBe(BigInt(BASE + 4));
    // a breakpoint stops whichever hart reaches it, and names it
    expect(await client.ask("Z0,80000008,4")).toBe("OK");
    expect(await client.ask("c")).toMatch(/^T05swbreak:;thread:[12];$/);
    expect(await client.ask("qC")).toMatch(/^QC[12]$/);
    await done();
  });

  it("interrupts a running guest with Ctrl-C and takes the hook off when nothing needs it", async () => {
    const { host, client, done } = setup();
    client.sendRaw(framePacket("c"));
    expect(host.hart.debugHook).toBeUndefined();
    for (let i = 0; i < 1000 && host.hart.getX(1) < 10000n; i++) await new Promise((r) => setTimeout(r, 2));
    expect(host.hart.getX(1)).toBeGreaterThanOrEqual(10000n);
    expect(client.pending()).toBe(0);
    expect(await client.ask("g")).toBe("E10"); // not while it runs
    client.sendRaw(new Uint8Array([3]));
    expect(await client.next()).toBe("T02thread:1;");
    const x1 = host.hart.getX(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(host.hart.getX(1)).toBe(x1);
    await done();
  });

  it("QStartNoAckMode stops the acks; k kills the guest and closes", async () => {
    const { host, client, done } = setup();
    expect(await client.ask("QStartNoAckMode")).toBe("OK");
    client.raw.length = 0;
    expect(await client.ask("?")).toBe("T05thread:1;");
    expect(client.raw[0]).toBe(0x24);
    client.sendRaw(framePacket("k"));
    expect(host.killed).toBe(true);
    expect(client.closed).toBe(true);
    await done();
  });
});

describe("registers of a guest kernel under V=1", () => {
  it("show the supervisor CSRs the guest sees: the VS copies", () => {
    const hart = new Hart({ ram: new GuestRam(BASE, 64 * 1024), bus: noBus, hypervisor: true });
    const set = { system: true };
    hart.setCsr(0x180, 0x8000000000000001n); // satp (the host's)
    hart.setCsr(0x280, 0x8000000000000002n); // vsatp (the guest's)
    const satp = 65 + 0x180;
    expect(readRegister(set, hart, satp)).toBe(0x8000000000000001n);
    hart.setPrivilege(1, true);
    expect(readRegister(set, hart, satp)).toBe(0x8000000000000002n);
    expect(writeRegister(set, hart, satp, 0x8000000000000003n)).toBe(true);
    expect(hart.getCsr(0x280)).toBe(0x8000000000000003n);
    expect(hart.getCsr(0x180)).toBe(0x8000000000000001n);
    expect(readRegister(set, hart, 65 + 4096)).toBe(1n); // priv
    expect(readRegister({ system: false }, hart, satp)).toBeUndefined();
  });
});
