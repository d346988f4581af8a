/**
 * The control socket as a hostile local peer sees it (over a real Unix socket, with an
 * in-memory VM): bytes that are not HTTP, a head too large, a body too large (declared or
 * chunked), a peer that never finishes its head or body, too many connections — each gets
 * an answer or a closed connection, and the server goes on serving. And the socket file:
 * created 0600, a stale one replaced, anything else at the path left alone, removed at close.
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type ApiSocket, type ApiSocketOptions, openApiSocket } from "../../src/api/server.ts";
import { FakeVm } from "./fake-vm.ts";

const dir = mkdtempSync(join(tmpdir(), "visor-api-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sockPath = () => join(dir, `s${n++}.sock`);

async function open(opts: ApiSocketOptions = {}, vm = new FakeVm()): Promise<ApiSocket> {
  return openApiSocket(sockPath(), vm, opts);
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(path: string, method: string, target: string, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: path, method, path: target, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => {
        text += c;
      });
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Write `bytes` on a raw connection; resolves with all that came back once the server closes it. */
function raw(
  path: string,
  bytes: string | Buffer,
  keepWriting?: (s: net.Socket, answered: () => boolean) => () => void,
): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    let got = "";
    let stop = () => {};
    s.on("connect", () => {
      s.write(bytes);
      if (keepWriting) stop = keepWriting(s, () => got !== "");
    });
    s.on("data", (d) => {
      got += d.toString("latin1");
    });
    s.on("error", () => {});
    s.on("close", () => {
      stop();
      resolve(got);
    });
  });
}

const fault = (r: Reply) => (JSON.parse(r.body) as { fault_message: string }).fault_message;

describe("control socket server", () => {
  it("answers over the socket with JSON and keeps serving after garbage", async () => {
    const api = await open();
    try {
      const ok = await request(api.path, "GET", "/");
      expect(ok.status).toBe(200);
      expect(ok.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(ok.body)).toMatchObject({ state: "Running" });
      for (const junk of [
        Buffer.from([0, 1, 2, 3, 255, 254, 13, 10, 13, 10]),
        "HELLO\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "PUT /vm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      ]) {
        const got = await raw(api.path, junk);
        expect(got, JSON.stringify(junk)).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
        expect(got).toMatch(/\r\n\r\n\{"fault_message":"not an HTTP\/1\.1 request"\}$/);
      }
      // CONNECT (a tunnel request) is closed unanswered: there is nothing to tunnel to.
      expect(await raw(api.path, "CONNECT example.com:443 HTTP/1.1\r\n\r\n")).toBe("");
      expect((await request(api.path, "GET", "/stats")).status).toBe(200);
    } finally {
      await api.close();
    }
  });

  it("refuses a request head over the limit with 431", async () => {
    const api = await open({ maxHeaderBytes: 1024 });
    try {
      const got = await raw(api.path, `GET / HTTP/1.1\r\nX-Junk: ${"a".repeat(4096)}\r\n\r\n`);
      expect(got).toMatch(/^HTTP\/1\.1 431 /);
      expect((await request(api.path, "GET", "/")).status).toBe(200);
    } finally {
      await api.close();
    }
  });

  it("refuses a body over the limit with 413, declared or chunked, without reading it all", async () => {
    const api = await open({ maxBodyBytes: 1024 });
    try {
      const declared = await raw(
        api.path,
        "PUT /snapshot/create HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{",
      );
      expect(declared).toMatch(/^HTTP\/1\.1 413 /);
      expect(declared).toMatch(/"fault_message":"the body is 99999999999 bytes; the most taken is 1024"/);
      // Chunked, with no length: 413 once the limit is passed...
      const chunk = `1000\r\n${"x".repeat(0x1000)}\r\n`;
      const head = "PUT /snapshot/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
      expect(await raw(api.path, head + chunk.repeat(4))).toMatch(/^HTTP\/1\.1 413 /);
      // ... and the connection closed, however much more comes (a peer that writes on
      // into the closed socket gets EPIPE, and may never read the 413).
      let sent = 0;
      const endless = await raw(api.path, head, (s, answered) => {
        const t = setInterval(() => {
          if (s.writable && !answered() && sent < 64 << 20) {
            s.write(chunk);
            sent += 0x1000;
          }
        }, 1);
        return () => clearInterval(t);
      });
      expect(endless).toMatch(/^(HTTP\/1\.1 413 |$)/);
      expect(sent).toBeLessThan(64 << 20);
      const big = await request(
        api.path,
        "PUT",
        "/snapshot/create",
        `{"snapshot_path":"${"a".repeat(2000)}"}`,
      );
      expect(big.status).toBe(413);
      expect((await request(api.path, "GET", "/")).status).toBe(200);
    } finally {
      await api.close();
    }
  });

  it("cuts off a peer that never finishes its head (slowloris), one that never finishes its body, and one that says nothing", async () => {
    const api = await open({ headersTimeoutMs: 300, requestTimeoutMs: 600 });
    try {
      const drip = (s: net.Socket) => {
        const t = setInterval(() => s.writable && s.write("X-A: b\r\n"), 50);
        return () => clearInterval(t);
      };
      const slowHead = raw(api.path, "GET / HTTP/1.1\r\n", drip);
      const slowBody = raw(api.path, "PUT /vm HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{", (s) => {
        const t = setInterval(() => s.writable && s.write(" "), 50);
        return () => clearInterval(t);
      });
      const silent = raw(api.path, "");
      // Each resolves only when the server closes the connection; the test's timeout is the failure.
      expect(await slowHead).toMatch(/^(HTTP\/1\.1 408 |$)/);
      expect(await slowBody).toMatch(/^(HTTP\/1\.1 408 |$)/);
      expect(await silent).toMatch(/^(HTTP\/1\.1 408 |$)/);
      expect((await request(api.path, "GET", "/")).status).toBe(200);
    } finally {
      await api.close();
    }
  }, 60_000);

  it("holds at most maxConnections connections at once; the rest are closed, and it serves again once they go", async () => {
    const api = await open({ maxConnections: 4 });
    try {
      const held: net.Socket[] = [];
      for (let i = 0; i < 4; i++) {
        const s = net.connect(api.path);
        await new Promise((r) => s.once("connect", r));
        held.push(s);
      }
      // Make sure the server has counted them all: one finished request on each.
      for (const s of held) {
        await new Promise<void>((resolve) => {
          s.once("data", () => resolve());
          s.write("GET / HTTP/1.1\r\n\r\n");
        });
      }
      const extra = await raw(api.path, "GET / HTTP/1.1\r\n\r\n");
      expect(extra).toBe("");
      for (const s of held) s.destroy();
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = await request(api.path, "GET", "/").then(
          (r) => r.status,
          () => 0,
        );
        if (status !== 200) await new Promise((r) => setTimeout(r, 20));
      }
      expect(status).toBe(200);
    } finally {
      await api.close();
    }
  });

  it("answers 405 with an Allow header, and 404 and 400 as JSON", async () => {
    const api = await open();
    try {
      const r = await request(api.path, "DELETE", "/vm");
      expect(r.status).toBe(405);
      expect(r.headers.allow).toBe("PATCH");
      expect(fault(r)).toBe("DELETE is not allowed on /vm (allowed: PATCH)");
      expect((await request(api.path, "GET", "/x")).status).toBe(404);
      expect((await request(api.path, "PATCH", "/vm", "{bad")).status).toBe(400);
    } finally {
      await api.close();
    }
  });

  it("creates the socket 0600 and removes it at close", async () => {
    const api = await open();
    const st = lstatSync(api.path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    await api.close();
    expect(existsSync(api.path)).toBe(false);
  });

  it("replaces a stale socket, refuses one in use and leaves any other file alone", async () => {
    // A stale socket: what a visor killed with SIGKILL leaves.
    const stale = sockPath();
    const killed = spawnSync(process.execPath, [
      "-e",
      "require('node:net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))",
      stale,
    ]);
    expect(killed.signal).toBe("SIGKILL");
    expect(lstatSync(stale).isSocket()).toBe(true);
    const api = await openApiSocket(stale, new FakeVm());
    expect((await request(stale, "GET", "/")).status).toBe(200);

    await expect(openApiSocket(stale, new FakeVm())).rejects.toThrow(
      `${stale} is in use: another process listens on it; not replacing it`,
    );
    await api.close();

    const file = join(dir, "precious.txt");
    writeFileSync(file, "keep me");
    await expect(openApiSocket(file, new FakeVm())).rejects.toThrow(
      `${file} exists and is not a socket; not replacing it`,
    );
    expect(lstatSync(file).isFile()).toBe(true);

    await expect(openApiSocket(join(dir, "no-such-dir", "a.sock"), new FakeVm())).rejects.toThrow(
      /no-such-dir\/a\.sock: no such directory \/.*\/no-such-dir$/,
    );
    await expect(openApiSocket(join(dir, "x".repeat(120)), new FakeVm())).rejects.toThrow(
      /a socket path may be at most \d+ bytes long/,
    );
  });

  it("lets the response to a power-off reach the client before it closes", async () => {
    const vm = new FakeVm();
    const api = await open({}, vm);
    const r = await request(api.path, "PUT", "/actions", '{"action_type":"PowerOff"}');
    // What visor run does once the VM has stopped; the answer was already on its way.
    await api.close();
    expect(r.status).toBe(204);
    expect(vm.stopped).toBe(true);
  });
});
