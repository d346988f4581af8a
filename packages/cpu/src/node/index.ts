/// <reference types="node" />
/**
 * @visor/cpu/node: the Node side of the hart's debugger, a TCP listener for gdb
 * (`target remote HOST:PORT`) in front of a `GdbStub`.
 */
import net from "node:net";
import type { GdbStub } from "../gdb/stub.ts";

/** Bytes of replies queued for a client, at most, before it is disconnected. */
export const MAX_BACKLOG = 4 << 20;

export interface GdbServer {
  /** The address it listens on (the port chosen when 0 was asked for). */
  host: string;
  port: number;
  close(): void;
}

/**
 * Listen for gdb on host:port (port 0: any free port) and serve `stub`, one client at a
 * time: a second client is refused while one is attached. Rejects when the address
 * cannot be listened on. The listener keeps the process alive (a paused guest waits on
 * nothing else) until `close`.
 */
export function listenGdb(stub: GdbStub, host: string, port: number): Promise<GdbServer> {
  let client: net.Socket | undefined;
  const server = net.createServer((sock) => {
    if (client !== undefined) {
      sock.destroy();
      return;
    }
    client = sock;
    sock.setNoDelay(true);
    let open = true;
    const done = () => {
      if (!open) return;
      open = false;
      if (client === sock) client = undefined;
      stub.detach();
    };
    stub.attach({
      write: (b) => {
        if (!open) return;
        if (sock.writableLength > MAX_BACKLOG) {
          // a client that asks (16 KiB replies to 20-byte requests) and does not read
          // would grow this buffer without bound: it is cut off instead
          stub.log(
            `gdb: the client does not read its replies (over ${MAX_BACKLOG >> 20} MiB queued); closing it`,
          );
          sock.destroy();
          done();
          return;
        }
        sock.write(b);
      },
      close: () => {
        open = false;
        if (client === sock) client = undefined;
        sock.end();
      },
    });
    sock.on("data", (d) => {
      if (open) stub.receive(d);
    });
    sock.on("error", done);
    sock.on("close", done);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const a = server.address() as net.AddressInfo;
      resolve({
        host,
        port: a.port,
        close: () => {
          // what was written (gdb's last stop reply) still goes out; a client that
          // does not close its side is cut off a second later
          const c = client;
          c?.end();
          setTimeout(() => c?.destroy(), 1000).unref();
          server.close();
        },
      });
    });
  });
}
