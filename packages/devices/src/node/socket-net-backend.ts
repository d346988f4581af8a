/// <reference types="node" />
import { connect, createServer, type Server, type Socket } from "node:net";
import type { NetBackend } from "../virtio/net-backend.ts";

/*
 * Ethernet over a TCP stream, framed as QEMU's `-netdev socket` does it: each frame is a
 * 4-byte big-endian length followed by the frame (QEMU net/socket.c, stream mode). Two
 * visor VMs, or a visor VM and a QEMU VM (`-netdev socket,id=n,connect=HOST:PORT`), share
 * a point-to-point LAN this way.
 *
 * listen=[HOST:]PORT waits for a peer and serves one at a time: a second connection while
 * one is up is refused (closed at once); when the peer goes away the next one is accepted.
 * connect=HOST:PORT connects once; if the peer goes away the link stays down.
 * Frames sent while no peer is connected, or while more than `maxBacklog` bytes wait in
 * the socket, are dropped (a network may drop frames; TCP must not buffer without bound).
 */

/** Largest frame accepted from a peer (QEMU's NET_BUFSIZE is 4096 + 65536). */
export const SOCKET_NET_MAX_FRAME = 4096 + 65536;

export type SocketNetEvent =
  | { kind: "listening"; host: string; port: number }
  | { kind: "connected"; peer: string }
  | { kind: "disconnected"; peer: string }
  | { kind: "rejected"; peer: string }
  | { kind: "error"; message: string };

export interface SocketNetOptions {
  /** Told about connections and errors. Default: ignore. */
  onEvent?: (event: SocketNetEvent) => void;
  /** Bytes allowed to wait in the socket before frames are dropped; default 4 MiB. */
  maxBacklog?: number;
}

export interface SocketNetStats {
  framesSent: number;
  framesReceived: number;
  /** Frames dropped on send: no peer, or the socket backlog was full. */
  framesDropped: number;
}

export class SocketNetBackend implements NetBackend {
  readonly stats: SocketNetStats = { framesSent: 0, framesReceived: 0, framesDropped: 0 };
  private readonly onEvent: (event: SocketNetEvent) => void;
  private readonly maxBacklog: number;
  private receiver: (frame: Uint8Array) => void = () => {};
  private peer: Socket | null = null;
  private server: Server | null = null;
  private readonly decoder = new SocketFrameDecoder();

  private constructor(options: SocketNetOptions) {
    this.onEvent = options.onEvent ?? (() => {});
    this.maxBacklog = options.maxBacklog ?? 4 * 1024 * 1024;
  }

  /** Listen on [host:]port (host default "0.0.0.0"); resolves once listening. */
  static listen(port: number, options: SocketNetOptions & { host?: string } = {}): Promise<SocketNetBackend> {
    const bad = portError(port);
    if (bad) return Promise.reject(bad);
    const b = new SocketNetBackend(options);
    const host = options.host ?? "0.0.0.0";
    const server = createServer((sock) => b.accept(sock));
    b.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", (e) => reject(new Error(`cannot listen on ${host}:${port}: ${e.message}`)));
      server.listen(port, host, () => {
        server.removeAllListeners("error");
        server.on("error", (e) => b.onEvent({ kind: "error", message: e.message }));
        const addr = server.address();
        const actual = typeof addr === "object" && addr !== null ? addr.port : port;
        b.onEvent({ kind: "listening", host, port: actual });
        resolve(b);
      });
    });
  }

  /** Connect to host:port; resolves once connected. */
  static connect(host: string, port: number, options: SocketNetOptions = {}): Promise<SocketNetBackend> {
    const bad = portError(port);
    if (bad) return Promise.reject(bad);
    const b = new SocketNetBackend(options);
    return new Promise((resolve, reject) => {
      const sock = connect({ host, port });
      sock.once("error", (e) => reject(new Error(`cannot connect to ${host}:${port}: ${e.message}`)));
      sock.once("connect", () => {
        sock.removeAllListeners("error");
        b.attach(sock);
        resolve(b);
      });
    });
  }

  /** The port the server listens on (listen mode), or null. */
  get listeningPort(): number | null {
    const addr = this.server?.address();
    return typeof addr === "object" && addr !== null ? addr.port : null;
  }

  /** True while a peer is connected. */
  get connected(): boolean {
    return this.peer !== null;
  }

  onReceive(cb: (frame: Uint8Array) => void): void {
    this.receiver = cb;
  }

  send(frame: Uint8Array): void {
    const p = this.peer;
    if (p === null || p.writableLength > this.maxBacklog || frame.length > SOCKET_NET_MAX_FRAME) {
      this.stats.framesDropped++;
      return;
    }
    const out = Buffer.allocUnsafe(4 + frame.length);
    out.writeUInt32BE(frame.length, 0);
    out.set(frame, 4);
    p.write(out);
    this.stats.framesSent++;
  }

  /** Close the peer connection and the server. */
  close(): Promise<void> {
    this.peer?.destroy();
    this.peer = null;
    const server = this.server;
    this.server = null;
    if (server === null) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  private accept(sock: Socket): void {
    if (this.peer !== null) {
      this.onEvent({ kind: "rejected", peer: peerName(sock) });
      sock.destroy();
      return;
    }
    this.attach(sock);
  }

  private attach(sock: Socket): void {
    const name = peerName(sock);
    this.peer = sock;
    this.decoder.reset();
    sock.setNoDelay(true);
    this.onEvent({ kind: "connected", peer: name });
    sock.on("data", (chunk: Buffer) => {
      if (this.peer === sock) this.onData(sock, chunk);
    });
    sock.on("error", (e) => this.onEvent({ kind: "error", message: `${name}: ${e.message}` }));
    sock.on("close", () => {
      if (this.peer === sock) {
        this.peer = null;
        this.decoder.reset();
      }
      this.onEvent({ kind: "disconnected", peer: name });
    });
  }

  private onData(sock: Socket, chunk: Buffer): void {
    const ok = this.decoder.push(chunk, (frame) => {
      this.stats.framesReceived++;
      this.receiver(frame);
    });
    if (!ok) {
      this.onEvent({
        kind: "error",
        message: `${peerName(sock)}: frame length ${this.decoder.badLength} exceeds ${SOCKET_NET_MAX_FRAME}; closing`,
      });
      sock.destroy();
      this.decoder.reset();
    }
  }
}

/**
 * The stream's framing, apart from the socket: bytes in, whole frames out. It holds at
 * most one partial frame (4 + SOCKET_NET_MAX_FRAME bytes); a length larger than that is
 * refused on its 4 bytes alone, before any of the frame is buffered.
 */
export class SocketFrameDecoder {
  private rx: Uint8Array = new Uint8Array(0);
  /** The refused length, after push() returned false. */
  badLength = 0;

  /** Bytes held of a partial frame. */
  get buffered(): number {
    return this.rx.length;
  }

  reset(): void {
    this.rx = new Uint8Array(0);
  }

  /**
   * Take bytes from the peer and hand each whole frame to `onFrame` (empty frames are
   * skipped). Returns false, and keeps nothing, on an oversized length.
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): boolean {
    let buf = this.rx.length === 0 ? chunk : concat(this.rx, chunk);
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let off = 0;
    while (buf.length - off >= FRAME_HEADER) {
      const len = dv.getUint32(off); // big-endian, as QEMU net/socket.c sends it
      if (len > SOCKET_NET_MAX_FRAME) {
        this.badLength = len;
        this.rx = new Uint8Array(0);
        return false;
      }
      if (buf.length - off - FRAME_HEADER < len) break;
      if (len > 0) onFrame(buf.slice(off + FRAME_HEADER, off + FRAME_HEADER + len));
      off += FRAME_HEADER + len;
    }
    if (off > 0) buf = buf.subarray(off);
    // Keep a private copy of a partial frame so the socket's chunk can be reused.
    this.rx = buf.length === 0 ? new Uint8Array(0) : buf.slice();
    return true;
  }
}

/** The 4-byte length before each frame. */
const FRAME_HEADER = 4;

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * A backend from QEMU-style options: "listen=PORT", "listen=HOST:PORT" or
 * "connect=HOST:PORT". Throws (rejects) with a one-line message on bad input.
 */
export function openSocketNetBackend(
  spec: string,
  options: SocketNetOptions = {},
): Promise<SocketNetBackend> {
  const m = /^(listen|connect)=(?:(.*):)?(\d+)$/.exec(spec);
  if (m === null) {
    return Promise.reject(
      new Error(`bad socket netdev "${spec}": expected listen=PORT or connect=HOST:PORT`),
    );
  }
  const port = Number(m[3]);
  const host = m[2];
  if (m[1] === "listen") return SocketNetBackend.listen(port, { ...options, ...(host ? { host } : {}) });
  if (!host) return Promise.reject(new Error(`bad socket netdev "${spec}": connect needs HOST:PORT`));
  return SocketNetBackend.connect(host, port, options);
}

function portError(port: number): Error | null {
  return Number.isInteger(port) && port >= 0 && port <= 65535 ? null : new RangeError(`bad TCP port ${port}`);
}

function peerName(sock: Socket): string {
  return `${sock.remoteAddress ?? "?"}:${sock.remotePort ?? "?"}`;
}
