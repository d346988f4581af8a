/**
 * A GDB remote stub: what gdb's `target remote` talks to. It owns no thread of its own:
 * bytes from the client go in through `receive`, replies leave through the connection's
 * `write`, and the guest it debugs keeps running in its host's event loop (a `Machine`
 * for `visor run`, a `Kernel` for `visor exec`), which it reaches only through `GdbTarget`.
 *
 * Execution control. The stub stops the guest by pausing its host (no hart runs until it
 * resumes). Breakpoints, watchpoints and single steps need more: while any is set the
 * stub puts a `HartDebugHook` on every hart, and the hart then runs one instruction at a
 * time (debug-hook.ts: `Hart.run(1)` in a loop; translated code never runs past a breakpoint) with
 * the pc checked against the breakpoints and the next data access against the
 * watchpoints before each instruction. With none set and the guest continued, the hook is
 * off and the hart runs at full speed, translator included.
 *
 * The client is untrusted: every packet is parsed strictly, malformed ones get an `E`
 * reply, lengths are capped (MAX_PACKET), and breakpoints are limited in number.
 */
import type { GuestRam } from "@visor/memory";
import type { HartDebugHook } from "../debug-hook.ts";
import type { HartExit } from "../exit.ts";
import type { Hart } from "../hart.ts";
import { type FaultIn, nextDataAccess, readVirtual, writeVirtual } from "./memory.ts";
import {
  framePacket,
  fromHex,
  fromLatin1,
  latin1,
  le64Hex,
  MAX_PACKET,
  PacketReader,
  parseHexNumber,
  parseLe64Hex,
  toHex,
} from "./packets.ts";
import {
  PC_REGNUM,
  type RegisterSet,
  readRegister,
  registerSize,
  targetXml,
  writeRegister,
} from "./registers.ts";

/** One thread as gdb sees it: a hart (of the machine, or of a process's task). */
export interface GdbThread {
  /** gdb's thread id: positive. */
  id: number;
  hart: Hart;
}

/** What the stub needs from the guest's host. */
export interface GdbTarget {
  /** The live threads, in a stable order. */
  threads(): GdbThread[];
  /** Stop running guest code (effective at once between slices): no hart runs until resume(). */
  pause(): void;
  resume(): void;
  /** Put `hook` on every hart, present and future (undefined: take it off). */
  setHook(hook: HartDebugHook<Hart> | undefined): void;
  /** The RAM the harts run on. */
  ram: GuestRam;
  /** gdb's kill: end the guest. */
  kill(): void;
  /** Show the machine's CSRs and privilege (a whole machine) or not (a user process). */
  system: boolean;
  /** Bring in a page of the thread's address space that is mapped but not present (a process). */
  faultIn?(thread: GdbThread, va: bigint, write: boolean): boolean;
}

/** The stub's side of one client connection. */
export interface GdbConnection {
  write(bytes: Uint8Array): void;
  close(): void;
}

/** Breakpoints and watchpoints at most, each kind (a client cannot grow the sets without bound). */
export const MAX_POINTS = 4096;
/** The largest `m` reply, in bytes of memory (two hex digits each, within MAX_PACKET). */
const MAX_READ = (MAX_PACKET - 16) >> 1;

const SIGINT = 2;
const SIGTRAP = 5;

interface Watch {
  addr: bigint;
  len: bigint;
  read: boolean;
  write: boolean;
}

type StopWhy = { signal: number; watch?: bigint; swbreak?: boolean; hwbreak?: boolean };

export class GdbStub implements HartDebugHook<Hart> {
  private readonly reader = new PacketReader();
  private readonly set: RegisterSet;
  private conn: GdbConnection | undefined;
  private noAck = false;
  private running: boolean;
  /** The hart being single-stepped (the others are held), if any. */
  private stepping: Hart | undefined;
  /** Per hart, the pc it was resumed at: a breakpoint there does not stop it again at once. */
  private readonly resumedAt = new Map<Hart, bigint>();
  private readonly soft = new Set<bigint>();
  private readonly hard = new Set<bigint>();
  /** The low 32 bits (int32) of every breakpoint: the per-instruction test, without a BigInt. */
  private readonly lows = new Set<number>();
  private readonly watches = new Map<string, Watch>();
  private lastStop: { thread: number; why: StopWhy } = { thread: 0, why: { signal: SIGTRAP } };
  /** Hg and Hc: the thread for register access and the one to step (0: any). */
  private gThread = 0;
  private cThread = 0;
  private exited: string | undefined;

  /** Log lines (a refused packet, a client gone). */
  log: (line: string) => void = () => {};

  /**
   * @param paused  start with the guest stopped (it runs when gdb continues)
   */
  private readonly target: GdbTarget;

  constructor(target: GdbTarget, paused: boolean) {
    this.target = target;
    this.set = { system: target.system };
    this.running = !paused;
    if (paused) {
      target.pause();
      const first = target.threads()[0];
      this.lastStop = { thread: first?.id ?? 0, why: { signal: SIGTRAP } };
    }
  }

  /** A client connected: the guest stops for it (as with QEMU), and it talks to this stub. */
  attach(conn: GdbConnection): void {
    this.conn?.close();
    this.conn = conn;
    this.noAck = false;
    if (this.exited !== undefined) return;
    if (this.running) this.stop(undefined, { signal: SIGINT }, false);
  }

  /** Whether a client is connected. */
  get attached(): boolean {
    return this.conn !== undefined;
  }

  /** The client went away: the guest goes on without a debugger. */
  detach(): void {
    this.conn = undefined;
    this.clearPoints();
    if (!this.running && this.exited === undefined) this.resume(undefined);
  }

  /**
   * Let the guest run on whatever the client wants (the VMM quits): breakpoints dropped,
   * the hook off, the guest resumed; the client stays, to hear how the guest ends.
   */
  release(): void {
    this.clearPoints();
    this.target.setHook(undefined);
    if (!this.running && this.exited === undefined) {
      this.running = true;
      this.target.resume();
    }
  }

  /** The guest ended (exit status, or the signal that killed it): tell the client. */
  guestExited(status: number, signal?: number): void {
    this.exited = signal !== undefined ? `X${hex2(signal)}` : `W${hex2(status & 0xff)}`;
    this.target.setHook(undefined);
    this.send(this.exited);
  }

  /** Bytes from the client. */
  receive(data: Uint8Array): void {
    for (const f of this.reader.push(data)) {
      switch (f.kind) {
        case "interrupt":
          if (this.running && this.exited === undefined) this.stop(undefined, { signal: SIGINT });
          break;
        case "bad-checksum":
          if (!this.noAck) this.conn?.write(latin1("-"));
          this.log("gdb: a packet with a bad checksum (refused)");
          break;
        case "overlong":
          if (!this.noAck) this.conn?.write(latin1("+"));
          this.log(`gdb: a packet longer than ${MAX_PACKET} bytes (refused)`);
          this.send("E01");
          break;
        case "packet": {
          if (!this.noAck) this.conn?.write(latin1("+"));
          const reply = this.handle(f.payload);
          if (reply !== undefined) this.send(reply);
          break;
        }
      }
    }
  }

  // ------------------------------------------------------------------ the hook

  /** HartDebugHook: stop `hart` before this instruction? */
  before(hart: Hart, pcLo: number): boolean {
    if (!this.running) return true;
    if (this.stepping !== undefined && this.stepping !== hart) return true;
    // the common case, no BigInt: no breakpoint has these low 32 bits, no watchpoint
    if (!this.lows.has(pcLo) && this.watches.size === 0 && !this.resumedAt.has(hart)) return false;
    const pc = hart.pc;
    if (this.resumedAt.get(hart) !== pc) {
      const soft = this.soft.has(pc);
      if (soft || this.hard.has(pc)) {
        this.stop(hart, { signal: SIGTRAP, swbreak: soft, hwbreak: !soft });
        return true;
      }
      if (this.watches.size > 0) {
        const hit = this.watchHit(hart);
        if (hit !== undefined) {
          this.stop(hart, { signal: SIGTRAP, watch: hit });
          return true;
        }
      }
    }
    this.resumedAt.delete(hart);
    return false;
  }

  /** HartDebugHook: stop `hart` after this instruction? (a single step is done) */
  after(hart: Hart, e: HartExit): boolean {
    if (this.stepping !== hart || e.kind === "wfi") return false;
    // one instruction retired, or the trap it took entered its handler or its host
    this.stop(hart, { signal: SIGTRAP });
    return true;
  }

  private watchHit(hart: Hart): bigint | undefined {
    const thread = this.threadOf(hart);
    const a = nextDataAccess(hart, this.target.ram, this.faultIn(thread));
    if (a === undefined) return undefined;
    const end = a.addr + BigInt(a.size);
    for (const w of this.watches.values()) {
      if (!((a.read && w.read) || (a.write && w.write))) continue;
      if (a.addr < w.addr + w.len && w.addr < end) return w.addr;
    }
    return undefined;
  }

  // ------------------------------------------------------------------ execution control

  private stop(hart: Hart | undefined, why: StopWhy, notify = true): void {
    this.running = false;
    this.stepping = undefined;
    this.target.pause();
    const threads = this.target.threads();
    const t = (hart !== undefined ? threads.find((x) => x.hart === hart) : undefined) ?? threads[0];
    this.lastStop = { thread: t?.id ?? 0, why };
    if (t !== undefined) this.gThread = t.id;
    if (notify) this.send(this.stopReply());
  }

  private resume(step: GdbThread | undefined): void {
    this.resumedAt.clear();
    for (const t of this.target.threads()) this.resumedAt.set(t.hart, t.hart.pc);
    this.stepping = step?.hart;
    const hooked = step !== undefined || this.soft.size + this.hard.size + this.watches.size > 0;
    this.target.setHook(hooked ? this : undefined);
    this.running = true;
    this.target.resume();
  }

  private clearPoints(): void {
    this.soft.clear();
    this.hard.clear();
    this.lows.clear();
    this.watches.clear();
    this.stepping = undefined;
  }

  private stopReply(): string {
    if (this.exited !== undefined) return this.exited;
    const { thread, why } = this.lastStop;
    let s = `T${hex2(why.signal)}`;
    if (why.watch !== undefined) s += `watch:${why.watch.toString(16)};`;
    if (why.swbreak) s += "swbreak:;";
    if (why.hwbreak) s += "hwbreak:;";
    if (thread > 0) s += `thread:${thread.toString(16)};`;
    return s;
  }

  // ------------------------------------------------------------------ packets

  private send(payload: string): void {
    this.conn?.write(framePacket(payload));
  }

  private threadOf(hart: Hart): GdbThread | undefined {
    return this.target.threads().find((t) => t.hart === hart);
  }

  private faultIn(t: GdbThread | undefined): FaultIn | undefined {
    const f = this.target.faultIn;
    if (f === undefined || t === undefined) return undefined;
    return (va, write) => f.call(this.target, t, va, write);
  }

  /** The thread `id` names (0 or -1: the current one). */
  private thread(id: number): GdbThread | undefined {
    const all = this.target.threads();
    if (id <= 0) return all.find((t) => t.id === this.lastStop.thread) ?? all[0];
    return all.find((t) => t.id === id);
  }

  /** One packet's reply; undefined when the reply comes later (a stop after c or s). */
  private handle(payload: Uint8Array): string | undefined {
    // binary data only follows the colon of an X packet; the rest is ASCII
    const text = fromLatin1(payload);
    if (this.exited !== undefined && !/^(\?|q|k|D|vKill)/.test(text)) return this.exited;
    if (this.running && /^[gGpPmMXcCsSZz]/.test(text)) {
      // gdb does not talk to a running target in all-stop mode except to stop it
      return "E10";
    }
    const c = text[0];
    const arg = text.slice(1);
    switch (c) {
      case "?":
        return this.stopReply();
      case "g":
        return this.readAll();
      case "G":
        return this.writeAll(arg);
      case "p":
        return this.readOne(arg);
      case "P":
        return this.writeOne(arg);
      case "m":
        return this.readMem(arg);
      case "M":
        return this.writeMem(arg, false, payload);
      case "X":
        return this.writeMem(arg, true, payload);
      case "c":
      case "C":
      case "s":
      case "S":
        return this.cont(c, arg);
      case "H":
        return this.selectThread(arg);
      case "T": {
        const id = parseThreadId(arg);
        return id !== undefined && this.thread(id) !== undefined ? "OK" : "E01";
      }
      case "Z":
      case "z":
        return this.point(c === "Z", arg);
      case "k":
        this.kill();
        return undefined;
      case "D":
        this.send("OK");
        this.closeClient();
        return undefined;
      case "q":
      case "Q":
        return this.query(text);
      case "v":
        return this.vPacket(text);
    }
    return "";
  }

  private kill(): void {
    this.clearPoints();
    this.target.setHook(undefined);
    this.target.kill();
    if (!this.running) {
      this.running = true;
      this.target.resume();
    }
    this.conn?.close();
    this.conn = undefined;
  }

  private closeClient(): void {
    const c = this.conn;
    this.detach();
    c?.close();
  }

  private query(text: string): string {
    if (text.startsWith("qSupported")) {
      return `PacketSize=${MAX_PACKET.toString(16)};qXfer:features:read+;QStartNoAckMode+;swbreak+;hwbreak+;vContSupported+`;
    }
    if (text === "QStartNoAckMode") {
      // this packet was acknowledged (receive); from the next one on, no acks
      this.noAck = true;
      return "OK";
    }
    if (text.startsWith("qXfer:features:read:")) return this.features(text.slice(20));
    if (text === "qAttached") return "1";
    if (text === "qC") return `QC${this.thread(0)?.id.toString(16) ?? "0"}`;
    if (text === "qfThreadInfo") {
      const ids = this.target.threads().map((t) => t.id.toString(16));
      return ids.length > 0 ? `m${ids.join(",")}` : "l";
    }
    if (text === "qsThreadInfo") return "l";
    return "";
  }

  private features(rest: string): string {
    const m = /^target\.xml:([0-9a-fA-F]{1,16}),([0-9a-fA-F]{1,16})$/.exec(rest);
    if (!m) return "E00";
    const xml = targetXml(this.set);
    const off = Number(parseHexNumber(m[1]!));
    const len = Math.min(Number(parseHexNumber(m[2]!)), MAX_PACKET - 16);
    if (off > xml.length) return "E00";
    const chunk = xml.slice(off, off + len);
    return (off + len >= xml.length ? "l" : "m") + chunk;
  }

  private vPacket(text: string): string | undefined {
    if (text === "vCont?") return "vCont;c;C;s;S";
    if (text === "vMustReplyEmpty") return "";
    if (text === "vKill" || text.startsWith("vKill;")) {
      this.send("OK");
      this.kill();
      return undefined;
    }
    if (text.startsWith("vCont;")) {
      if (this.running) return "E10";
      let step: GdbThread | undefined;
      for (const action of text.slice(6).split(";")) {
        const m = /^([cCsS])([0-9a-fA-F]{2})?(?::(-1|[0-9a-fA-F]{1,8}))?$/.exec(action);
        if (!m) return "E01";
        if (m[1] === "s" || m[1] === "S") {
          const id = m[3] === undefined || m[3] === "-1" ? 0 : Number.parseInt(m[3], 16);
          step ??= this.thread(id);
          if (step === undefined) return "E01";
        }
      }
      this.resume(step);
      return undefined;
    }
    return "";
  }

  private cont(c: string, arg: string): string | undefined {
    // C sig[;addr] / S sig[;addr]: the signal is not delivered (a machine has none to take)
    let addr = arg;
    if (c === "C" || c === "S") {
      const m = /^[0-9a-fA-F]{2}(?:;(.*))?$/.exec(arg);
      if (!m) return "E01";
      addr = m[1] ?? "";
    }
    const t = this.thread(c === "s" || c === "S" ? this.cThread : 0);
    if (t === undefined) return "E01";
    if (addr !== "") {
      const a = parseHexNumber(addr);
      if (a === undefined) return "E01";
      t.hart.pc = a;
    }
    this.resume(c === "s" || c === "S" ? t : undefined);
    return undefined;
  }

  private selectThread(arg: string): string {
    const op = arg[0];
    const id = parseThreadId(arg.slice(1));
    if ((op !== "g" && op !== "c") || id === undefined) return "E01";
    if (id > 0 && this.thread(id) === undefined) return "E01";
    if (op === "g") this.gThread = id;
    else this.cThread = id;
    return "OK";
  }

  private regThread(): GdbThread | undefined {
    return this.thread(this.gThread);
  }

  private readAll(): string {
    const t = this.regThread();
    if (t === undefined) return "E01";
    let s = "";
    for (let i = 0; i <= PC_REGNUM; i++) s += le64Hex(readRegister(this.set, t.hart, i)!);
    return s;
  }

  private writeAll(arg: string): string {
    const t = this.regThread();
    if (t === undefined || arg.length < 16 * (PC_REGNUM + 1)) return "E01";
    const values: bigint[] = [];
    for (let i = 0; i <= PC_REGNUM; i++) {
      const v = parseLe64Hex(arg.slice(16 * i, 16 * i + 16));
      if (v === undefined) return "E01";
      values.push(v);
    }
    for (const [i, v] of values.entries()) writeRegister(this.set, t.hart, i, v);
    return "OK";
  }

  private readOne(arg: string): string {
    const t = this.regThread();
    const n = parseHexNumber(arg);
    if (t === undefined || n === undefined || n > 0xffffn) return "E01";
    const size = registerSize(this.set, Number(n));
    const v = readRegister(this.set, t.hart, Number(n));
    if (v === undefined || size === 0) return "E01";
    return le64Hex(v).slice(0, 2 * size);
  }

  private writeOne(arg: string): string {
    const t = this.regThread();
    const m = /^([0-9a-fA-F]{1,4})=([0-9a-fA-F]*)$/.exec(arg);
    if (t === undefined || !m) return "E01";
    const n = Number.parseInt(m[1]!, 16);
    const size = registerSize(this.set, n);
    const bytes = fromHex(m[2]!);
    if (size === 0 || bytes === undefined || bytes.length !== size) return "E01";
    const full = new Uint8Array(8);
    full.set(bytes);
    const v = new DataView(full.buffer).getBigUint64(0, true);
    return writeRegister(this.set, t.hart, n, v) ? "OK" : "E01";
  }

  private readMem(arg: string): string {
    const m = /^([0-9a-fA-F]{1,16}),([0-9a-fA-F]{1,16})$/.exec(arg);
    const t = this.regThread();
    if (!m || t === undefined) return "E01";
    const addr = parseHexNumber(m[1]!)!;
    // a huge length is answered with what fits in one packet (gdb asks again for the rest)
    const asked = parseHexNumber(m[2]!)!;
    const len = asked > BigInt(MAX_READ) ? MAX_READ : Number(asked);
    if (len === 0) return "";
    const bytes = readVirtual(t.hart, this.target.ram, addr, len, this.faultIn(t));
    return bytes.length === 0 ? "E14" : toHex(bytes);
  }

  private writeMem(arg: string, binary: boolean, payload: Uint8Array): string {
    const colon = arg.indexOf(":");
    const t = this.regThread();
    if (colon < 0 || t === undefined) return "E01";
    const m = /^([0-9a-fA-F]{1,16}),([0-9a-fA-F]{1,8})$/.exec(arg.slice(0, colon));
    if (!m) return "E01";
    const addr = parseHexNumber(m[1]!)!;
    const len = Number.parseInt(m[2]!, 16);
    // the payload is at most MAX_PACKET bytes, so no length here can make a large buffer
    const data = binary ? payload.subarray(colon + 2) : fromHex(arg.slice(colon + 1));
    if (data === undefined || data.length !== len) return "E01";
    if (len === 0) return "OK";
    return writeVirtual(t.hart, this.target.ram, addr, data, this.faultIn(t)) ? "OK" : "E14";
  }

  private point(insert: boolean, arg: string): string {
    const m = /^([0-4]),([0-9a-fA-F]{1,16}),([0-9a-fA-F]{1,8})$/.exec(arg);
    if (!m) return "E01";
    const type = Number(m[1]);
    const addr = parseHexNumber(m[2]!)!;
    const kind = BigInt(Number.parseInt(m[3]!, 16));
    if (type <= 1) {
      const set = type === 0 ? this.soft : this.hard;
      if (insert) {
        if (set.size >= MAX_POINTS && !set.has(addr)) return "E22";
        set.add(addr);
        this.lows.add(Number(BigInt.asIntN(32, addr)));
      } else if (set.delete(addr)) {
        this.lows.clear();
        for (const a of [...this.soft, ...this.hard]) this.lows.add(Number(BigInt.asIntN(32, a)));
      }
      return "OK";
    }
    if (kind === 0n) return "E01";
    const key = `${type},${addr},${kind}`;
    if (!insert) this.watches.delete(key);
    else if (this.watches.size >= MAX_POINTS && !this.watches.has(key)) return "E22";
    else this.watches.set(key, { addr, len: kind, read: type !== 2, write: type !== 3 });
    return "OK";
  }
}

function hex2(n: number): string {
  return (n & 0xff).toString(16).padStart(2, "0");
}

/** A thread id of H and T packets: -1 (all), 0 (any) or a positive hex number. */
function parseThreadId(s: string): number | undefined {
  if (s === "-1") return -1;
  if (!/^[0-9a-fA-F]{1,8}$/.test(s)) return undefined;
  return Number.parseInt(s, 16);
}
