/// <reference types="node" />
/**
 * `visor run --accel kvm` on tiny x86-64 guests (kvm-tiny-guest.ts): the boot protocol,
 * long mode, COM1 port I/O, virtio-mmio, the i8042 reset, two vCPUs on two threads, and
 * what a hostile guest can do at the exits. Skipped, saying why, without a usable
 * /dev/kvm.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kvmStatus } from "@visor/kvm";
import { kvmIsPvm } from "@visor/kvm/node";
import { afterAll, describe, expect, it } from "vitest";
import { e820Map, MPTABLE_ADDR, parseBzImage, writeMpTable } from "../src/kvm/boot.ts";
import {
  echoCmdlineGuest,
  hltEchoGuest,
  initrdGuest,
  mmio64Guest,
  mmioReadGuest,
  oddPortGuest,
  smpGuest,
  tinyBzImage,
  tripleFaultGuest,
  virtioBlkGuest,
} from "./kvm-tiny-guest.ts";

const MAIN = join(import.meta.dirname, "../src/main.ts");
const GUEST = join(import.meta.dirname, "../../../guests/x86_64/bzImage");
const status = kvmStatus();
const skip = status.ok ? "" : ` (skipped: ${status.reason})`;
const dir = mkdtempSync(join(tmpdir(), "visor-kvm-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

function visor(args: string[], env: Record<string, string> = {}) {
  const e = { ...process.env, ...env };
  delete e.INIT_CWD;
  const r = spawnSync(process.execPath, ["--conditions=source", MAIN, "run", "--accel", "kvm", ...args], {
    env: e,
    encoding: "latin1",
    input: "",
    timeout: 60_000,
  });
  // On a kvm-pvm host every boot starts with the warning line (tested on its own below).
  const stderr = r.stderr.startsWith(PVM_WARNING) ? r.stderr.slice(r.stderr.indexOf("\n") + 1) : r.stderr;
  return { status: r.status, stdout: r.stdout, stderr, rawStderr: r.stderr };
}

const PVM_WARNING = "visor: warning: this host's KVM is kvm-pvm, not VT-x/AMD-V";

describe("visor run --accel kvm: bad input", () => {
  it("without a usable KVM device: one line saying so, exit 1", () => {
    const r = visor(["--kernel", file("echo", echoCmdlineGuest())], { VISOR_KVM_DEVICE: "/nonexistent/kvm" });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      "visor: KVM is not usable here: open /nonexistent/kvm: No such file or directory (errno 2)\n",
    );
  });

  it("--version and --help answer without touching KVM", () => {
    const v = visor(["--version"], { VISOR_KVM_DEVICE: "/nonexistent/kvm" });
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(/^visor \S+/);
    const h = visor(["--help"], { VISOR_KVM_DEVICE: "/nonexistent/kvm" });
    expect(h.stdout).toMatch(/^usage: visor run --accel kvm/);
  });

  it("another accelerator, a bad --harts or --memory: one line each", () => {
    const k = file("echo", echoCmdlineGuest());
    const tcg = spawnSync(process.execPath, ["--conditions=source", MAIN, "run", "--accel", "tcg"], {
      encoding: "utf8",
      input: "",
    });
    expect(tcg.stderr).toBe("visor: --accel tcg: the only accelerator is kvm\n");
    expect(visor(["--kernel", k, "--memory", "8G"]).stderr).toMatch(/^visor: --memory 8G is above .* 3G\n$/);
    if (status.ok)
      expect(visor(["--kernel", k, "--harts", "0"]).stderr).toMatch(/^visor: --harts 0: give a number/);
  });

  it.skipIf(!status.ok)(`a file that is not a bzImage, or a truncated one: one line${skip}`, () => {
    const r = visor(["--kernel", file("junk", new Uint8Array(8192).fill(7))]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^visor: .*junk: not a bzImage \(no 'HdrS' setup header/);
    expect(r.stderr.split("\n")).toHaveLength(2);
    const img = echoCmdlineGuest();
    img[0x1f1] = 200; // setup sectors past the end
    expect(visor(["--kernel", file("trunc", img)]).stderr).toMatch(/truncated/);
  });
});

describe("boot structures", () => {
  it("parseBzImage refuses a kernel without a 64-bit entry point", () => {
    const img = tinyBzImage([0xf4]);
    img[0x236] = 0;
    expect(() => parseBzImage(img)).toThrow(/no 64-bit entry point/);
  });
  it("the e820 map keeps the MP table out of RAM, and the MP table checksums", () => {
    expect(e820Map(256 << 20)).toEqual([
      { addr: 0, size: MPTABLE_ADDR, type: 1 },
      { addr: MPTABLE_ADDR, size: 0x400, type: 2 },
      { addr: 0x100000, size: (256 << 20) - 0x100000, type: 1 },
    ]);
    const ram = new Uint8Array(1 << 20);
    writeMpTable(ram, 4);
    const sum = (a: number, n: number) => ram.subarray(a, a + n).reduce((s, b) => (s + b) & 0xff, 0);
    expect(new TextDecoder().decode(ram.subarray(MPTABLE_ADDR, MPTABLE_ADDR + 4))).toBe("_MP_");
    expect(sum(MPTABLE_ADDR, 16)).toBe(0);
    const len = ram[MPTABLE_ADDR + 16 + 4]! | (ram[MPTABLE_ADDR + 16 + 5]! << 8);
    expect(sum(MPTABLE_ADDR + 16, len)).toBe(0);
    // entries after the 44-byte header: 4 processors (20 bytes), then 8-byte ones
    const routes = new Map<number, number>();
    for (let o = MPTABLE_ADDR + 16 + 44 + 4 * 20; o < MPTABLE_ADDR + 16 + len; o += 8) {
      if (ram[o] === 3) routes.set(ram[o + 5]!, ram[o + 7]!); // source IRQ -> IOAPIC pin
    }
    expect(routes.get(0)).toBe(2); // the PIT, where KVM delivers it
    expect(routes.has(2)).toBe(false); // the cascade
    expect(routes.get(4)).toBe(4); // COM1
    expect(() => writeMpTable(ram, 60)).toThrow(/too many vCPUs/);
  });
});

describe.skipIf(!status.ok)(`visor run --accel kvm on tiny guests${skip}`, () => {
  it(`warns in one line on a kvm-pvm host, and only there (this host: ${kvmIsPvm() ? "kvm-pvm" : "not kvm-pvm"})`, () => {
    const r = visor(["--kernel", file("echo-pvm", echoCmdlineGuest()), "--append", "console=ttyS0"]);
    expect(r.status).toBe(0);
    expect(r.rawStderr.startsWith(PVM_WARNING)).toBe(kvmIsPvm());
  });

  it("boots through the 64-bit boot protocol: the guest finds --append via boot_params and prints it on COM1, then the i8042 reset ends the VM with status 0", () => {
    const r = visor([
      "--kernel",
      file("echo", echoCmdlineGuest()),
      "--append",
      "console=ttyS0 hello",
      "--stats",
    ]);
    expect(r.stderr).not.toMatch(/visor: /);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^reboot=k panic=-1 .*console=ttyS0 hello\n$/);
    // every byte was a real port-I/O exit, counted per port
    const n = r.stdout.length;
    expect(r.stderr).toMatch(new RegExp(`0x3f8 +${n}\\n`));
    expect(r.stderr).toMatch(/0x64 +1\n/);
  });

  it("loads --initrd high in RAM and tells the kernel where through boot_params", () => {
    const initrd = new TextEncoder().encode(`070701${"x".repeat(0x41 - 6)}`); // 0x41 bytes: 'A'
    const r = visor(["--kernel", file("ird", initrdGuest()), "--initrd", file("initrd", initrd)]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("070701A\n");
  });

  it("announces a virtio-mmio disk on the command line, and the guest reads its magic through an MMIO exit", () => {
    const disk = file("disk.img", new Uint8Array(64 * 1024));
    const echo = visor(["--kernel", file("echo", echoCmdlineGuest()), "--disk", disk]);
    expect(echo.stdout).toContain("virtio_mmio.device=4K@0xd0000000:5");
    const r = visor(["--kernel", file("mmio", mmioReadGuest(0xd000_0000)), "--disk", disk, "--stats"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("virt\n");
    expect(r.stderr).toMatch(/virtio-mmio:virtio-blk +1\n/);
  });

  it("a --disk is readable and writable: a virtio-blk driver in the guest writes sector 1 and reads sector 0 through the virtqueue, with real MMIO exits", () => {
    const data = new Uint8Array(64 * 1024);
    data.set(new TextEncoder().encode("DISKDATA"), 0);
    const disk = file("rw.img", data);
    const r = visor(["--kernel", file("blk", virtioBlkGuest()), "--disk", disk, "--stats"]);
    expect(r.stderr).not.toMatch(/visor: /);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("DISKDATA002\n"); // the sector read, both statuses OK, used.idx 2
    const after = readFileSync(disk);
    expect(new TextDecoder().decode(after.subarray(512, 528))).toBe("KVMWROTEKVMWROTE");
    expect(r.stderr).toMatch(/virtio-mmio:virtio-blk +\d+\n/);
    // read-only: the read works, the write is refused with a status the guest sees
    const ro = file("ro.img", data);
    const rr = visor(["--kernel", file("blk", virtioBlkGuest()), "--disk", `${ro},readonly`]);
    expect(rr.status).toBe(0);
    expect(rr.stdout).toMatch(/^DISKDATA[12]02\n$/);
    expect(readFileSync(ro)).toEqual(Buffer.from(data));
  });

  it("without --disk or --net the first slots hold a virtio-rng (device 4) and a virtio-console (device 3)", () => {
    const echo = visor(["--kernel", file("echo", echoCmdlineGuest())]);
    expect(echo.stdout).toContain("virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6");
    expect(visor(["--kernel", file("id0", mmioReadGuest(0xd000_0008))]).stdout).toBe("\x04\0\0\0\n");
    expect(visor(["--kernel", file("id1", mmioReadGuest(0xd000_1008))]).stdout).toBe("\x03\0\0\0\n");
  });

  it("two vCPUs on two threads: the boot vCPU starts the second with INIT and SIPI, both print", () => {
    const r = visor(["--kernel", file("smp", smpGuest()), "--harts", "2"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("AB\n");
    expect(r.status).toBe(0);
  });

  it("hostile: 4-byte port I/O to the 1-byte UART and to an unmapped port, and an MMIO read of a hole, are guest-visible only", () => {
    const odd = visor(["--kernel", file("odd", oddPortGuest())]);
    expect(odd.status).toBe(0);
    expect(odd.stdout).toBe("Aok\n");
    const hole = visor(["--kernel", file("hole", mmioReadGuest(0xd010_0000))]);
    expect(hole.status).toBe(0);
    expect(hole.stdout).toBe("\xff\xff\xff\xff\n"); // all ones, like a PC bus
    // an 8-byte read of a 4-byte-register device is split: magic "virt", then version 2
    const wide = visor(["--kernel", file("wide", mmio64Guest(0xd000_0000))]);
    expect(wide.status).toBe(0);
    expect(wide.stdout).toBe("virt\x02\0\0\0\n");
  });

  it("hostile: a triple fault stops the VM with a one-line error and status 1", () => {
    const r = visor(["--kernel", file("tf", tripleFaultGuest()), "--harts", "2"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("visor: vCPU 0 stopped with KVM exit 'shutdown' (a triple fault)\n");
  });

  it("console input reaches a guest idling in HLT (interrupt-driven, no polling exits), chunk after chunk; the event loop never froze", async () => {
    const e = { ...process.env };
    delete e.INIT_CWD;
    const kernel = file("hlt", hltEchoGuest());
    const c = spawn(
      process.execPath,
      ["--conditions=source", MAIN, "run", "--accel", "kvm", "--kernel", kernel, "--stats"],
      { env: e },
    );
    let out = "";
    let err = "";
    c.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const waiters: { text: string; resolve: () => void }[] = [];
    c.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      for (const w of waiters.splice(0)) {
        if (out.includes(w.text)) w.resolve();
        else waiters.push(w);
      }
    });
    const seen = (text: string) =>
      new Promise<void>((resolve) => {
        if (out.includes(text)) resolve();
        else waiters.push({ text, resolve });
      });
    const exited = new Promise<number | null>((resolve) => c.on("exit", (code) => resolve(code)));
    await seen(">");
    c.stdin.write("hi");
    await seen(">hi");
    c.stdin.write("yo");
    await seen(">hiyo");
    c.stdin.write("q");
    expect(await exited).toBe(0);
    expect(out).toBe(">hiyoq");
    // 5 bytes in: each costs an LSR read, an RBR read and the echo, plus one LSR read per
    // interrupt; a guest polling the UART would have exited thousands of times instead.
    const io = Number(/\nio +(\d+)\n/.exec(err)?.[1]);
    expect(io).toBeGreaterThan(15);
    expect(io).toBeLessThan(40);
  });
});

/**
 * The bundled Linux guest: it needs the guest (guests/x86_64) and hardware
 * virtualization. Under kvm-pvm (a software hypervisor some nested clouds expose as
 * /dev/kvm) a kernel not built for PVM runs its privileged code in KVM's instruction
 * emulator, which stops it early in boot on an instruction it lacks (XRSTOR, INT3), under
 * visor and QEMU alike (docs/hardware-assist.md).
 */
const linuxSkip = !status.ok
  ? status.reason
  : !existsSync(GUEST)
    ? "no bundled x86-64 guest (guests/x86_64/bzImage)"
    : kvmIsPvm()
      ? "this host's KVM is kvm-pvm, whose instruction emulator stops a kernel not built for PVM early in boot"
      : "";
describe.skipIf(linuxSkip !== "")(
  `the bundled x86-64 Linux guest${linuxSkip ? ` (skipped: ${linuxSkip})` : ""}`,
  () => {
    it("uname -m prints x86_64 and the VM exits 0", () => {
      const r = visor(["--append", "console=ttyS0 visor.run=uname+-m"]);
      expect(r.stdout).toMatch(/^x86_64\r?$/m);
      expect(r.status).toBe(0);
    });
    it("with --harts 2, nproc prints 2", () => {
      const r = visor(["--harts", "2", "--append", "console=ttyS0 visor.run=nproc"]);
      expect(r.stdout).toMatch(/^2\r?$/m);
      expect(r.status).toBe(0);
    });
  },
);
