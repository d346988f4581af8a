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
  private rx: Buffer = Buffer.alloc(0);

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
    this.rx = Buffer.alloc(0);
    sock.setNoDelay(true);
    this.onEvent({ kind: "connected", peer: name });
    sock.on("data", (chunk: Buffer) => {
      if (this.peer === sock) this.onData(sock, chunk);
    });
    sock.on("error", (e) => this.onEvent({ kind: "error", message: `${name}: ${e.message}` }));
    sock.on("close", () => {
      if (this.peer === sock) {
        this.peer = null;
        this.rx = Buffer.alloc(0);
      }
      this.onEvent({ kind: "disconnected", peer: name });
    });
  }

  private onData(sock: Socket, chunk: Buffer): void {
    let buf = this.rx.length === 0 ? chunk : Buffer.concat([this.rx, chunk]);
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len > SOCKET_NET_MAX_FRAME) {
        this.onEvent({
          kind: "error",
          message: `${peerName(sock)}: frame length ${len} exceeds ${SOCKET_NET_MAX_FRAME}; closing`,
        });
        sock.destroy();
        this.rx = Buffer.alloc(0);
        return;
      }
      if (buf.length - off - 4 < len) break;
      if (len > 0) {
        const frame = new Uint8Array(buf.subarray(off + 4, off + 4 + len));
        this.stats.framesReceived++;
        this.receiver(frame);
      }
      off += 4 + len;
    }
    if (off > 0) buf = buf.subarray(off);
    // Keep a private copy of a partial frame so the socket's chunk can be reused.
    this.rx = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
  }
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
