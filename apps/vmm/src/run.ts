/**
 * `visor run`: boot a VM on the virt machine.
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import type { BlockBackend, NetBackend } from "@visor/devices";
import { FileBlockBackend, openSocketNetBackend } from "@visor/devices/node";
import {
  decodeSnapshot,
  GuestError,
  Machine,
  type MachineExit,
  MigrationReceiver,
  migrate,
  parseElf,
  type VirtMode,
  warmUp,
} from "@visor/hypervisor";
import { parseMemory, parseOptions } from "./args.ts";
import { HostConsole } from "./console.ts";
import { UserError } from "./errors.ts";
import { printStats } from "./stats.ts";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(here, "../../..");
export const BUNDLED_KERNEL = join(REPO_ROOT, "guests/riscv64/Image.gz");
export const BUNDLED_INITRD = join(REPO_ROOT, "guests/riscv64/initramfs.cpio.gz");

export const RUN_HELP = `usage: visor run [options]

  --kernel PATH        Linux Image or Image.gz (default: the bundled guest)
  --initrd PATH        initramfs (default: the bundled one, with the default kernel)
  --append STRING      kernel command line (default "console=ttyS0")
  --memory SIZE        guest RAM, 16M to 16G (default 256M)
  --bios PATH|none     firmware ELF (e.g. OpenSBI fw_jump.elf, or a bare-metal program
                       with HTIF tohost); none = the built-in SBI (default)
  --disk PATH[,readonly][,transport=mmio|pci]   virtio-blk disk backed by a file (repeatable);
                       transport=pci puts it on the PCI bus, driven through port I/O
  --net socket,listen=PORT | socket,connect=HOST:PORT   virtio-net on a socket LAN
  --virt nested|shadow|off how the guest kernel is virtualized (default nested)
  --clock host|deterministic  time source (deterministic: time follows instructions)
  --harts N            number of harts (default 1)
  --stats              print exit statistics when the VM stops
  --snapshot PATH      where Ctrl-A W (or SIGUSR1) saves a snapshot of the running VM
  --restore PATH       continue a VM from a snapshot instead of booting one (its disks
                       are reopened from the paths it recorded; give --net again if it had one)
  --migrate-to HOST:PORT  where Ctrl-A M (or SIGUSR2) live-migrates the running VM
  --incoming [HOST:]PORT  wait for a VM migrated to this port (default host 127.0.0.1)
                       and continue it (its disks are reopened by path: shared storage)

The console is this terminal. Ctrl-A X quits, Ctrl-A H lists the keys.`;

const SPEC = {
  kernel: { value: true },
  initrd: { value: true },
  append: { value: true },
  memory: { value: true },
  bios: { value: true },
  disk: { value: true, repeat: true },
  net: { value: true, repeat: true },
  virt: { value: true },
  clock: { value: true },
  harts: { value: true },
  stats: {},
  snapshot: { value: true },
  restore: { value: true },
  "migrate-to": { value: true },
  incoming: { value: true },
  help: {},
};

/** What visor run stores in a snapshot besides the machine: how to reopen its disks. */
interface RunMeta {
  disks: { path: string; readonly: boolean; transport: "mmio" | "pci" }[];
}

/** Options that describe a new machine, which --restore takes from the snapshot instead. */
const MACHINE_OPTIONS = ["kernel", "initrd", "append", "memory", "bios", "disk", "virt", "clock", "harts"];

function readInput(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "is a directory"
          : code === "EACCES"
            ? "permission denied"
            : String((e as Error).message);
    throw new UserError(`cannot read ${what} '${path}': ${why}`);
  }
}

export async function runMain(argv: string[]): Promise<number> {
  const { opts, rest } = parseOptions(argv, SPEC);
  if (opts.has("help")) {
    process.stdout.write(`${RUN_HELP}\n`);
    return 0;
  }
  if (rest.length > 0) throw new UserError(`unexpected argument '${rest[0]}' (see 'visor run --help')`);
  const one = (k: string): string | undefined => opts.get(k)?.[0];

  const restorePath = one("restore");
  const incoming = one("incoming");
  if (restorePath !== undefined && incoming !== undefined) {
    throw new UserError("--restore and --incoming cannot be combined");
  }
  for (const [flag, given] of [
    ["--restore", restorePath],
    ["--incoming", incoming],
  ] as const) {
    if (given === undefined) continue;
    const clash = MACHINE_OPTIONS.find((k) => opts.has(k));
    if (clash) throw new UserError(`--${clash} cannot be combined with ${flag} (the VM brings its machine)`);
  }
  const memory = parseMemory(one("memory") ?? "256M");
  const migrateTo = one("migrate-to");
  const migrateAddr = migrateTo !== undefined ? hostPort(migrateTo, "--migrate-to", false) : undefined;
  const incomingAddr = incoming !== undefined ? hostPort(incoming, "--incoming", true) : undefined;
  const bios = one("bios");
  const biosBytes = bios !== undefined && bios !== "none" ? readInput(bios, "firmware") : undefined;
  const kernelPath =
    one("kernel") ??
    (restorePath !== undefined ||
    incoming !== undefined ||
    (biosBytes !== undefined && one("initrd") === undefined && isHtifProgram(biosBytes))
      ? undefined
      : BUNDLED_KERNEL);
  const initrdPath =
    one("initrd") ?? (one("kernel") === undefined && kernelPath !== undefined ? BUNDLED_INITRD : undefined);
  const kernel = kernelPath !== undefined ? inflated(readInput(kernelPath, "kernel")) : undefined;
  const initrd = initrdPath !== undefined ? inflated(readInput(initrdPath, "initrd")) : undefined;
  const virt = (one("virt") ?? "nested") as VirtMode;
  if (!["off", "nested", "shadow"].includes(virt))
    throw new UserError(`--virt: '${virt}' is not one of nested, shadow, off`);
  const clock = one("clock") ?? "host";
  if (clock !== "host" && clock !== "deterministic")
    throw new UserError(`--clock: '${clock}' is not host or deterministic`);
  const harts = Number(one("harts") ?? "1");
  if (!Number.isInteger(harts) || harts < 1 || harts > 8)
    throw new UserError(`--harts: '${one("harts")}' is not a number from 1 to 8`);

  const snapshotBytes = restorePath !== undefined ? readInput(restorePath, "snapshot") : undefined;
  let diskSpecs: RunMeta["disks"] = [];
  const received = incomingAddr !== undefined ? await receiveMigration(incomingAddr) : undefined;
  if (received !== undefined) diskSpecs = (received.meta as RunMeta | undefined)?.disks ?? [];
  if (snapshotBytes !== undefined) {
    try {
      diskSpecs = (decodeSnapshot(snapshotBytes).state.meta as RunMeta | undefined)?.disks ?? [];
    } catch (e) {
      throw new UserError(`--restore ${restorePath}: ${(e as Error).message}`);
    }
  }
  for (const d of opts.get("disk") ?? []) {
    const [path, ...flags] = d.split(",");
    let readonly = false;
    let transport: "mmio" | "pci" = "mmio";
    for (const f of flags) {
      if (f === "readonly" || f === "ro") readonly = true;
      else if (f === "transport=pci" || f === "transport=mmio")
        transport = f === "transport=pci" ? "pci" : "mmio";
      else throw new UserError(`--disk: unknown flag '${f}' (readonly, transport=mmio|pci)`);
    }
    diskSpecs.push({ path: resolve(path!), readonly, transport });
  }
  const disks: { backend: BlockBackend; transport: "mmio" | "pci" }[] = [];
  const opened: FileBlockBackend[] = [];
  for (const { path, readonly, transport } of diskSpecs) {
    try {
      const b = new FileBlockBackend(path, { readonly });
      opened.push(b);
      disks.push({ backend: b, transport });
    } catch (e) {
      throw new UserError(`--disk ${path}: ${(e as Error).message}`);
    }
  }
  const nets: NetBackend[] = [];
  for (const n of opts.get("net") ?? []) {
    const m = /^socket,(.+)$/.exec(n);
    if (!m) throw new UserError(`--net: '${n}' is not socket,listen=PORT or socket,connect=HOST:PORT`);
    try {
      nets.push(await openSocketNetBackend(m[1]!));
    } catch (e) {
      throw new UserError(`--net ${n}: ${(e as Error).message}`);
    }
  }

  const out = new OutputBuffer();
  let machine: Machine;
  try {
    // A kernel boot first runs the small warm-up guest (about 50 ms), which saves a Linux
    // boot about a quarter of its time: see packages/hypervisor/src/warmup.ts. A bare-metal
    // program alone (no kernel) does not need it.
    const outside = {
      console: out,
      disks,
      nets,
      stats: opts.has("stats"),
      yieldToHost: () => new Promise<void>((r) => setImmediate(r)),
    };
    if (received !== undefined) {
      machine = await received.machine(outside);
      await warmUp(machine.virtMode);
    } else if (snapshotBytes !== undefined) {
      machine = await Machine.restore(snapshotBytes, outside);
      await warmUp(machine.virtMode);
      // The guest prints nothing until it has something to say: say where it comes from.
      process.stderr.write(`visor: continuing the VM saved in ${restorePath}\n`);
    } else {
      if (kernel !== undefined) await warmUp(virt);
      machine = await Machine.create({
        memory,
        harts,
        ...(kernel ? { kernel } : {}),
        ...(initrd ? { initrd } : {}),
        append: one("append") ?? "console=ttyS0",
        ...(biosBytes ? { bios: biosBytes } : {}),
        disks,
        nets,
        console: out,
        clock,
        virt,
        stats: opts.has("stats"),
        yieldToHost: () => new Promise<void>((r) => setImmediate(r)),
      });
    }
  } catch (e) {
    for (const b of opened) b.close();
    throw new UserError((e as Error).message);
  }

  const snapshotPath = one("snapshot");
  const meta: RunMeta = { disks: diskSpecs };
  const saveSnapshot = () => {
    if (snapshotPath === undefined) {
      process.stderr.write("\r\nvisor: no --snapshot PATH given; nothing saved\r\n");
      return;
    }
    try {
      const bytes = machine.snapshot(meta);
      // Written beside the target and renamed over it: a failed save leaves the old file.
      const tmp = `${snapshotPath}.tmp-${process.pid}`;
      try {
        writeFileSync(tmp, bytes);
        renameSync(tmp, snapshotPath);
      } catch (e) {
        try {
          unlinkSync(tmp);
        } catch {
          // nothing was written
        }
        throw e;
      }
      const mib = (bytes.length / 2 ** 20).toFixed(1);
      process.stderr.write(`\r\nvisor: snapshot saved to ${snapshotPath} (${mib} MiB)\r\n`);
    } catch (e) {
      process.stderr.write(`\r\nvisor: snapshot not saved: ${(e as Error).message}\r\n`);
    }
  };
  process.on("SIGUSR1", saveSnapshot);

  let migration: Promise<void> | undefined;
  const startMigration = () => {
    if (migrateAddr === undefined) {
      process.stderr.write("\r\nvisor: no --migrate-to HOST:PORT given; not migrating\r\n");
      return;
    }
    if (migration !== undefined) return;
    const where = `${migrateAddr.host}:${migrateAddr.port}`;
    process.stderr.write(`\r\nvisor: migrating to ${where} ...\r\n`);
    migration = (async () => {
      const sock = net.connect(migrateAddr);
      try {
        await new Promise<void>((resolve, reject) => {
          sock.once("connect", resolve);
          sock.once("error", reject);
        });
        const stats = await migrate(machine, socketSender(sock), { meta });
        await new Promise<void>((r) => sock.end(r));
        const mib = (stats.bytes / 2 ** 20).toFixed(1);
        process.stderr.write(
          `\r\nvisor: migrated to ${where}: ${stats.rounds} rounds while running, ${mib} MiB, paused ${stats.downtimeMs.toFixed(0)} ms for the last ${stats.finalPages} pages\r\n`,
        );
      } catch (e) {
        sock.destroy();
        process.stderr.write(
          `\r\nvisor: migration to ${where} failed: ${(e as Error).message}; the VM runs on here\r\n`,
        );
        migration = undefined;
      }
    })();
  };
  process.on("SIGUSR2", startMigration);

  const con = new HostConsole({
    input: (b) => machine.input(b),
    quit: () => machine.stop(),
    stats: () => printStats(machine, process.stderr),
    snapshot: saveSnapshot,
    migrate: startMigration,
  });
  con.start();
  let exit: MachineExit;
  try {
    exit = await machine.run();
  } catch (e) {
    out.flush();
    con.stop();
    if (e instanceof GuestError) throw new UserError(`guest error: ${e.message}`, 2);
    throw e;
  } finally {
    out.flush();
    con.stop();
    for (const b of opened) b.close();
    for (const n of nets) (n as { close?: () => void }).close?.();
    process.off("SIGUSR1", saveSnapshot);
    process.off("SIGUSR2", startMigration);
  }
  // A migration stops the VM before its last bytes are sent: wait for them.
  if (migration !== undefined) await migration;
  if (opts.has("stats")) printStats(machine, process.stderr);
  switch (exit.kind) {
    case "poweroff":
    case "reset":
    case "stopped":
      return 0;
    case "fail":
      process.stderr.write(`visor: guest reported failure (code ${exit.code})\n`);
      return exit.code === 0 ? 1 : exit.code & 0xff || 1;
    case "htif":
      if (exit.code !== 0) {
        process.stderr.write(`visor: FAIL test ${exit.code}\n`);
        return 1;
      }
      return 0;
  }
}

function isHtifProgram(elf: Uint8Array): boolean {
  // A bare-metal program speaking HTIF has a `tohost` symbol; firmware like OpenSBI does not.
  try {
    return parseElf(elf).symbol("tohost") !== undefined;
  } catch (e) {
    throw new UserError(`firmware: ${(e as Error).message}`);
  }
}

/** Guest console output, batched so one byte per MMIO write is not one syscall. */
class OutputBuffer {
  private chunks: Uint8Array[] = [];
  private size = 0;
  private scheduled = false;

  write(bytes: Uint8Array): void {
    this.chunks.push(bytes.slice());
    this.size += bytes.length;
    if (this.size > 4096) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.size === 0) return;
    const all = Buffer.concat(this.chunks);
    this.chunks = [];
    this.size = 0;
    try {
      process.stdout.write(all);
    } catch {
      // stdout closed: drop the output
    }
  }
}

/** Parse HOST:PORT (or PORT alone, on 127.0.0.1, where `portAlone` allows it). */
function hostPort(s: string, flag: string, portAlone: boolean): { host: string; port: number } {
  const m = /^(?:(.+):)?(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port < 1 || port > 65535 || (m[1] === undefined && !portAlone)) {
    throw new UserError(`${flag}: '${s}' is not ${portAlone ? "[HOST:]PORT" : "HOST:PORT"}`);
  }
  return { host: m[1] ?? "127.0.0.1", port };
}

/** Listen on `addr` for one migration and take it in whole. */
async function receiveMigration(addr: { host: string; port: number }): Promise<MigrationReceiver> {
  const rx = new MigrationReceiver();
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer((sock) => {
      server.close();
      sock.on("data", (d: Buffer) => {
        try {
          rx.push(d);
        } catch (e) {
          sock.destroy();
          reject(e);
        }
      });
      sock.on("end", () =>
        rx.done ? resolve() : reject(new Error("migration: the sender left before the VM arrived")),
      );
      sock.on("error", reject);
    });
    server.on("error", (e: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `--incoming ${addr.host}:${addr.port}: ${e.code === "EADDRINUSE" ? "address in use" : e.message}`,
        ),
      ),
    );
    server.listen(addr.port, addr.host, () =>
      process.stderr.write(`visor: waiting for a migration on ${addr.host}:${addr.port}\n`),
    );
  }).catch((e) => {
    throw new UserError((e as Error).message);
  });
  process.stderr.write(
    `visor: migration received (${(rx.bytes / 2 ** 20).toFixed(1)} MiB); the VM continues here\n`,
  );
  return rx;
}

/** A send function for migrate(): resolves when the socket takes the bytes, rejects if it fails. */
function socketSender(sock: net.Socket): (chunk: Uint8Array) => Promise<void> {
  let failure: Error | undefined;
  sock.on("error", (e) => {
    failure = e;
  });
  sock.on("close", () => {
    failure ??= new Error("the connection closed");
  });
  return (chunk) =>
    new Promise<void>((resolve, reject) => {
      if (failure !== undefined) {
        reject(failure);
        return;
      }
      const onFail = () => reject(failure ?? new Error("the connection closed"));
      sock.once("close", onFail);
      const done = () => {
        sock.off("close", onFail);
        resolve();
      };
      if (sock.write(chunk)) done();
      else sock.once("drain", done);
    });
}

/**
 * Gzip data inflated with Node's zlib, three times as fast as the web-standard stream the
 * hypervisor package uses (it runs in browsers too). Anything else, or gzip that does not
 * inflate, goes on as it is, for the machine to take or to refuse with its own message.
 */
function inflated(data: Uint8Array): Uint8Array {
  if (data.length < 2 || data[0] !== 0x1f || data[1] !== 0x8b) return data;
  try {
    return gunzipSync(data);
  } catch {
    return data;
  }
}
