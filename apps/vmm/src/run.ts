/**
 * `visor run`: boot a VM on the virt machine.
 */
import { readFileSync } from "node:fs";
import type net from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import type { BlockBackend, NetBackend } from "@visor/devices";
import { FileBlockBackend, ImageLockedError, openSocketNetBackend } from "@visor/devices/node";
import {
  checkDevicesMatch,
  GuestError,
  Machine,
  type MachineExit,
  type MigrationReceiver,
  migrate,
  parseElf,
  type VirtMode,
  warmUp,
} from "@visor/hypervisor";
import {
  acceptMigration,
  connectMigration,
  DEFAULT_MIGRATE_TIMEOUT_MS,
  type MigrationSecurity,
  readMigrateKey,
} from "@visor/hypervisor/node";
import { parseJit, parseMemory, parseOptions } from "./args.ts";
import { writeFileAtomic } from "./atomic-write.ts";
import { ConsoleOutput, HostConsole } from "./console.ts";
import { UserError } from "./errors.ts";
import { userPath, versionLine } from "./paths.ts";
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
  --disk PATH[,readonly][,share-rw][,transport=mmio|pci]   virtio-blk disk backed by a file
                       (repeatable); transport=pci puts it on the PCI bus, driven through
                       port I/O. The image is locked: one writer, or any number of readers;
                       share-rw lets a read-only disk share the image with a writer
  --net socket,listen=PORT | socket,connect=HOST:PORT   virtio-net on a socket LAN
  --virt nested|shadow|off how the guest kernel is virtualized (default nested)
  --clock host|deterministic  time source (deterministic: time follows instructions)
  --harts N            number of harts (default 1)
  --jit on|off|always  binary translation of guest code to WebAssembly: on (hot code,
                       the default), off (interpret only), always (translate at first
                       execution); also with --restore and --incoming (it is not VM state)
  --stats              print exit and translator statistics when the VM stops
  --snapshot PATH      where Ctrl-A W (or SIGUSR1) saves a snapshot of the running VM
  --restore PATH       continue a VM from a snapshot instead of booting one; give the
                       same --disk and --net devices it had (count, transport, readonly)
  --migrate-to HOST:PORT  where Ctrl-A M (or SIGUSR2) live-migrates the running VM
  --incoming [HOST:]PORT  wait for a VM migrated to this port (default host 127.0.0.1)
                       and continue it, with this side's --disk and --net (shared storage)
  --migrate-key FILE   migrate over TLS 1.3 with this pre-shared key (the same file on
                       both sides; make one with: openssl rand -hex 32 > FILE)
  --tls-cert FILE --tls-key FILE --tls-ca FILE   migrate over TLS with certificates
                       instead, each side checking the other's against the CA
  --migrate-insecure   migrate over plain TCP, unauthenticated (trusted networks only)
  --migrate-timeout SECONDS  give up on a silent migration peer after this (default 30)
  --version            print visor's version
  --accel kvm          boot x86-64 Linux on KVM instead (see visor run --accel kvm --help)

Relative paths are relative to the directory visor was started from (under
'pnpm visor', the directory pnpm was run in: INIT_CWD).

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
  jit: { value: true },
  stats: {},
  snapshot: { value: true },
  restore: { value: true },
  "migrate-to": { value: true },
  incoming: { value: true },
  "migrate-key": { value: true },
  "tls-cert": { value: true },
  "tls-key": { value: true },
  "tls-ca": { value: true },
  "migrate-insecure": {},
  "migrate-timeout": { value: true },
  help: {},
  version: {},
};

/** Options whose value is a host file path (--bios also takes "none"). */
const PATH_OPTIONS = [
  "kernel",
  "initrd",
  "bios",
  "snapshot",
  "restore",
  "migrate-key",
  "tls-cert",
  "tls-key",
  "tls-ca",
];

/**
 * Options that describe a new machine, which --restore and --incoming take from the
 * snapshot or the stream instead. Host resources (--disk, --net) are not among them:
 * those always come from this side's own options; nor is --jit, how this host runs the
 * guest's code.
 */
const MACHINE_OPTIONS = ["kernel", "initrd", "append", "memory", "bios", "virt", "clock", "harts"];

interface DiskSpec {
  path: string;
  readonly: boolean;
  shareRw: boolean;
  transport: "mmio" | "pci";
}

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
  // --accel kvm: the x86-64 machine on hardware-assisted virtualization (kvm/run.ts)
  if (argv.some((a) => a === "--accel" || a.startsWith("--accel="))) {
    const { kvmRunMain } = await import("./kvm/run.ts");
    return kvmRunMain(argv, REPO_ROOT);
  }
  const { opts, rest } = parseOptions(argv, SPEC);
  if (opts.has("help")) {
    process.stdout.write(`${RUN_HELP}\n`);
    return 0;
  }
  if (opts.has("version")) {
    process.stdout.write(`${versionLine()}\n`);
    return 0;
  }
  for (const k of PATH_OPTIONS) {
    const v = opts.get(k);
    if (v === undefined || (k === "bios" && v[0] === "none")) continue;
    opts.set(
      k,
      v.map((p) => userPath(p)),
    );
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
  const jit = parseJit(one("jit"));
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

  const security = migrationSecurity(opts, migrateTo !== undefined || incoming !== undefined);
  const timeoutMs = migrateTimeout(one("migrate-timeout"));
  const snapshotBytes = restorePath !== undefined ? readInput(restorePath, "snapshot") : undefined;
  const diskSpecs: DiskSpec[] = [];
  for (const d of opts.get("disk") ?? []) {
    const [path, ...flags] = d.split(",");
    let readonly = false;
    let shareRw = false;
    let transport: "mmio" | "pci" = "mmio";
    for (const f of flags) {
      if (f === "readonly" || f === "ro") readonly = true;
      else if (f === "share-rw") shareRw = true;
      else if (f === "transport=pci" || f === "transport=mmio")
        transport = f === "transport=pci" ? "pci" : "mmio";
      else throw new UserError(`--disk: unknown flag '${f}' (readonly, share-rw, transport=mmio|pci)`);
    }
    if (shareRw && !readonly) throw new UserError(`--disk ${path}: share-rw needs readonly`);
    diskSpecs.push({ path: userPath(path!), readonly, shareRw, transport });
  }
  // An incoming VM's disks are opened now (a bad path fails before anything is received)
  // but locked only once it has arrived: until then the sender still has them.
  const disks: { backend: BlockBackend; transport: "mmio" | "pci" }[] = [];
  const opened: FileBlockBackend[] = [];
  const closeDisks = () => {
    for (const b of opened) b.close();
  };
  for (const { path, readonly, shareRw, transport } of diskSpecs) {
    try {
      const b = new FileBlockBackend(path, { readonly, shareRw, deferLock: incoming !== undefined });
      opened.push(b);
      disks.push({ backend: b, transport });
    } catch (e) {
      closeDisks();
      // "PATH is in use by another process (locked)" names the file already.
      if (e instanceof ImageLockedError) throw new UserError(e.message);
      throw new UserError(`--disk ${path}: ${(e as Error).message}`);
    }
  }
  const netSpecs = opts.get("net") ?? [];
  let received: MigrationReceiver | undefined;
  if (incomingAddr !== undefined) {
    try {
      received = await acceptMigration(incomingAddr, {
        security: security!,
        timeoutMs,
        receiver: {
          // Refuse a machine whose devices this side does not have before its RAM comes.
          checkConfig: (c) =>
            checkDevicesMatch(
              c,
              diskSpecs.map((d) => ({ transport: d.transport, readonly: d.readonly })),
              netSpecs.length,
            ),
        },
        log: (line) => process.stderr.write(`visor: ${line}\n`),
      });
      for (const b of opened) b.lock();
    } catch (e) {
      // (a lock refused here: another process took the disk while the VM was on its way)
      closeDisks();
      throw new UserError((e as Error).message);
    }
    process.stderr.write(
      `visor: migration received (${(received.bytes / 2 ** 20).toFixed(1)} MiB); the VM continues here\n`,
    );
  }
  const nets: NetBackend[] = [];
  for (const n of netSpecs) {
    const m = /^socket,(.+)$/.exec(n);
    if (!m) throw new UserError(`--net: '${n}' is not socket,listen=PORT or socket,connect=HOST:PORT`);
    try {
      nets.push(await openSocketNetBackend(m[1]!));
    } catch (e) {
      closeDisks();
      throw new UserError(`--net ${n}: ${(e as Error).message}`);
    }
  }

  const out = new ConsoleOutput(process.stdout, (m) => process.stderr.write(m));
  let machine: Machine;
  try {
    // A kernel boot first runs the small warm-up guest (about 50 ms), which saves a Linux
    // boot about a quarter of its time: see packages/hypervisor/src/warmup.ts. A bare-metal
    // program alone (no kernel) does not need it.
    const outside = {
      console: out,
      disks,
      nets,
      jit,
      stats: opts.has("stats"),
      yieldToHost: () => new Promise<void>((r) => setImmediate(r)),
    };
    if (received !== undefined) {
      machine = await received.machine(outside);
      await warmUp(machine.virtMode, jit);
    } else if (snapshotBytes !== undefined) {
      machine = await Machine.restore(snapshotBytes, outside);
      await warmUp(machine.virtMode, jit);
      // The guest prints nothing until it has something to say: say where it comes from.
      process.stderr.write(`visor: continuing the VM saved in ${restorePath}\n`);
    } else {
      if (kernel !== undefined) await warmUp(virt, jit);
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
        jit,
        stats: opts.has("stats"),
        yieldToHost: () => new Promise<void>((r) => setImmediate(r)),
      });
    }
  } catch (e) {
    closeDisks();
    for (const n of nets) (n as { close?: () => void }).close?.();
    const msg = (e as Error).message;
    throw new UserError(restorePath !== undefined ? `--restore ${restorePath}: ${msg}` : msg);
  }

  const snapshotPath = one("snapshot");
  const saveSnapshot = () => {
    if (snapshotPath === undefined) {
      process.stderr.write("\r\nvisor: no --snapshot PATH given; nothing saved\r\n");
      return;
    }
    try {
      const bytes = machine.snapshot();
      // Beside the target, fsync'ed and renamed over it: a failed save leaves the old file.
      writeFileAtomic(snapshotPath, bytes);
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
      let sock: net.Socket | undefined;
      try {
        sock = await connectMigration(migrateAddr, security!, timeoutMs);
        const stats = await migrate(machine, socketSender(sock));
        // The VM has stopped here: let go of its disks (flushed, unlocked) before the
        // stream ends, so the receiver can take them.
        for (const b of opened) {
          b.flush();
          b.close();
        }
        await new Promise<void>((r) => sock!.end(r));
        const mib = (stats.bytes / 2 ** 20).toFixed(1);
        process.stderr.write(
          `\r\nvisor: migrated to ${where}: ${stats.rounds} rounds while running, ${mib} MiB, paused ${stats.downtimeMs.toFixed(0)} ms for the last ${stats.finalPages} pages\r\n`,
        );
      } catch (e) {
        sock?.destroy();
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

/** Parse HOST:PORT (or PORT alone, on 127.0.0.1, where `portAlone` allows it). */
function hostPort(s: string, flag: string, portAlone: boolean): { host: string; port: number } {
  const m = /^(?:(.+):)?(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port < 1 || port > 65535 || (m[1] === undefined && !portAlone)) {
    throw new UserError(`${flag}: '${s}' is not ${portAlone ? "[HOST:]PORT" : "HOST:PORT"}`);
  }
  return { host: m[1] ?? "127.0.0.1", port };
}

/**
 * How migration is secured, from --migrate-key, --tls-cert/--tls-key/--tls-ca or
 * --migrate-insecure; exactly one is required where a migration may happen.
 */
function migrationSecurity(opts: Map<string, string[]>, needed: boolean): MigrationSecurity | undefined {
  const one = (k: string) => opts.get(k)?.[0];
  const key = one("migrate-key");
  const tlsGiven = ["tls-cert", "tls-key", "tls-ca"].filter((k) => opts.has(k));
  const insecure = opts.has("migrate-insecure");
  const ways = [key !== undefined, tlsGiven.length > 0, insecure].filter(Boolean).length;
  if (ways > 1)
    throw new UserError("give one of --migrate-key, --tls-cert/--tls-key/--tls-ca, --migrate-insecure");
  if (!needed) {
    if (ways > 0) throw new UserError("migration security options need --incoming or --migrate-to");
    return undefined;
  }
  if (ways === 0) {
    throw new UserError(
      "migration needs --migrate-key FILE (make one: openssl rand -hex 32 > FILE), --tls-cert/--tls-key/--tls-ca, or --migrate-insecure",
    );
  }
  if (insecure) return { kind: "insecure" };
  if (key !== undefined) {
    try {
      return { kind: "psk", key: readMigrateKey(key) };
    } catch (e) {
      throw new UserError((e as Error).message);
    }
  }
  const missing = ["tls-cert", "tls-key", "tls-ca"].find((k) => !opts.has(k));
  if (missing !== undefined)
    throw new UserError(`--${missing} is needed with ${tlsGiven.map((k) => `--${k}`).join(", ")}`);
  return {
    kind: "cert",
    cert: Buffer.from(readInput(one("tls-cert")!, "certificate")),
    key: Buffer.from(readInput(one("tls-key")!, "private key")),
    ca: Buffer.from(readInput(one("tls-ca")!, "CA certificate")),
  };
}

/** --migrate-timeout SECONDS (fractions allowed), in milliseconds. */
function migrateTimeout(s: string | undefined): number {
  if (s === undefined) return DEFAULT_MIGRATE_TIMEOUT_MS;
  const secs = Number(s);
  if (!/^\d+(\.\d+)?$/.test(s) || !(secs > 0) || secs > MAX_MIGRATE_TIMEOUT_S) {
    throw new UserError(
      `--migrate-timeout: '${s}' is not a number of seconds from 0 to ${MAX_MIGRATE_TIMEOUT_S}`,
    );
  }
  return Math.round(secs * 1000);
}

/** The longest --migrate-timeout: an hour. */
const MAX_MIGRATE_TIMEOUT_S = 3600;

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
