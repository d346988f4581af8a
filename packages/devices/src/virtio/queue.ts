import { type Gpa, type GuestMemory, gpa, gpaAdd, gpaFromHiLo } from "@visor/memory";
import { DeviceStateError, stateBool, stateInt, stateNumber, stateObject } from "../state.ts";
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from "./constants.ts";

/*
 * Split virtqueues (virtio 1.1 §2.6). The driver owns three areas of guest memory:
 *
 *   descriptor table  16 bytes per entry: addr u64, len u32, flags u16, next u16
 *   driver area       ("avail"): flags u16, idx u16, ring[size] u16, used_event u16
 *   device area       ("used"):  flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16
 *
 * Everything in them is guest-controlled, so this module trusts none of it. Every access
 * goes through the transport's `GuestMemory` (guest RAM only, guest-physical `Gpa`
 * addresses; the hypervisor's own memory after guest RAM is not in it): ring areas are
 * checked against guest RAM (and for alignment) when the driver marks the queue ready;
 * every descriptor's [addr, addr+len) is checked against guest RAM before a device sees
 * it, and an address of 2^53 or more (which a number cannot hold exactly) is refused; a chain
 * walk carries a ttl equal to the table size (rust-vmm virtio-queue), so a looping chain
 * ends in an error instead of a hang; nested indirect tables, INDIRECT with NEXT, and
 * device-readable buffers after device-writable ones are errors. An error marks the queue
 * broken and reports to the owner (the transport sets DEVICE_NEEDS_RESET); nothing throws.
 *
 * Size limits: pop() takes the device's ChainLimit (the largest request it advertises). A
 * well-formed chain with more bytes than that comes back marked `oversized`, with nothing
 * copied; the device completes it as its spec says for a request it cannot serve (a
 * dropped frame, an IOERR status) and the queue goes on. Copying bytes out of an oversized
 * chain throws (the transport turns that into DEVICE_NEEDS_RESET), so a device that forgets
 * the check fails closed instead of allocating what the guest asked for.
 *
 * VIRTIO_F_INDIRECT_DESC and VIRTIO_F_EVENT_IDX are supported: with EVENT_IDX the device
 * writes avail_event after each pop (asking to be notified for the very next buffer) and
 * interrupts only when used_event says the driver wants it (§2.6.7.2, §2.6.10.2).
 */

/** A guest-physical byte range already checked to lie inside guest RAM. */
export interface Segment {
  readonly addr: Gpa;
  readonly len: number;
}

/** QEMU also refuses indirect tables longer than this (VIRTQUEUE_MAX_SIZE). */
export const MAX_INDIRECT_ENTRIES = 1024;
/** Queue sizes are powers of two up to 32768 (§2.6). */
export const MAX_QUEUE_SIZE = 32768;

/**
 * A chain's total length must fit the used ring's 32-bit len (virtio 1.2 §2.7.5.1:
 * drivers must not add a descriptor chain longer than 2^32 bytes in total).
 */
export const MAX_CHAIN_BYTES = 0xffff_ffff;

/**
 * The most a device takes in one chain, in bytes: what it advertises (a frame size, a
 * block request size) or what it may copy. pop() marks longer chains `oversized`.
 */
export interface ChainLimit {
  /** Device-readable bytes (what the device may copy out of guest memory). */
  readonly readable: number;
  /** Device-writable bytes (what the device may be asked to fill). */
  readonly writable: number;
}

/** Thrown when a device copies bytes out of a chain that pop() marked oversized. */
export class ChainLimitError extends Error {
  override name = "ChainLimitError";
}

/** Who a queue reports guest errors to (the transport). */
export interface QueueOwner {
  queueError(queue: number, reason: string): void;
}

/**
 * One descriptor chain popped from the avail ring: its head index and the device-readable
 * then device-writable buffers, each checked to lie inside RAM.
 */
export class DescChain {
  readonly head: number;
  readonly readable: Segment[] = [];
  readonly writable: Segment[] = [];
  readableLen = 0;
  writableLen = 0;
  /**
   * More bytes than the device's ChainLimit: the device must complete it without using
   * its contents (reading from it throws ChainLimitError).
   */
  oversized = false;
  private readonly ram: GuestMemory;

  constructor(ram: GuestMemory, head: number) {
    this.ram = ram;
    this.head = head;
  }

  /**
   * Copy up to dst.length bytes of the readable buffers, starting `offset` bytes into
   * them, into dst. Returns the number of bytes copied.
   */
  read(offset: number, dst: Uint8Array): number {
    if (this.oversized) {
      throw new ChainLimitError(
        `chain ${this.head} (${this.readableLen} + ${this.writableLen} bytes) is over the device's limit`,
      );
    }
    let done = 0;
    for (const s of this.readable) {
      if (done === dst.length) break;
      if (offset >= s.len) {
        offset -= s.len;
        continue;
      }
      const n = Math.min(s.len - offset, dst.length - done);
      dst.set(this.ram.view(gpaAdd(s.addr, offset), n), done);
      done += n;
      offset = 0;
    }
    return done;
  }

  /** All readable bytes from `offset` on, copied out. */
  readAll(offset = 0): Uint8Array {
    if (this.oversized) this.read(0, new Uint8Array(0));
    const out = new Uint8Array(Math.max(0, this.readableLen - offset));
    this.read(offset, out);
    return out;
  }

  /**
   * Copy src into the writable buffers starting `offset` bytes into them. Returns the
   * number of bytes written (less than src.length when the buffers are too small).
   */
  write(offset: number, src: Uint8Array): number {
    let done = 0;
    for (const s of this.writable) {
      if (done === src.length) break;
      if (offset >= s.len) {
        offset -= s.len;
        continue;
      }
      const n = Math.min(s.len - offset, src.length - done);
      this.ram.viewMut(gpaAdd(s.addr, offset), n).set(src.subarray(done, done + n));
      done += n;
      offset = 0;
    }
    return done;
  }
}

/** A 64-bit value given as u32 halves, in hex (for error messages). */
function hex64(hi: number, lo: number): string {
  return `0x${((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16)}`;
}

export interface VirtqueueState {
  size: number;
  ready: boolean;
  desc: number;
  driver: number;
  device: number;
  lastAvail: number;
  usedIdx: number;
  signalledUsed: number;
  broken: boolean;
}

export class Virtqueue {
  readonly index: number;
  readonly maxSize: number;
  /** Queue size chosen by the driver (QueueNum); starts at maxSize. */
  size: number;
  ready = false;
  /** Guest-physical addresses of the three areas (QueueDesc/QueueDriver/QueueDevice). */
  desc: Gpa = gpa(0);
  driver: Gpa = gpa(0);
  device: Gpa = gpa(0);
  /** Ring features in effect; set by the transport from the negotiated features. */
  eventIdx = false;
  indirect = false;
  /** Next avail ring slot the device will read (free-running u16). */
  lastAvail = 0;
  /** Next used ring slot the device will write (free-running u16). */
  usedIdx = 0;
  /** usedIdx at the last interrupt decision. */
  signalledUsed = 0;
  /** Set after a guest error; nothing is popped until the queue is reset. */
  broken = false;
  private readonly ram: GuestMemory;
  private readonly owner: QueueOwner;

  constructor(ram: GuestMemory, owner: QueueOwner, index: number, maxSize: number) {
    if (
      !Number.isInteger(maxSize) ||
      maxSize < 1 ||
      maxSize > MAX_QUEUE_SIZE ||
      (maxSize & (maxSize - 1)) !== 0
    ) {
      throw new RangeError(`virtqueue max size ${maxSize} must be a power of two in [1, ${MAX_QUEUE_SIZE}]`);
    }
    this.ram = ram;
    this.owner = owner;
    this.index = index;
    this.maxSize = maxSize;
    this.size = maxSize;
  }

  /** Why the configured queue cannot be used, or null if it can (checked at QueueReady). */
  validate(): string | null {
    const n = this.size;
    if (!Number.isInteger(n) || n < 1 || n > this.maxSize || (n & (n - 1)) !== 0) {
      return `queue ${this.index}: size ${n} is not a power of two in [1, ${this.maxSize}]`;
    }
    if (this.desc % 16 !== 0 || !this.ram.contains(this.desc, 16 * n)) {
      return `queue ${this.index}: descriptor table 0x${this.desc.toString(16)} (+${16 * n}) is misaligned or outside RAM`;
    }
    if (this.driver % 2 !== 0 || !this.ram.contains(this.driver, 6 + 2 * n)) {
      return `queue ${this.index}: driver area 0x${this.driver.toString(16)} is misaligned or outside RAM`;
    }
    if (this.device % 4 !== 0 || !this.ram.contains(this.device, 6 + 8 * n)) {
      return `queue ${this.index}: device area 0x${this.device.toString(16)} is misaligned or outside RAM`;
    }
    return null;
  }

  /** True when the driver has made buffers available that the device has not popped. */
  hasAvailable(): boolean {
    if (!this.ready || this.broken) return false;
    return this.ram.read16(gpaAdd(this.driver, 2)) !== this.lastAvail;
  }

  /**
   * Take the next available chain, or null (nothing available, or a guest error). A chain
   * with more bytes than `limit` comes back with `oversized` set and nothing read from it.
   */
  pop(limit: ChainLimit): DescChain | null {
    if (!this.ready || this.broken) return null;
    const ram = this.ram;
    const size = this.size;
    const availIdx = ram.read16(gpaAdd(this.driver, 2));
    if (availIdx === this.lastAvail) return null;
    if (((availIdx - this.lastAvail) & 0xffff) > size) {
      return this.fail(`avail idx ${availIdx} is more than ${size} ahead of ${this.lastAvail}`);
    }
    const head = ram.read16(gpaAdd(this.driver, 4 + 2 * (this.lastAvail & (size - 1))));
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (this.eventIdx) ram.write16(gpaAdd(this.device, 4 + 8 * size), this.lastAvail);
    if (head >= size) return this.fail(`chain head ${head} is outside the descriptor table (size ${size})`);

    const chain = new DescChain(ram, head);
    let table = this.desc;
    let tableSize = size;
    let i = head;
    let ttl = size;
    let inIndirect = false;
    for (;;) {
      if (ttl === 0)
        return this.fail(`descriptor chain from head ${head} is longer than its table (a loop?)`);
      ttl--;
      const d = gpaAdd(table, 16 * i);
      const addrLo = ram.read32(d);
      const addrHi = ram.read32(gpaAdd(d, 4));
      const len = ram.read32(gpaAdd(d, 8));
      const flags = ram.read16(gpaAdd(d, 12));
      const next = ram.read16(gpaAdd(d, 14));
      const addr = gpaFromHiLo(addrHi, addrLo);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (!this.indirect)
          return this.fail("INDIRECT descriptor but VIRTIO_F_INDIRECT_DESC was not negotiated");
        if (inIndirect) return this.fail("INDIRECT descriptor inside an indirect table");
        if (flags & VIRTQ_DESC_F_NEXT) return this.fail("descriptor has both INDIRECT and NEXT");
        if (len === 0 || len % 16 !== 0 || len / 16 > MAX_INDIRECT_ENTRIES) {
          return this.fail(
            `indirect table length ${len} is not a multiple of 16 in [16, ${16 * MAX_INDIRECT_ENTRIES}]`,
          );
        }
        if (addr === undefined || !ram.contains(addr, len))
          return this.fail(`indirect table ${hex64(addrHi, addrLo)} (+${len}) is outside RAM`);
        table = addr;
        tableSize = len / 16;
        ttl = tableSize;
        i = 0;
        inIndirect = true;
        continue;
      }
      if (len !== 0) {
        if (addr === undefined || !ram.contains(addr, len))
          return this.fail(`buffer ${hex64(addrHi, addrLo)} (+${len}) is outside RAM`);
        if (flags & VIRTQ_DESC_F_WRITE) {
          chain.writable.push({ addr, len });
          chain.writableLen += len;
        } else {
          if (chain.writable.length > 0)
            return this.fail("device-readable buffer after a device-writable one");
          chain.readable.push({ addr, len });
          chain.readableLen += len;
        }
        if (chain.readableLen + chain.writableLen > MAX_CHAIN_BYTES)
          return this.fail("chain longer than 4 GiB");
      }
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      if (next >= tableSize) return this.fail(`next index ${next} is outside the table (size ${tableSize})`);
      i = next;
    }
    chain.oversized = chain.readableLen > limit.readable || chain.writableLen > limit.writable;
    return chain;
  }

  /** Give back the chain just popped (a device that cannot use it yet, e.g. frame too big). */
  undoPop(): void {
    this.lastAvail = (this.lastAvail - 1) & 0xffff;
    if (this.eventIdx && this.ready) this.ram.write16(gpaAdd(this.device, 4 + 8 * this.size), this.lastAvail);
  }

  /** Return a chain to the driver: `written` is the number of bytes the device wrote into it. */
  pushUsed(head: number, written: number): void {
    if (!this.ready || this.broken) return;
    const slot = gpaAdd(this.device, 4 + 8 * (this.usedIdx & (this.size - 1)));
    this.ram.write32(slot, head);
    this.ram.write32(gpaAdd(slot, 4), written);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.ram.write16(gpaAdd(this.device, 2), this.usedIdx);
  }

  /**
   * Whether the driver wants an interrupt for the buffers used since the last call
   * (§2.6.7: avail.flags NO_INTERRUPT, or with EVENT_IDX the used_event index).
   */
  needsInterrupt(): boolean {
    if (!this.ready || this.broken) return false;
    const old = this.signalledUsed;
    const now = this.usedIdx;
    this.signalledUsed = now;
    if (now === old) return false;
    if (this.eventIdx) {
      const usedEvent = this.ram.read16(gpaAdd(this.driver, 4 + 2 * this.size));
      return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (this.ram.read16(this.driver) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** Make the queue as after device reset: not ready, default size, addresses zero. */
  reset(): void {
    this.size = this.maxSize;
    this.ready = false;
    this.desc = gpa(0);
    this.driver = gpa(0);
    this.device = gpa(0);
    this.eventIdx = false;
    this.indirect = false;
    this.lastAvail = 0;
    this.usedIdx = 0;
    this.signalledUsed = 0;
    this.broken = false;
  }

  /** Mark the queue usable (after validate()), with indices starting from zero. */
  enable(eventIdx: boolean, indirect: boolean): void {
    this.ready = true;
    this.eventIdx = eventIdx;
    this.indirect = indirect;
    this.lastAvail = 0;
    this.usedIdx = 0;
    this.signalledUsed = 0;
    this.broken = false;
  }

  toState(): VirtqueueState {
    return {
      size: this.size,
      ready: this.ready,
      desc: this.desc,
      driver: this.driver,
      device: this.device,
      lastAvail: this.lastAvail,
      usedIdx: this.usedIdx,
      signalledUsed: this.signalledUsed,
      broken: this.broken,
    };
  }

  /** Restore; ring features come from the transport's negotiated features. */
  fromState(state: unknown, eventIdx: boolean, indirect: boolean): void {
    const d = `virtqueue ${this.index}`;
    const s = stateObject(state, d);
    const size = stateInt(s, "size", d, this.maxSize);
    const ready = stateBool(s, "ready", d);
    const addr = (f: string): Gpa => {
      const v = stateNumber(s, f, d);
      if (!Number.isSafeInteger(v) || v < 0)
        throw new DeviceStateError(`invalid ${d} state: ${f} must be an address`);
      return gpa(v);
    };
    const desc = addr("desc");
    const driver = addr("driver");
    const device = addr("device");
    const lastAvail = stateInt(s, "lastAvail", d, 0xffff);
    const usedIdx = stateInt(s, "usedIdx", d, 0xffff);
    const signalledUsed = stateInt(s, "signalledUsed", d, 0xffff);
    const broken = stateBool(s, "broken", d);
    this.size = size;
    this.desc = desc;
    this.driver = driver;
    this.device = device;
    if (ready) {
      const why = this.validate();
      if (why !== null) throw new DeviceStateError(`invalid ${d} state: ${why}`);
    }
    this.ready = ready;
    this.eventIdx = eventIdx;
    this.indirect = indirect;
    this.lastAvail = lastAvail;
    this.usedIdx = usedIdx;
    this.signalledUsed = signalledUsed;
    this.broken = broken;
  }

  private fail(reason: string): null {
    this.broken = true;
    this.owner.queueError(this.index, reason);
    return null;
  }
}
