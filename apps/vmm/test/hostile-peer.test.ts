/**
 * `visor run --incoming` and `--restore` against hostile peers and files, in child
 * processes: a stream naming a host file as a disk leaves the file untouched; a sender
 * without the key is refused; a stalled sender is given up on; a second connection is
 * refused while one is in progress; a second writer of a disk image is refused.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryBlockBackend } from "@visor/devices";
import { Machine, migrate, sha256 } from "@visor/hypervisor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const MAIN = join(import.meta.dirname, "../src/main.ts");
const GUEST = join(import.meta.dirname, "../../../guests/riscv64");
const dir = mkdtempSync(join(tmpdir(), "visor-peer-"));
const victim = join(dir, "victim.txt");
const VICTIM_TEXT = "a host file the VMM user can write\n";
const key = join(dir, "migrate.key");
writeFileSync(key, `${"c3".repeat(32)}\n`);
const children: ChildProcessWithoutNullStreams[] = [];
const sockets: Socket[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const s of sockets) s.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function vm(args: string[]): ChildProcessWithoutNullStreams {
  const c = spawn(process.execPath, ["--conditions=source", MAIN, "run", ...args]);
  children.push(c);
  return c;
}

/** Everything the child wrote on `stream` until it exited, and its exit code. */
function ended(c: ChildProcessWithoutNullStreams): Promise<{ code: number | null; stderr: string }> {
  let stderr = "";
  c.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => c.on("exit", (code) => resolve({ code, stderr })));
}

function waitFor(
  c: ChildProcessWithoutNullStreams,
  stream: "stdout" | "stderr",
  text: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const on = (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(text)) {
        c[stream].off("data", on);
        resolve(seen);
      }
    };
    c[stream].on("data", on);
    c.on("exit", () => reject(new Error(`exited before '${text}': ${seen.slice(-300)}`)));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const p = (probe.address() as { port: number }).port;
      probe.close(() => resolve(p));
    });
  });
}

function rawClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.on("error", reject);
    sockets.push(s);
  });
}

/** A receiver that is listening on a fresh port. */
async function receiver(args: string[]) {
  const port = await freePort();
  const c = vm(["--incoming", String(port), ...args]);
  const done = ended(c);
  await waitFor(c, "stderr", "waiting for a migration");
  return { c, port, done };
}

/**
 * A valid stream of a machine with one writable disk, whose meta names a host file as
 * that disk (what version 1 streams did, and what an attacker would send).
 */
let evil: Uint8Array;
/** A snapshot of the same kind of machine, its meta naming the host file. */
let snap: Uint8Array;
beforeAll(async () => {
  writeFileSync(victim, VICTIM_TEXT);
  const m = await Machine.create({
    memory: 16 << 20,
    kernel: new Uint8Array(readFileSync(join(GUEST, "Image.gz"))),
    console: { write() {} },
    virt: "off",
    disks: [{ backend: new MemoryBlockBackend(1 << 20) }],
  });
  snap = m.snapshot({ disks: [{ path: victim, readonly: false, transport: "mmio" }] });
  const parts: Uint8Array[] = [];
  await migrate(
    m,
    async (c) => {
      parts.push(c.slice());
    },
    { meta: { disks: [{ path: victim, readonly: false, transport: "mmio" }] } },
  );
  evil = Buffer.concat(parts);
}, 60_000);

describe("visor run --incoming against a hostile sender", () => {
  it("never opens a host file the stream names: no disk of its own, the VM is refused", async () => {
    const before = statSync(victim).mtimeMs;
    const { port, done } = await receiver(["--migrate-insecure"]);
    const s = await rawClient(port);
    s.end(evil);
    const r = await done;
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split("\n").at(-1)).toBe("visor: snapshot: the machine had 1 disk(s), 0 given");
    expect(readFileSync(victim, "utf8")).toBe(VICTIM_TEXT);
    expect(statSync(victim).mtimeMs).toBe(before);
  }, 60_000);

  it("refuses a sender without the key (plain TCP to a TLS receiver) and goes on waiting", async () => {
    const { c, port, done } = await receiver(["--migrate-key", key]);
    const refused = waitFor(c, "stderr", "refused a migration connection");
    const s = await rawClient(port);
    s.write(evil);
    await refused;
    expect(c.exitCode).toBe(null);
    expect(readFileSync(victim, "utf8")).toBe(VICTIM_TEXT);
    c.kill("SIGTERM");
    await done;
  }, 60_000);

  it("gives up on a sender that stalls, in one line with a non-zero status", async () => {
    const { port, done } = await receiver(["--migrate-insecure", "--migrate-timeout", "0.5"]);
    const s = await rawClient(port);
    s.write(evil.subarray(0, 12)); // the header, then nothing
    const r = await done;
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split("\n").at(-1)).toBe(
      "visor: migration: the sender stalled (nothing for 0.5 s)",
    );
  }, 60_000);

  it("refuses a second connection while one is in progress", async () => {
    const { c, port, done } = await receiver(["--migrate-insecure"]);
    const first = await rawClient(port);
    first.write(evil.subarray(0, 12));
    const logged = waitFor(c, "stderr", "refused a second migration connection");
    const second = await rawClient(port);
    await new Promise((r) => second.once("close", r));
    await logged;
    first.end(evil.subarray(12, 40)); // and the first one leaves part-way
    const r = await done;
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split("\n").at(-1)).toBe(
      "visor: migration: the sender left before the VM arrived",
    );
  }, 60_000);
});

describe("visor run --migrate-to against a stalled receiver", () => {
  it("gives up after the time-out and the VM runs on at the source", async () => {
    // A "receiver" that accepts the connection and never reads: the stream backs up.
    const held: Socket[] = [];
    const sink = createServer((s) => {
      held.push(s);
      s.pause();
    });
    const port = await new Promise<number>((resolve) =>
      sink.listen(0, "127.0.0.1", () => resolve((sink.address() as { port: number }).port)),
    );
    const src = vm(["--migrate-to", `127.0.0.1:${port}`, "--migrate-insecure", "--migrate-timeout", "1"]);
    const done = ended(src);
    await waitFor(src, "stdout", "/ # ");
    const failed = waitFor(src, "stderr", "the VM runs on here");
    src.kill("SIGUSR2");
    expect(await failed).toMatch(
      /migration to 127\.0\.0\.1:\d+ failed: the receiver stalled \(nothing for 1 s\)/,
    );
    src.stdin.write("echo still $((6*7))\n");
    await waitFor(src, "stdout", "still 42");
    src.stdin.write("poweroff -f\n");
    expect((await done).code).toBe(0);
    for (const s of held) s.destroy();
    sink.close();
  }, 120_000);
});

/** `file` with its JSON state changed by `edit` and the checksum recomputed. */
function edited(file: Uint8Array, edit: (s: Record<string, unknown>) => void): Uint8Array {
  const n = new DataView(file.buffer, file.byteOffset).getUint32(12, true);
  const state = JSON.parse(new TextDecoder().decode(file.subarray(16, 16 + n)));
  edit(state);
  const json = new TextEncoder().encode(JSON.stringify(state));
  const out = Buffer.concat([file.subarray(0, 16), json, file.subarray(16 + n)]);
  out.writeUInt32LE(json.length, 12);
  out.set(sha256(out.subarray(0, out.length - 32)), out.length - 32);
  return out;
}

describe("visor run --restore with a hostile file", () => {
  it("refuses each in one line with a non-zero status, and opens no host file the file names", () => {
    const cases: [string, Uint8Array, string][] = [
      ["named.snap", snap, "snapshot: the machine had 1 disk(s), 0 given"],
      [
        "disks5.snap",
        edited(snap, (s) => {
          s.meta = { disks: 5 };
        }),
        "snapshot: the machine had 1 disk(s), 0 given",
      ],
      [
        "now.snap",
        edited(snap, (s) => {
          s.now = "abc";
        }),
        "snapshot: now is not an integer from 0 to 9007199254740991",
      ],
      ["flip.snap", snap.map((b, i) => (i === snap.length - 500 ? b ^ 1 : b)), "snapshot: checksum mismatch"],
      ["cut.snap", snap.subarray(0, snap.length - 4096), "snapshot: checksum mismatch"],
    ];
    for (const [name, bytes, message] of cases) {
      const f = join(dir, name);
      writeFileSync(f, bytes);
      const r = spawnSync(process.execPath, ["--conditions=source", MAIN, "run", "--restore", f], {
        encoding: "utf8",
        input: "",
        timeout: 60_000,
      });
      expect(r.stderr.split("\n").filter(Boolean), name).toHaveLength(1);
      expect(r.stderr, name).toContain(`visor: --restore ${f}: ${message}`);
      expect(r.status, name).toBe(1);
    }
    expect(readFileSync(victim, "utf8")).toBe(VICTIM_TEXT);
  }, 120_000);
});

describe("disk images", () => {
  it("refuses a second writer of an image in one line", async () => {
    const img = join(dir, "disk.img");
    writeFileSync(img, new Uint8Array(1 << 20));
    const a = vm(["--disk", img]);
    const aDone = ended(a);
    await waitFor(a, "stdout", "Linux version"); // the first VM has its disk open by now
    const b = vm(["--disk", img]);
    const r = await ended(b);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`visor: ${img} is in use by another process (locked)\n`);
    a.kill("SIGKILL");
    await aDone;
  }, 60_000);
});
