/**
 * The control socket's transport: HTTP/1.1 with JSON bodies on a Unix socket, in the
 * style of Firecracker's API socket (docs/vmm-api.md says why this and not QMP). The
 * routes are router.ts's.
 *
 * The socket is local, but whoever connects is still an untrusted peer: request heads
 * and bodies are bounded (431, 413), a peer that sends its head or body too slowly is cut
 * off (headersTimeoutMs, requestTimeoutMs), idle connections are closed, connections are
 * capped, and bytes that are not HTTP get a 400 and a closed connection. Nothing a peer
 * sends can throw out of here.
 *
 * The socket file is created owner-only (0600). A path that already exists is taken over
 * only if it is a stale socket (one nobody listens on: left by a visor that was killed);
 * anything else there is refused. The file is removed when the socket closes.
 *
 * node:http is loaded when a socket is opened, not with this module: importing it costs
 * about 40 ms (its ESM facade loads Node's fetch implementation, undici), which every
 * `visor run` paid, --api-sock or not.
 */
import { chmodSync, existsSync, lstatSync, unlinkSync } from "node:fs";
import type { Server, ServerResponse } from "node:http";
import net from "node:net";
import { dirname } from "node:path";
import type { VmControl } from "./control.ts";
import { type ApiResponse, fault, handle } from "./router.ts";

export interface ApiSocketOptions {
  /** The largest request body taken; larger is 413. Default 64 KiB. */
  maxBodyBytes?: number;
  /** The largest request head (request line and headers); larger is 431. Default 8 KiB. */
  maxHeaderBytes?: number;
  /** A request's head must arrive within this. Default 10 s. */
  headersTimeoutMs?: number;
  /** A whole request (head and body) must arrive within this. Default 30 s. */
  requestTimeoutMs?: number;
  /** An idle kept-alive connection is closed after this. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** Connections open at once; more are closed as they come. Default 16. */
  maxConnections?: number;
}

export interface ApiSocket {
  readonly path: string;
  /** Stop listening, let responses in progress finish, remove the socket file. */
  close(): Promise<void>;
}

export const DEFAULT_MAX_BODY_BYTES = 64 << 10;

/** sun_path holds 108 bytes on Linux (104 on macOS), its NUL included. */
const MAX_SOCKET_PATH_BYTES = process.platform === "linux" ? 107 : 103;

/** Listen on `path` (absolute) for API requests answered over `control`. Rejects with a one-line Error. */
export async function openApiSocket(
  path: string,
  control: VmControl,
  opts: ApiSocketOptions = {},
): Promise<ApiSocket> {
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`${path}: a socket path may be at most ${MAX_SOCKET_PATH_BYTES} bytes long`);
  }
  await clearStaleSocket(path);

  const http = await import("node:http");
  const server = http.createServer({
    maxHeaderSize: opts.maxHeaderBytes ?? 8 << 10,
    headersTimeout: opts.headersTimeoutMs ?? 10_000,
    requestTimeout: opts.requestTimeoutMs ?? 30_000,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000,
    // How often Node looks for requests past their timeouts.
    connectionsCheckingInterval: Math.min(1_000, opts.headersTimeoutMs ?? 1_000),
    // A client on a Unix socket has no host to name.
    requireHostHeader: false,
  });
  server.maxConnections = opts.maxConnections ?? 16;
  // A connection that goes silent between requests, or mid-response, is closed too.
  server.setTimeout(opts.requestTimeoutMs ?? 30_000, (s) => s.destroy());
  let closing = false;

  server.on("request", (req, res) => {
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > maxBody) {
      send(res, fault(413, `the body is ${declared} bytes; the most taken is ${maxBody}`), true);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on("data", (c: Buffer) => {
      if (refused) return;
      size += c.length;
      if (size > maxBody) {
        refused = true;
        send(res, fault(413, `the body is over ${maxBody} bytes, the most taken`), true);
        return;
      }
      chunks.push(c);
    });
    req.on("error", () => req.socket.destroy());
    req.on("end", () => {
      if (refused) return;
      const text = Buffer.concat(chunks).toString("utf8");
      handle(control, req.method ?? "", req.url ?? "", text).then(
        (r) => send(res, r, closing),
        // handle() answers every error itself; this is for a failure to send.
        () => req.socket.destroy(),
      );
    });
  });

  // What Node's parser refuses (not HTTP, a head too large, too slow): one JSON line, then close.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    // (A response already begun, to a request whose body then went bad, cannot be replaced.)
    const begun = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
    if (!socket.writable || begun) {
      socket.destroy();
      return;
    }
    const [status, reason, message] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", "the request head is too large"]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "Request Timeout", "the request did not arrive in time"]
          : [400, "Bad Request", "not an HTTP/1.1 request"];
    const body = JSON.stringify({ fault_message: message });
    // Ended and then destroyed once written, whether or not the peer ever closes its side.
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    socket.once("finish", () => socket.destroy());
  });

  await listenOwnerOnly(server, path);
  const ino = lstatSync(path).ino;

  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        if (closing) {
          resolve();
          return;
        }
        closing = true;
        // Only the file this server made: another visor may have taken the path since.
        try {
          if (lstatSync(path).ino === ino) unlinkSync(path);
        } catch {
          // already gone
        }
        // Idle connections close now; one with a response on its way closes once it is sent.
        const grace = setTimeout(() => server.closeAllConnections(), 2_000);
        grace.unref();
        server.close(() => {
          clearTimeout(grace);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

function send(res: ServerResponse, r: ApiResponse, close: boolean): void {
  if (res.headersSent) return;
  const headers: Record<string, string | number> = { ...r.headers };
  let payload = "";
  if (r.body !== undefined) {
    payload = JSON.stringify(r.body);
    headers["Content-Type"] = "application/json";
  }
  headers["Content-Length"] = Buffer.byteLength(payload);
  if (close) headers.Connection = "close";
  res.writeHead(r.status, headers);
  res.end(payload);
  if (close) res.once("finish", () => res.socket?.end());
}

/** Bind with umask 0177, so the socket file is 0600 from the start (bind is synchronous). */
function listenOwnerOnly(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      reject(new Error(`${path}: cannot listen (${e.code ?? e.message})`));
    };
    server.once("error", onError);
    const old = process.umask(0o177);
    try {
      server.listen(path, () => {
        server.off("error", onError);
        // The umask made it 0600; say so explicitly where the platform honours it.
        try {
          chmodSync(path, 0o600);
        } catch {
          // (a platform without socket file modes)
        }
        resolve();
      });
    } finally {
      process.umask(old);
    }
  });
}

/**
 * Make `path` free to listen on: nothing there, or a socket nobody listens on any more
 * (removed). A socket in use, or a file of any other kind, is refused.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      if (!existsSync(dirname(path))) throw new Error(`${path}: no such directory ${dirname(path)}`);
      return;
    }
    throw new Error(`${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; not replacing it`);
  const refused = await new Promise<string | undefined>((resolve) => {
    const s = net.connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve("is in use: another process listens on it");
    });
    s.once("error", (e: NodeJS.ErrnoException) =>
      resolve(e.code === "ECONNREFUSED" ? undefined : `is a socket that cannot be checked (${e.code})`),
    );
  });
  if (refused !== undefined) throw new Error(`${path} ${refused}; not replacing it`);
  unlinkSync(path);
}
