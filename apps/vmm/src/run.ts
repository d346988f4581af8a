/**
 * `visor run`: boot a VM on the virt machine.
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { BlockBackend, NetBackend } from "@visor/devices";
import { FileBlockBackend, openSocketNetBackend } from "@visor/devices/node";
import {
  decodeSnapshot,
  GuestError,
  Machine,
  type MachineExit,
  parseElf,
  type VirtMode,
  warmUp,
} from "@visor/hypervisor";
import { parseOptions, parseSize } from "./args.ts";
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
  --memory SIZE        guest RAM (default 256M)
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
  if (restorePath !== undefined) {
    const clash = MACHINE_OPTIONS.find((k) => opts.has(k));
    if (clash)
      throw new UserError(`--${clash} cannot be combined with --restore (the snapshot defines the machine)`);
  }
  const bios = one("bios");
  const biosBytes = bios !== undefined && bios !== "none" ? readInput(bios, "firmware") : undefined;
  const kernelPath =
    one("kernel") ??
    (restorePath !== undefined ||
    (biosBytes !== undefined && one("initrd") === undefined && isHtifProgram(biosBytes))
      ? undefined
      : BUNDLED_KERNEL);
  const initrdPath =
    one("initrd") ?? (one("kernel") === undefined && kernelPath !== undefined ? BUNDLED_INITRD : undefined);
  const kernel = kernelPath !== undefined ? readInput(kernelPath, "kernel") : undefined;
  const initrd = initrdPath !== undefined ? readInput(initrdPath, "initrd") : undefined;
  const memory = parseSize(one("memory") ?? "256M", "--memory");
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
    if (snapshotBytes !== undefined) {
      machine = await Machine.restore(snapshotBytes, {
        console: out,
        disks,
        nets,
        stats: opts.has("stats"),
        yieldToHost: () => new Promise<void>((r) => setImmediate(r)),
      });
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

  const con = new HostConsole({
    input: (b) => machine.input(b),
    quit: () => machine.stop(),
    stats: () => printStats(machine, process.stderr),
    snapshot: saveSnapshot,
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
  }
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
