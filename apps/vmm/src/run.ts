/**
 * `visor run`: boot a VM on the virt machine.
 */
import { gunzipSync } from "node:zlib";
import { type NetBackend, RateLimiter } from "@visor/devices";
import {
  checkDevicesMatch,
  type DiskConfig,
  GuestError,
  Machine,
  type MachineExit,
  type MigrationReceiver,
  type NetConfig,
  parseElf,
  type VirtMode,
  warmUp,
} from "@visor/hypervisor";
import {
  acceptMigration,
  DEFAULT_MIGRATE_TIMEOUT_MS,
  type MigrationSecurity,
  readMigrateKey,
} from "@visor/hypervisor/node";
import { MachineControl } from "./api/machine-control.ts";
import type { ApiSocket } from "./api/server.ts";
import { parseJit, parseMemory, parseOptions } from "./args.ts";
import { BUNDLED_INITRD, BUNDLED_KERNEL, X86_GUEST_DIR } from "./bundled.ts";
import { ConsoleOutput, HostConsole } from "./console.ts";
import { driveSnapshotter } from "./drive-snapshot.ts";
import { type DriveSpec, parseDiskSpec, parseNetLimits } from "./drive-spec.ts";
import type { Drive } from "./drives.ts";
import { readInput, UserError } from "./errors.ts";
import { exitStatus } from "./exit-status.ts";
import { debugMachine, parseGdbAddress } from "./gdb.ts";
import { parseHostPort as hostPort } from "./host-port.ts";
import { userPath, versionLine } from "./paths.ts";
import { exitOnceFlushed } from "./prompt-exit.ts";
import { markPhase } from "./startup-marks.ts";
import { printStats } from "./stats.ts";

export const RUN_HELP = `usage: visor run [options]

  --kernel PATH        Linux Image or Image.gz (default: the bundled guest)
  --initrd PATH        initramfs (default: the bundled one, with the default kernel)
  --append STRING      kernel command line (default "console=ttyS0")
  --memory SIZE        guest RAM, 16M to 16G (default 256M)
  --bios PATH|none     firmware ELF (e.g. OpenSBI fw_jump.elf, or a bare-metal program
                       with HTIF tohost); none = the built-in SBI (default)
  --disk PATH[,readonly][,share-rw][,transport=mmio|pci][,format=raw|qcow2][,bw=SIZE][,iops=N]
                       virtio-blk disk backed by a raw or qcow2 image (repeatable; the
                       format is probed unless given; qcow2 backing files are followed);
                       transport=pci puts it on the PCI bus, driven through port I/O.
                       The image is locked: one writer, or any number of readers;
                       share-rw lets a read-only disk share the image with a writer.
                       bw= and iops= limit bytes and requests per second
  --net socket,listen=PORT | socket,connect=HOST:PORT [,bw=SIZE][,ops=N]   virtio-net
                       on a socket LAN; bw= and ops= limit each direction per second
  --snapshot           write to temporary overlays: the guest's disk writes are
                       discarded at exit and the images stay as they were (QEMU's -snapshot)
  --virt nested|shadow|off how the guest kernel is virtualized (default nested)
  --clock host|deterministic  time source (deterministic: time follows instructions)
  --harts N            number of harts (default 1)
  --jit on|off|always  binary translation of guest code to WebAssembly: on (hot code,
                       the default), off (interpret only), always (translate at first
                       execution); also with --restore and --incoming (it is not VM state)
  --stats              print exit and translator statistics when the VM stops
  --save-to PATH       where Ctrl-A W (or SIGUSR1) saves the running VM (for --restore)
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
  --gdb [HOST:]PORT    serve gdb's remote protocol here (default host 127.0.0.1; port 0:
                       any free port, printed on stderr): docs/debugging.md
  --paused             with --gdb: hold the VM until gdb continues it
  --api-sock PATH      serve the control API (HTTP/JSON: pause, resume, snapshot, migrate,
                       stats, power-off) on a Unix socket at PATH; see docs/vmm-api.md
  --no-reboot          QEMU's spelling, accepted: visor never reboots a guest (a reset
                       ends the run with status 1; docs/exit-status.md)
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
  snapshot: {},
  "save-to": { value: true },
  restore: { value: true },
  "migrate-to": { value: true },
  incoming: { value: true },
  "migrate-key": { value: true },
  "tls-cert": { value: true },
  "tls-key": { value: true },
  "tls-ca": { value: true },
  "migrate-insecure": {},
  "migrate-timeout": { value: true },
  gdb: { value: true },
  paused: {},
  "api-sock": { value: true },
  "no-reboot": {},
  help: {},
  version: {},
};

/** Options whose value is a host file path (--bios also takes "none"). */
const PATH_OPTIONS = [
  "kernel",
  "initrd",
  "bios",
  "save-to",
  "restore",
  "migrate-key",
  "tls-cert",
  "tls-key",
  "tls-ca",
  "api-sock",
];

/**
 * Options that describe a new machine, which --restore and --incoming take from the
 * snapshot or the stream instead. Host resources (--disk, --net) are not among them:
 * those always come from this side's own options; nor is --jit, how this host runs the
 * guest's code.
 */
const MACHINE_OPTIONS = ["kernel", "initrd", "append", "memory", "bios", "virt", "clock", "harts"];

export async function runMain(argv: string[]): Promise<number> {
  markPhase("visor:loaded");
  // --accel kvm: the x86-64 machine on hardware-assisted virtualization (kvm/run.ts)
  if (argv.some((a) => a === "--accel" || a.startsWith("--accel="))) {
    const { kvmRunMain } = await import("./kvm/run.ts");
    return kvmRunMain(argv, X86_GUEST_DIR);
  }
  const { opts, rest } = parseSnapshotOptions(argv);
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
  if (opts.has("paused") && !opts.has("gdb")) throw new UserError("--paused needs --gdb [HOST:]PORT");
  const gdbAddr = opts.has("gdb") ? parseGdbAddress(one("gdb")!) : undefined;
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

  const security = migrationSecurity(
    opts,
    migrateTo !== undefined || incoming !== undefined,
    opts.has("api-sock"),
  );
  const timeoutMs = migrateTimeout(one("migrate-timeout"));
  const snapshotBytes = restorePath !== undefined ? readInput(restorePath, "snapshot") : undefined;
  const diskSpecs: DriveSpec[] = (opts.get("disk") ?? []).map(parseDiskSpec);
  // An incoming VM's disks are opened now (a bad path fails before anything is received)
  // but locked only once it has arrived: until then the sender still has them.
  const disks: DiskConfig[] = [];
  const opened: Drive[] = [];
  const closeDisks = () => {
    for (const b of opened) b.close();
  };
  for (const spec of diskSpecs) {
    try {
      // The disk image code (drives.ts, qcow2) is loaded for a VM with disks only.
      const { Drive } = await import("./drives.ts");
      const d = Drive.open(spec, { snapshot: opts.has("snapshot"), deferLock: incoming !== undefined });
      opened.push(d);
      disks.push({
        backend: d,
        transport: spec.transport,
        ...(d.rateLimiter ? { rateLimiter: d.rateLimiter } : {}),
      });
    } catch (e) {
      closeDisks();
      throw e;
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
  const nets: NetConfig[] = [];
  for (const n of netSpecs) {
    const { rest: spec, limits } = parseNetLimits(n);
    const m = /^socket,(.+)$/.exec(spec);
    if (!m) throw new UserError(`--net: '${n}' is not socket,listen=PORT or socket,connect=HOST:PORT`);
    try {
      const { openSocketNetBackend } = await import("@visor/devices/node");
      const backend: NetBackend = await openSocketNetBackend(m[1]!);
      nets.push(
        limits
          ? { backend, txRateLimiter: new RateLimiter(limits), rxRateLimiter: new RateLimiter(limits) }
          : { backend },
      );
    } catch (e) {
      closeDisks();
      throw new UserError(`--net ${n}: ${(e as Error).message}`);
    }
  }

  markPhase("visor:inputs");
  const out = new ConsoleOutput(process.stdout, (m) => process.stderr.write(m));
  let machine: Machine;
  try {
    // A kernel boot first runs the small warm-up guest (about 0.1 s), which saves the
    // bundled guest's boot 0.5 to 0.7 s: see packages/hypervisor/src/warmup.ts. A
    // bare-metal program alone (no kernel) does not need it.
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
      if (kernel !== undefined) {
        await warmUp(virt, jit);
        markPhase("visor:warm-up");
      }
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
    for (const n of nets) (n.backend as { close?: () => void }).close?.();
    const msg = (e as Error).message;
    throw new UserError(restorePath !== undefined ? `--restore ${restorePath}: ${msg}` : msg);
  }

  // The VM's pause, snapshots and migration, for the Ctrl-A keys and the control socket.
  const control = new MachineControl({
    machine,
    startedBy: received !== undefined ? "incoming" : snapshotBytes !== undefined ? "restore" : "boot",
    drives: diskSpecs.map(({ path, readonly, transport }) => ({ path, readonly, transport })),
    security,
    timeoutMs,
    releaseDisks: () => {
      for (const b of opened) {
        b.flush();
        b.close();
      }
    },
    log: (line) => process.stderr.write(`\r\nvisor: ${line}\r\n`),
    snapshotDrive: driveSnapshotter(opened),
  });
  let api: ApiSocket | undefined;
  const apiPath = one("api-sock");
  if (apiPath !== undefined) {
    try {
      api = await (await import("./api/server.ts")).openApiSocket(apiPath, control);
    } catch (e) {
      closeDisks();
      for (const n of nets) (n as { close?: () => void }).close?.();
      throw new UserError(`--api-sock: ${(e as Error).message}`);
    }
  }

  const snapshotPath = one("save-to");
  const saveSnapshot = () => {
    if (snapshotPath === undefined) {
      process.stderr.write("\r\nvisor: no --save-to PATH given; nothing saved\r\n");
      return;
    }
    try {
      const saved = control.snapshot(snapshotPath);
      const mib = (saved.size_bytes / 2 ** 20).toFixed(1);
      process.stderr.write(`\r\nvisor: snapshot saved to ${snapshotPath} (${mib} MiB)\r\n`);
    } catch (e) {
      process.stderr.write(`\r\nvisor: snapshot not saved: ${(e as Error).message}\r\n`);
    }
  };
  process.on("SIGUSR1", saveSnapshot);

  const startMigration = () => {
    if (migrateAddr === undefined) {
      process.stderr.write("\r\nvisor: no --migrate-to HOST:PORT given; not migrating\r\n");
      return;
    }
    try {
      control.migrate(`${migrateAddr.host}:${migrateAddr.port}`);
    } catch (e) {
      process.stderr.write(`\r\nvisor: ${(e as Error).message}\r\n`);
    }
  };
  process.on("SIGUSR2", startMigration);

  const con = new HostConsole({
    input: (b) => machine.input(b),
    quit: () => {
      control.powerOff();
      gdb?.release(); // a VM held by gdb must not keep the quit waiting
    },
    stats: () => printStats(machine, process.stderr),
    snapshot: saveSnapshot,
    migrate: startMigration,
  });
  const gdb = gdbAddr && (await debugMachine(machine, gdbAddr, opts.has("paused")));
  con.start();
  markPhase("visor:machine");
  let exit: MachineExit;
  try {
    exit = await machine.run();
  } catch (e) {
    gdb?.close();
    out.flush();
    con.stop();
    if (e instanceof GuestError) throw new UserError(`guest error: ${e.message}`, 2);
    throw e;
  } finally {
    out.flush();
    con.stop();
    for (const b of opened) b.close();
    for (const n of nets) (n.backend as { close?: () => void }).close?.();
    process.off("SIGUSR1", saveSnapshot);
    process.off("SIGUSR2", startMigration);
    await api?.close();
  }
  gdb?.exited(exit);
  // A migration stops the VM before its last bytes are sent: wait for them.
  await control.settled();
  if (opts.has("stats")) printStats(machine, process.stderr);
  const status = exitStatus(exit);
  if (status.message !== undefined) process.stderr.write(`visor: ${status.message}\n`);
  // Nothing but console output left in flight: end now, without Node's teardown.
  if (gdb === undefined && nets.length === 0) await exitOnceFlushed(status.code);
  return status.code;
}

/**
 * parseOptions for `visor run`, with a one-line error for --snapshot's old meaning
 * (--snapshot PATH, now --save-to PATH; --snapshot alone is QEMU's -snapshot).
 */
function parseSnapshotOptions(argv: string[]): ReturnType<typeof parseOptions> {
  const old = argv.findIndex((a) => a.startsWith("--snapshot="));
  const next = argv[argv.indexOf("--snapshot") + 1];
  if (old >= 0 || (argv.includes("--snapshot") && next !== undefined && !next.startsWith("--"))) {
    throw new UserError(
      "--snapshot takes no value: it now means QEMU's -snapshot (discard disk writes at exit); to save the running VM on Ctrl-A W, use --save-to PATH",
    );
  }
  return parseOptions(argv, SPEC);
}

function isHtifProgram(elf: Uint8Array): boolean {
  // A bare-metal program speaking HTIF has a `tohost` symbol; firmware like OpenSBI does not.
  try {
    return parseElf(elf).symbol("tohost") !== undefined;
  } catch (e) {
    throw new UserError(`firmware: ${(e as Error).message}`);
  }
}

/**
 * How migration is secured, from --migrate-key, --tls-cert/--tls-key/--tls-ca or
 * --migrate-insecure; exactly one is required where a migration will happen (`needed`),
 * and allowed where one may (`optional`: the control socket can start one).
 */
function migrationSecurity(
  opts: Map<string, string[]>,
  needed: boolean,
  optional = false,
): MigrationSecurity | undefined {
  const one = (k: string) => opts.get(k)?.[0];
  const key = one("migrate-key");
  const tlsGiven = ["tls-cert", "tls-key", "tls-ca"].filter((k) => opts.has(k));
  const insecure = opts.has("migrate-insecure");
  const ways = [key !== undefined, tlsGiven.length > 0, insecure].filter(Boolean).length;
  if (ways > 1)
    throw new UserError("give one of --migrate-key, --tls-cert/--tls-key/--tls-ca, --migrate-insecure");
  if (!needed) {
    if (ways > 0 && !optional)
      throw new UserError("migration security options need --incoming, --migrate-to or --api-sock");
    if (ways === 0) return undefined;
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

/**
 * Gzip data inflated with Node's zlib, three times as fast as the web-standard stream the
 * hypervisor package uses (it runs in browsers too). Anything else, or gzip that does not
 * inflate, goes on as it is, for the machine to take or to refuse with its own message.
 * Output comes in 1 MiB pieces: with Node's default of 16 KiB, the bundled kernel and
 * initramfs took about 24 ms instead of 20 (medians of 9 interleaved runs).
 */
function inflated(data: Uint8Array): Uint8Array {
  if (data.length < 2 || data[0] !== 0x1f || data[1] !== 0x8b) return data;
  try {
    return gunzipSync(data, { chunkSize: 1 << 20 });
  } catch {
    return data;
  }
}
