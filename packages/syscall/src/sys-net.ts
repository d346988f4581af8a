/**
 * Sockets where they make sense without a network: socketpair(AF_UNIX, SOCK_STREAM) as a
 * pair of pipes, with the stream calls (sendto/recvfrom without addresses, shutdown).
 * socket() itself is not provided (there is no socket namespace or network): it is
 * reported as unsupported.
 */
import {
  AF_UNIX,
  O_RDWR,
  S_IFSOCK,
  SHUT_RD,
  SHUT_RDWR,
  SHUT_WR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
} from "./abi.ts";
import { EAFNOSUPPORT, EINVAL, ENOTCONN, ENOTSOCK, EOPNOTSUPP, EPIPE } from "./errno.ts";
import { type FileCtx, OpenFile, Pipe, PipeEnd, synthStat } from "./files.ts";
import type { HostStat } from "./host.ts";
import type { Syscall } from "./kernel.ts";
import { NR } from "./numbers.ts";
import { finishIo, readToUser, writeFromUser } from "./sys-fs.ts";

/** One end of a connected AF_UNIX stream pair. */
export class UnixSocket extends OpenFile {
  readonly rx: PipeEnd;
  readonly tx: PipeEnd;
  readonly ino: number;
  private rxOpen = true;
  private txOpen = true;

  constructor(rx: PipeEnd, tx: PipeEnd, flags: number, ino: number) {
    super(flags, `socket:[${ino}]`);
    this.rx = rx;
    this.tx = tx;
    this.ino = ino;
  }

  override get isStream(): boolean {
    return true;
  }
  override read(ctx: FileCtx, dst: Uint8Array): number {
    if (!this.rxOpen) return 0;
    return this.rx.read(ctx, dst);
  }
  override write(ctx: FileCtx, src: Uint8Array): number {
    if (!this.txOpen) return -EPIPE;
    return this.tx.write(ctx, src);
  }
  override poll(_ctx: FileCtx): number {
    return (this.rxOpen ? this.rx.poll() : 1) | (this.txOpen ? this.tx.poll() : 0x8);
  }
  override available(): number {
    return this.rxOpen ? this.rx.available() : 0;
  }
  override stat(): HostStat {
    return synthStat(S_IFSOCK | 0o777, this.ino);
  }
  shutdown(ctx: FileCtx, how: number): void {
    if ((how === SHUT_RD || how === SHUT_RDWR) && this.rxOpen) {
      this.rxOpen = false;
      this.rx.decRef(ctx);
    }
    if ((how === SHUT_WR || how === SHUT_RDWR) && this.txOpen) {
      this.txOpen = false;
      this.tx.decRef(ctx);
    }
  }
  protected override release(ctx: FileCtx): void {
    this.shutdown(ctx, SHUT_RDWR);
  }
}

const sys_socketpair: Syscall = (k, t) => {
  const family = t.ai(0);
  const type = t.ai(1);
  if (family !== AF_UNIX) return -EAFNOSUPPORT;
  if ((type & 0xf) !== SOCK_STREAM) return -EOPNOTSUPP;
  if ((type & ~(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC)) !== 0) return -EINVAL;
  const a2b = new Pipe(k.nextIno());
  const b2a = new Pipe(k.nextIno());
  const flags = O_RDWR | (type & SOCK_NONBLOCK);
  const a = new UnixSocket(new PipeEnd(b2a, true, 0), new PipeEnd(a2b, false, 1), flags, k.nextIno());
  const b = new UnixSocket(new PipeEnd(a2b, true, 0), new PipeEnd(b2a, false, 1), flags, k.nextIno());
  const cloexec = (type & SOCK_CLOEXEC) !== 0;
  const fa = t.files.alloc(a, cloexec, 0, t.fdLimit);
  let fb: number;
  try {
    fb = t.files.alloc(b, cloexec, 0, t.fdLimit);
  } catch (e) {
    t.files.close(k, fa);
    b.decRef(k);
    throw e;
  }
  const buf = new Uint8Array(8);
  const dv = new DataView(buf.buffer);
  dv.setInt32(0, fa, true);
  dv.setInt32(4, fb, true);
  t.mm.copyOut(t.a(3), buf);
  return 0;
};

const sys_sendto: Syscall = (k, t) => {
  const f = t.files.get(t.ai(0));
  if (!(f instanceof UnixSocket)) return -ENOTSOCK;
  if (t.a(4) !== 0) return -EOPNOTSUPP;
  return finishIo(k, t, f, writeFromUser(k, t, f, t.a(1), t.a(2), -1));
};

const sys_recvfrom: Syscall = (k, t) => {
  const f = t.files.get(t.ai(0));
  if (!(f instanceof UnixSocket)) return -ENOTSOCK;
  if (t.a(4) !== 0) t.mm.writeU32(t.a(5), 0);
  return finishIo(k, t, f, readToUser(k, t, f, t.a(1), t.a(2), -1));
};

const sys_shutdown: Syscall = (k, t) => {
  const f = t.files.get(t.ai(0));
  if (!(f instanceof UnixSocket)) return -ENOTSOCK;
  const how = t.ai(1);
  if (how < 0 || how > 2) return -EINVAL;
  f.shutdown(k, how);
  return 0;
};

const sys_getpeername: Syscall = (_k, t) => {
  const f = t.files.get(t.ai(0));
  if (!(f instanceof UnixSocket)) return -ENOTSOCK;
  return -ENOTCONN;
};

export function registerNet(table: (Syscall | undefined)[]): void {
  table[NR.socketpair!] = sys_socketpair;
  table[NR.sendto!] = sys_sendto;
  table[NR.recvfrom!] = sys_recvfrom;
  table[NR.shutdown!] = sys_shutdown;
  table[NR.getpeername!] = sys_getpeername;
}
