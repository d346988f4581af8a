/// <reference types="node" />
/**
 * The network side of live migration (used by `visor run`): TLS 1.3 by default, authenticated
 * either by a pre-shared key (--migrate-key FILE, the same file on both sides) or by
 * certificates (--tls-cert/--tls-key/--tls-ca, both sides checking the other against the
 * CA, as QEMU's tls-creds-x509 does); plain TCP only with --migrate-insecure.
 *
 * The receiver serves one sender at a time: a connection that arrives while another is
 * in progress is closed at once. A connection that fails the TLS handshake (no key, the
 * wrong key, an untrusted certificate) is refused and the receiver goes on waiting; once
 * a sender is authenticated, anything wrong with its stream ends the migration with a
 * one-line error. Either side gives up when the other sends nothing (or takes nothing)
 * for the time-out; the sending VM then runs on.
 *
 * node:tls is loaded when a migration over TLS starts, not with this module: loading it
 * costs about 20 ms, which every `visor run` paid before its guest started.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import type { TLSSocket } from "node:tls";
import { MigrationReceiver, type ReceiverOptions } from "../migration.ts";

/** The TLS PSK identity both sides use (TLS 1.3 binds the key to it). */
const PSK_IDENTITY = "visor-migration";
/** A pre-shared key shorter than this many bytes is refused: 256 bits, as for an AES-256 key. */
export const MIN_PSK_BYTES = 32;
/** The default time-out: a peer silent this long is given up on. */
export const DEFAULT_MIGRATE_TIMEOUT_MS = 30_000;

export type MigrationSecurity =
  | { kind: "psk"; key: Buffer }
  | { kind: "cert"; cert: Buffer; key: Buffer; ca: Buffer }
  | { kind: "insecure" };

export interface Endpoint {
  host: string;
  port: number;
}

/** Read a key file made with `openssl rand -hex 32 > migrate.key`: hex, at least 32 bytes. */
export function readMigrateKey(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (e) {
    throw new Error(`--migrate-key: cannot read '${path}': ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  if (!/^([0-9a-fA-F]{2})+$/.test(text)) {
    throw new Error(`--migrate-key: '${path}' does not hold a hex key (make one: openssl rand -hex 32)`);
  }
  const key = Buffer.from(text, "hex");
  if (key.length < MIN_PSK_BYTES) {
    throw new Error(
      `--migrate-key: '${path}' holds ${key.length} bytes; at least ${MIN_PSK_BYTES} are needed`,
    );
  }
  return key;
}

const TLS_BASE = { minVersion: "TLSv1.3" as const };

function serverOptions(sec: Exclude<MigrationSecurity, { kind: "insecure" }>, timeoutMs: number) {
  if (sec.kind === "psk") {
    return {
      ...TLS_BASE,
      handshakeTimeout: timeoutMs,
      pskCallback: (_s: TLSSocket, identity: string) => (identity === PSK_IDENTITY ? sec.key : null),
    };
  }
  return {
    ...TLS_BASE,
    handshakeTimeout: timeoutMs,
    cert: sec.cert,
    key: sec.key,
    ca: sec.ca,
    requestCert: true,
    rejectUnauthorized: true,
  };
}

export interface AcceptOptions {
  security: MigrationSecurity;
  timeoutMs: number;
  receiver?: ReceiverOptions;
  /** Told once listening, and about each refused connection. */
  log?: (line: string) => void;
  /** Told the port once listening (useful with port 0). */
  onListening?: (port: number) => void;
}

/**
 * Listen on `addr` for one migration and take it in whole. Rejects with a one-line Error
 * on a malformed stream, a sender that stalls, or a listening failure.
 */
export async function acceptMigration(addr: Endpoint, opts: AcceptOptions): Promise<MigrationReceiver> {
  const log = opts.log ?? (() => {});
  const sec = opts.security;
  const tls = sec.kind === "insecure" ? undefined : await import("node:tls");
  return new Promise<MigrationReceiver>((resolve, reject) => {
    let busy = false;
    let settled = false;
    const finish = (e: Error | undefined, rx?: MigrationReceiver) => {
      if (settled) return;
      settled = true;
      server.close();
      if (e !== undefined) reject(e);
      else resolve(rx!);
    };
    const serve = (sock: net.Socket) => {
      const rx = new MigrationReceiver(opts.receiver);
      sock.setTimeout(opts.timeoutMs);
      sock.on("timeout", () => {
        sock.destroy();
        finish(new Error(`migration: the sender stalled (nothing for ${opts.timeoutMs / 1000} s)`));
      });
      sock.on("data", (d: Buffer) => {
        if (settled) return;
        try {
          rx.push(d);
        } catch (e) {
          sock.destroy();
          finish(e as Error);
        }
      });
      sock.on("end", () =>
        rx.done
          ? finish(undefined, rx)
          : finish(new Error("migration: the sender left before the VM arrived")),
      );
      sock.on("error", (e) => finish(new Error(`migration: ${e.message}`)));
      sock.on("close", () => finish(new Error("migration: the sender left before the VM arrived")));
    };
    const server: net.Server =
      sec.kind === "insecure"
        ? net.createServer((sock) => serve(sock))
        : tls!.createServer(serverOptions(sec, opts.timeoutMs), (sock) => serve(sock));
    // One sender at a time: refuse a connection while another is in progress (its TLS
    // handshake included), before any of its bytes are read.
    server.on("connection", (sock: net.Socket) => {
      if (busy || settled) {
        log(`refused a second migration connection from ${sock.remoteAddress}:${sock.remotePort}`);
        sock.destroy();
        return;
      }
      busy = true;
      sock.on("close", () => {
        busy = false;
      });
    });
    server.on("tlsClientError", (e: Error, sock: TLSSocket) => {
      sock.destroy();
      log(`refused a migration connection (TLS: ${oneLine(e.message)})`);
    });
    server.on("error", (e: NodeJS.ErrnoException) =>
      finish(
        new Error(
          `--incoming ${addr.host}:${addr.port}: ${e.code === "EADDRINUSE" ? "address in use" : e.message}`,
        ),
      ),
    );
    server.listen(addr.port, addr.host, () => {
      const a = server.address();
      const port = typeof a === "object" && a !== null ? a.port : addr.port;
      log(`waiting for a migration on ${addr.host}:${port}`);
      opts.onListening?.(port);
    });
  });
}

/** Connect to a receiver; resolves with a socket ready for the stream (TLS established). */
export async function connectMigration(
  addr: Endpoint,
  sec: MigrationSecurity,
  timeoutMs: number,
): Promise<net.Socket> {
  const tls = sec.kind === "insecure" ? undefined : await import("node:tls");
  return new Promise((resolve, reject) => {
    let sock: net.Socket;
    const ready = () => {
      sock.off("error", onError);
      resolve(sock);
    };
    const onError = (e: Error) => {
      sock.destroy();
      reject(new Error(oneLine(e.message)));
    };
    if (sec.kind === "insecure") {
      sock = net.connect(addr, ready);
    } else if (sec.kind === "psk") {
      sock = tls!.connect(
        {
          ...TLS_BASE,
          ...addr,
          pskCallback: () => ({ psk: sec.key, identity: PSK_IDENTITY }),
          // No certificate with a PSK: the key itself authenticates the receiver.
          checkServerIdentity: () => undefined,
        },
        ready,
      );
    } else {
      sock = tls!.connect({ ...TLS_BASE, ...addr, cert: sec.cert, key: sec.key, ca: sec.ca }, ready);
    }
    sock.once("error", onError);
    sock.setTimeout(timeoutMs);
    sock.on("timeout", () =>
      sock.destroy(new Error(`the receiver stalled (nothing for ${timeoutMs / 1000} s)`)),
    );
  });
}

function oneLine(s: string): string {
  return s.split("\n")[0]!.trim();
}
