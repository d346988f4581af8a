/**
 * `visor run --accel kvm`: boot an x86-64 Linux guest on KVM (machine.ts). QEMU's option
 * name; the options it shares with the RISC-V `visor run` mean the same.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { BlockBackend, NetBackend } from "@visor/devices";
import { FileBlockBackend, ImageLockedError, openSocketNetBackend } from "@visor/devices/node";
import { exitProcess, KVM_CAP, Kvm, kvmStatus } from "@visor/kvm";
import { kvmIsPvm } from "@visor/kvm/node";
import { parseOptions, parseSize, sizeText } from "../args.ts";
import { ConsoleOutput, HostConsole } from "../console.ts";
import { readInput, UserError } from "../errors.ts";
import { userPath, versionLine } from "../paths.ts";
import { BootError } from "./boot.ts";
import { X86_MAX_MEMORY, X86Machine, type X86Stats } from "./machine.ts";

export const KVM_RUN_HELP = `usage: visor run --accel kvm [options]   (x86-64 Linux on KVM)

  --kernel PATH        x86-64 bzImage (default: guests/x86_64/bzImage)
  --initrd PATH        initramfs (default: the bundled one, with the default kernel)
  --append STRING      kernel command line (default "console=ttyS0"); the machine puts
                       its own first (virtio_mmio.device=..., reboot=k panic=-1 pci=off)
  --memory SIZE        guest RAM, 16M to 3G (default 256M)
  --harts N            vCPUs, each on a worker thread of its own (default 1)
  --disk PATH[,readonly]  virtio-blk (virtio-mmio) disk backed by a raw file (repeatable)
  --net socket,listen=PORT | socket,connect=HOST:PORT   virtio-net on a socket LAN
                       (after the disks and NICs: a virtio-rng and a virtio-console, hvc0)
  --stats              print KVM exits by reason, port and device when the VM stops

The console is this terminal. Ctrl-A X quits. Needs a usable /dev/kvm.`;

const SPEC = {
  accel: { value: true },
  kernel: { value: true },
  initrd: { value: true },
  append: { value: true },
  memory: { value: true },
  harts: { value: true },
  disk: { value: true, repeat: true },
  net: { value: true, repeat: true },
  stats: {},
  help: {},
  version: {},
};

const MIN_MEMORY = 16 * 2 ** 20;

export async function kvmRunMain(argv: string[], guestDir: string): Promise<number> {
  const { opts, rest } = parseOptions(argv, SPEC);
  if (opts.has("help")) {
    process.stdout.write(`${KVM_RUN_HELP}\n`);
    return 0;
  }
  if (opts.has("version")) {
    process.stdout.write(`${versionLine()}\n`);
    return 0;
  }
  if (rest.length > 0)
    throw new UserError(`unexpected argument '${rest[0]}' (see 'visor run --accel kvm --help')`);
  const one = (k: string): string | undefined => opts.get(k)?.[0];
  const accel = one("accel");
  if (accel !== "kvm") throw new UserError(`--accel ${accel}: the only accelerator is kvm`);

  const memory = parseSize(one("memory") ?? "256M", "--memory");
  if (memory > X86_MAX_MEMORY)
    throw new UserError(
      `--memory ${one("memory")} is above the x86-64 machine's maximum of ${sizeText(X86_MAX_MEMORY)}`,
    );
  if (memory < MIN_MEMORY)
    throw new UserError(`--memory ${one("memory")} is below the minimum of ${sizeText(MIN_MEMORY)}`);
  if (memory % 4096 !== 0)
    throw new UserError(`--memory ${one("memory")} is not a whole number of 4 KiB pages`);

  // VISOR_KVM_DEVICE: another KVM device node (tests use a missing one).
  const kvmPath = process.env.VISOR_KVM_DEVICE || undefined;
  const status = kvmStatus(kvmPath);
  if (!status.ok) throw new UserError(status.reason);
  if (kvmIsPvm()) {
    process.stderr.write(
      "visor: warning: this host's KVM is kvm-pvm, not VT-x/AMD-V: a kernel not built for PVM runs in KVM's instruction emulator, very slowly, and Linux stops early in boot (docs/hardware-assist.md)\n",
    );
  }

  const hartsText = one("harts") ?? "1";
  const harts = Number(hartsText);
  const kvm = Kvm.open(kvmPath);
  const maxVcpus = Math.min(
    kvm.checkExtension(KVM_CAP.MAX_VCPUS) || kvm.checkExtension(KVM_CAP.NR_VCPUS) || 1,
    64,
  );
  kvm.close();
  if (!/^\d+$/.test(hartsText) || harts < 1 || harts > maxVcpus) {
    throw new UserError(`--harts ${hartsText}: give a number of vCPUs from 1 to ${maxVcpus}`);
  }

  const bundledKernel = join(guestDir, "bzImage");
  const kernelPath = one("kernel") !== undefined ? userPath(one("kernel")!) : bundledKernel;
  let initrdPath = one("initrd") !== undefined ? userPath(one("initrd")!) : undefined;
  if (initrdPath === undefined && one("kernel") === undefined)
    initrdPath = join(guestDir, "initramfs.cpio.gz");
  if (kernelPath === bundledKernel && !existsSync(bundledKernel)) {
    throw new UserError(`no bundled x86-64 guest (${bundledKernel} is missing): give --kernel PATH`);
  }
  const kernel = readInput(kernelPath, "kernel");
  const initrd = initrdPath !== undefined ? readInput(initrdPath, "initrd") : undefined;

  const opened: FileBlockBackend[] = [];
  const closeDisks = () => {
    for (const b of opened) b.close();
  };
  const disks: BlockBackend[] = [];
  for (const spec of opts.get("disk") ?? []) {
    const [path, ...flags] = spec.split(",");
    let readonly = false;
    for (const f of flags) {
      if (f === "readonly") readonly = true;
      else throw new UserError(`--disk: unknown flag '${f}' (readonly)`);
    }
    if (!path) throw new UserError("--disk needs a file path");
    try {
      const b = new FileBlockBackend(userPath(path), { readonly });
      opened.push(b);
      disks.push(b);
    } catch (e) {
      closeDisks();
      if (e instanceof ImageLockedError) throw new UserError(e.message);
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
      closeDisks();
      throw new UserError(`--net ${n}: ${(e as Error).message}`);
    }
  }

  const out = new ConsoleOutput(process.stdout, (m) => process.stderr.write(m));
  // ConsoleOutput batches bytes until the event loop turns (one write per burst).
  const byte = new Uint8Array(1);
  const output = (b: number) => {
    byte[0] = b;
    out.write(byte);
  };
  let machine: X86Machine;
  try {
    machine = new X86Machine({
      kernel,
      initrd,
      cmdline: one("append") ?? "console=ttyS0",
      memory,
      cpus: harts,
      disks,
      nets,
      extraDevices: true,
      output,
      onDeviceError: (m) => process.stderr.write(`visor: guest error: ${m}\n`),
      kvmPath,
    });
  } catch (e) {
    closeDisks();
    if (e instanceof BootError) throw new UserError(`${kernelPath}: ${e.message}`);
    throw new UserError((e as Error).message);
  }

  const con = new HostConsole({
    input: (bytes) => {
      machine.input(bytes);
    },
    quit: () => machine.stop({ kind: "quit" }),
    stats: () => printKvmStats(machine.stats(), harts),
  });
  con.start();
  const stop = await machine.run();
  con.stop();
  out.flush();
  if (opts.has("stats")) printKvmStats(machine.stats(), harts);
  closeDisks();
  let code = 0;
  if (stop.kind === "exit") {
    process.stderr.write(
      `visor: vCPU ${stop.vcpu} stopped with KVM exit '${stop.reason}'${stop.reason === "shutdown" ? " (a triple fault)" : ""}${stop.detail ? ` (${stop.detail})` : ""}\n`,
    );
    code = 1;
  } else if (stop.kind === "error") {
    process.stderr.write(`visor: ${stop.message}\n`);
    code = 1;
  }
  // A vCPU thread still inside KVM_RUN (halted with interrupts off, or an AP the guest
  // never started) cannot be interrupted from JavaScript, and Node would wait for it at
  // exit: end the process once the console output is out.
  if (!machine.allThreadsDone) {
    await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
    await new Promise<void>((resolve) => process.stderr.write("", () => resolve()));
    exitProcess(code);
  }
  return code;
}

export function printKvmStats(s: X86Stats, harts: number): void {
  const row = (k: string, v: number) => `${k.padEnd(44)} ${String(v).padStart(10)}`;
  const lines = [
    "",
    `visor stats: accel=kvm  ${harts} vCPU${harts > 1 ? "s" : ""}  ${s.seconds.toFixed(3)} s`,
    "",
  ];
  lines.push(`${"KVM exit reason".padEnd(44)} ${"count".padStart(10)}`);
  for (const [k, v] of [...s.exits].sort((a, b) => b[1] - a[1])) lines.push(row(k, v));
  if (!s.exits.has("hlt")) lines.push(`${row("hlt", 0)}  (HLT waits in the kernel: in-kernel local APIC)`);
  lines.push("", `${"port I/O exits by port".padEnd(44)} ${"count".padStart(10)}`);
  for (const [p, v] of s.ports) lines.push(row(`0x${p.toString(16)}`, v));
  lines.push("", `${"MMIO exits by device".padEnd(44)} ${"count".padStart(10)}`);
  for (const [d, v] of s.mmio) lines.push(row(d, v));
  process.stderr.write(`${lines.join("\n")}\n`);
}
