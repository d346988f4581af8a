/**
 * The migration transport on its own: a stream goes through with a pre-shared key and
 * with certificates; a wrong key, or a certificate from another CA, is refused at the
 * handshake and the receiver goes on waiting for the right sender.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Machine, migrate } from "../src/index.ts";
import {
  acceptMigration,
  connectMigration,
  type MigrationSecurity,
  readMigrateKey,
} from "../src/node/index.ts";

const GUEST = join(import.meta.dirname, "../../../guests/riscv64");
const dir = mkdtempSync(join(tmpdir(), "visor-mnet-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;

let stream: Uint8Array;
beforeAll(async () => {
  const m = await Machine.create({
    memory: 16 << 20,
    kernel: new Uint8Array(readFileSync(join(GUEST, "Image.gz"))),
    console: { write() {} },
    virt: "off",
  });
  const parts: Uint8Array[] = [];
  await migrate(m, async (c) => {
    parts.push(c.slice());
  });
  stream = Buffer.concat(parts);
}, 60_000);

/** A receiver on a free port, its log lines, and a send that connects with `sec`. */
async function setup(rxSec: MigrationSecurity) {
  const log: string[] = [];
  let port = 0;
  let listening = () => {};
  const ready = new Promise<void>((r) => {
    listening = r;
  });
  const received = acceptMigration(
    { host: "127.0.0.1", port: 0 },
    {
      security: rxSec,
      timeoutMs: 10_000,
      log: (l) => log.push(l),
      onListening: (p) => {
        port = p;
        listening();
      },
    },
  );
  await ready;
  const send = async (sec: MigrationSecurity, host = "127.0.0.1") => {
    const s = await connectMigration({ host, port }, sec, 10_000);
    s.on("error", () => {}); // a refused sender sees its connection reset
    await new Promise<void>((r) => s.end(stream, r));
  };
  /** Resolves once the receiver has logged a line matching `re`. */
  const logged = (re: RegExp) =>
    new Promise<void>((resolve) => {
      const check = () => (log.some((l) => re.test(l)) ? resolve() : setTimeout(check, 10));
      check();
    });
  return { received, send, log, logged };
}

function key(hex: string): MigrationSecurity {
  const p = join(dir, `${hex}.key`);
  writeFileSync(p, hex.repeat(32));
  return { kind: "psk", key: readMigrateKey(p) };
}

describe("migration transport", () => {
  it("carries a stream with a pre-shared key and refuses a wrong key", async () => {
    const { received, send, log } = await setup(key("ab"));
    await expect(send(key("cd"))).rejects.toThrow();
    // The receiver is still waiting: the right sender gets through.
    await send(key("ab"));
    const rx = await received;
    expect(rx.done).toBe(true);
    expect(log.some((l) => /refused a migration connection \(TLS/.test(l))).toBe(true);
  }, 60_000);

  it("refuses keys that are too short or not hex", () => {
    writeFileSync(join(dir, "short.key"), "abcd");
    expect(() => readMigrateKey(join(dir, "short.key"))).toThrow(/holds 2 bytes; at least 32/);
    writeFileSync(join(dir, "text.key"), "password");
    expect(() => readMigrateKey(join(dir, "text.key"))).toThrow(/does not hold a hex key/);
  });

  it.skipIf(!hasOpenssl)(
    "carries a stream with certificates; a certificate from another CA is refused",
    async () => {
      const sh = (args: string[]) => {
        const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
        if (r.status !== 0) throw new Error(r.stderr);
      };
      const ca = (name: string) =>
        sh([
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-days",
          "1",
          "-subj",
          `/CN=${name}`,
          "-keyout",
          `${name}.key`,
          "-out",
          `${name}.pem`,
        ]);
      const cert = (name: string, caName: string) => {
        sh([
          "req",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-subj",
          `/CN=${name}`,
          "-keyout",
          `${name}.key`,
          "-out",
          `${name}.csr`,
        ]);
        writeFileSync(join(dir, `${name}.ext`), "subjectAltName=IP:127.0.0.1\n");
        sh([
          "x509",
          "-req",
          "-in",
          `${name}.csr`,
          "-CA",
          `${caName}.pem`,
          "-CAkey",
          `${caName}.key`,
          "-CAcreateserial",
          "-days",
          "1",
          "-extfile",
          `${name}.ext`,
          "-out",
          `${name}.pem`,
        ]);
      };
      ca("ca");
      ca("other-ca");
      cert("dst", "ca");
      cert("src", "ca");
      cert("intruder", "other-ca");
      const creds = (name: string): MigrationSecurity => ({
        kind: "cert",
        cert: readFileSync(join(dir, `${name}.pem`)),
        key: readFileSync(join(dir, `${name}.key`)),
        ca: readFileSync(join(dir, "ca.pem")),
      });
      const { received, send, logged } = await setup(creds("dst"));
      // TLS 1.3 checks the client's certificate after the client is done with the
      // handshake: the intruder only learns of its refusal when its connection is reset.
      await send(creds("intruder")).catch(() => {});
      await logged(/refused a migration connection \(TLS/);
      await send(creds("src"));
      expect((await received).done).toBe(true);
    },
    60_000,
  );
});
