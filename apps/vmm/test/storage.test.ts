/**
 * Storage through `visor run`: the bundled guest writes to a qcow2 overlay qemu-img made
 * over a raw base and powers off, and qemu-img check and convert find the write; bad
 * images and options fail in one line; --snapshot (QEMU's meaning) leaves the image untouched.
 * Then the overlay switch behind a live backup (snapshotDrive), on drives without a VM.
 *
 * The qemu-img parts skip, with the reason in the name, where qemu-img is not installed
 * (CI installs qemu-utils).
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDiskImage } from "@visor/devices/node";
import { Machine } from "@visor/hypervisor";
import { afterAll, describe, expect, it } from "vitest";
import { snapshotDrive } from "../src/drive-snapshot.ts";
import { Drive, parseDiskSpec, parseNetLimits } from "../src/drives.ts";

const MAIN = join(import.meta.dirname, "../src/main.ts");
const GUEST = join(import.meta.dirname, "../../../guests/riscv64");
const hasQemuImg = spawnSync("qemu-img", ["--version"]).status === 0;
const dir = mkdtempSync(join(tmpdir(), "visor-storage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.INIT_CWD;
  return env;
}

/** Run visor to its end; resolves with its exit status and output. */
function visorRun(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ["--conditions=source", MAIN, "run", ...args], { env: childEnv() });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    c.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    c.stdin.end();
    c.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The guest writes "hello\n" at byte 1024 of /dev/vda, synced, then powers off. */
const WRITE_HELLO = "console=ttyS0 visor.run=echo+hello+|+dd+of=/dev/vda+bs=512+seek=2+conv=notrunc,fsync";

function qemuImg(...args: string[]): string {
  return execFileSync("qemu-img", args, { encoding: "utf8" });
}

describe.skipIf(!hasQemuImg)(
  "visor run with qcow2 (skipped: qemu-img not installed; apt-get install qemu-utils)",
  () => {
    it("the guest writes to an overlay qemu-img made over a raw base; qemu-img check is clean and convert reads the write", async () => {
      const base = join(dir, "base.img");
      const baseBytes = new Uint8Array(4 * MiB).fill(0x2e);
      writeFileSync(base, baseBytes);
      const ov = join(dir, "ov.qcow2");
      qemuImg("create", "-f", "qcow2", "-b", "base.img", "-F", "raw", ov);
      const r = await visorRun(["--disk", ov, "--append", WRITE_HELLO]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const check = spawnSync("qemu-img", ["check", ov], { encoding: "utf8" });
      expect(check.stdout).toContain("No errors were found");
      expect(check.status).toBe(0);
      const out = join(dir, "ov.raw");
      qemuImg("convert", "-O", "raw", ov, out);
      const got = new Uint8Array(readFileSync(out));
      const want = baseBytes.slice();
      want.set(new TextEncoder().encode("hello\n"), 1024);
      expect(Buffer.compare(got.subarray(0, 2048), want.subarray(0, 2048))).toBe(0);
      expect(Buffer.compare(got, want)).toBe(0);
      // the base is untouched
      expect(Buffer.compare(new Uint8Array(readFileSync(base)), baseBytes)).toBe(0);
    }, 120_000);
  },
);

describe("--snapshot and bad disks", () => {
  it("--snapshot (QEMU's meaning) sends writes to a deleted temporary overlay: the image is unchanged after close", () => {
    const img = join(dir, "keep.img");
    const bytes = new Uint8Array(2 * MiB).fill(0x41);
    writeFileSync(img, bytes);
    const before = readdirSync(tmpdir()).filter((f) => f.startsWith(`visor-snapshot-${process.pid}-`));
    const drive = Drive.open(parseDiskSpec(img), { snapshot: true });
    expect(drive.readonly).toBe(false);
    drive.write(1024, new TextEncoder().encode("hello\n"));
    drive.flush();
    const b = new Uint8Array(6);
    drive.read(1024, b);
    expect(new TextDecoder().decode(b)).toBe("hello\n");
    // nothing left behind in the temporary directory, even while the drive is open
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith(`visor-snapshot-${process.pid}-`))).toEqual(
      before,
    );
    // the image itself is only read (a read lock: others may read it too)
    openDiskImage(img, { readonly: true }).close();
    drive.close();
    expect(Buffer.compare(new Uint8Array(readFileSync(img)), bytes)).toBe(0);
  });

  it("refuses a malformed qcow2, the old --snapshot PATH and bad --disk flags, each in one line", async () => {
    const bad = join(dir, "bad.qcow2");
    const hdr = new Uint8Array(512);
    const dv = new DataView(hdr.buffer);
    dv.setUint32(0, 0x514649fb);
    dv.setUint32(4, 3);
    dv.setUint32(20, 16);
    dv.setBigUint64(24, BigInt(MiB));
    dv.setUint32(36, 1);
    dv.setBigUint64(40, 1n << 30n);
    dv.setUint32(100, 104);
    writeFileSync(bad, hdr);
    const cases: [string[], string][] = [
      [["--disk", bad], `visor: --disk ${bad}: L1 table past end of file\n`],
      [
        ["--snapshot", "vm.snap"],
        "visor: --snapshot takes no value: it now means QEMU's -snapshot (discard disk writes at exit); to save the running VM on Ctrl-A W, use --save-to PATH\n",
      ],
      [["--disk", `${bad},bw=fast`], "visor: --disk bw: 'fast' is not a size (examples: 256M, 1G)\n"],
      [
        ["--disk", `${bad},iops=0`],
        "visor: --disk: iops=0 is not a number of operations per second from 1 to 1000000000\n",
      ],
      [
        ["--disk", `${bad},format=vmdk`],
        "visor: --disk: unknown flag 'format=vmdk' (readonly, share-rw, transport=mmio|pci, format=raw|qcow2, bw=SIZE, iops=N)\n",
      ],
      [["--disk", join(dir, "none.qcow2")], `visor: --disk ${join(dir, "none.qcow2")}: no such file\n`],
    ];
    for (const [args, err] of cases) {
      const r = await visorRun(args);
      expect(r.stderr, args.join(" ")).toBe(err);
      expect(r.code, args.join(" ")).toBe(1);
    }
  }, 120_000);
});

describe("the overlay switch (snapshotDrive)", () => {
  it("freezes the image under a new overlay: later writes go to the overlay, the base keeps the moment of the switch", async () => {
    const base = join(dir, "live.img");
    writeFileSync(base, new Uint8Array(2 * MiB));
    const drive = Drive.open(parseDiskSpec(base));
    drive.write(0, new Uint8Array(512).fill(1));
    // a writer holds the image: nobody may read it consistently yet
    expect(() => openDiskImage(base, { readonly: true })).toThrow(/in use by another process/);
    const ov = join(dir, "live-ov.qcow2");
    await snapshotDrive([drive], 0, ov);
    drive.write(512, new Uint8Array(512).fill(2));
    drive.write(0, new Uint8Array(10).fill(3));
    const seen = new Uint8Array(1024);
    drive.read(0, seen);
    expect(seen[0]).toBe(3);
    expect(seen[10]).toBe(1);
    expect(seen[512]).toBe(2);
    // the frozen base: readable by another opener (read lock only), as it was at the switch
    const copy = openDiskImage(base, { readonly: true });
    const b = new Uint8Array(1024);
    copy.read(0, b);
    copy.close();
    expect(b.subarray(0, 512).every((x) => x === 1)).toBe(true);
    expect(b.subarray(512).every((x) => x === 0)).toBe(true);
    // but not writable by anyone else
    expect(() => openDiskImage(base)).toThrow(/in use by another process/);
    // a second switch stacks another overlay on the first
    const ov2 = join(dir, "live-ov2.qcow2");
    await snapshotDrive([drive], 0, ov2);
    drive.write(1024, new Uint8Array(512).fill(4));
    drive.close();
    const reopened = openDiskImage(ov2, { readonly: true });
    const all = new Uint8Array(1536);
    reopened.read(0, all);
    reopened.close();
    expect([all[0], all[10], all[512], all[1024]]).toEqual([3, 1, 2, 4]);
    if (hasQemuImg) {
      expect(spawnSync("qemu-img", ["check", ov]).status).toBe(0);
      expect(spawnSync("qemu-img", ["check", ov2]).status).toBe(0);
    }
  });

  it("refuses a missing disk, an existing overlay path and read-only disks, leaving the drive as it was", async () => {
    const img = join(dir, "ro.img");
    writeFileSync(img, new Uint8Array(MiB));
    const rw = Drive.open(parseDiskSpec(img));
    await expect(snapshotDrive([rw], 1, join(dir, "x.qcow2"))).rejects.toThrow(
      "no disk 1 (the VM has 1 disk)",
    );
    writeFileSync(join(dir, "taken.qcow2"), "x");
    await expect(snapshotDrive([rw], 0, join(dir, "taken.qcow2"))).rejects.toThrow(/already exists/);
    rw.write(0, Uint8Array.of(9)); // still writable: nothing switched
    rw.close();
    const ro = Drive.open(parseDiskSpec(`${img},readonly`));
    await expect(snapshotDrive([ro], 0, join(dir, "y.qcow2"))).rejects.toThrow(/read-only/);
    ro.close();
  });
});

describe.skipIf(!hasQemuImg)(
  "a live backup (skipped: qemu-img not installed; apt-get install qemu-utils)",
  () => {
    it("switches a running guest's disk to an overlay between two of its writes: the base keeps the first, the overlay has both", async () => {
      const base = join(dir, "running.img");
      const baseBytes = new Uint8Array(4 * MiB).fill(0x2e);
      writeFileSync(base, baseBytes);
      const ov = join(dir, "running-ov.qcow2");
      const drives = [Drive.open(parseDiskSpec(base))];
      // The guest writes "one", prints SWITCHNOW (upper-cased by tr, so the kernel's echo of
      // its command line does not match), waits a second, writes "two" and powers off.
      const append =
        "console=ttyS0 visor.run=echo+one+|+dd+of=/dev/vda+bs=512+seek=2+conv=notrunc,fsync+&&+echo+switchnow+|+tr+a-z+A-Z+&&+sleep+1+&&+echo+two+|+dd+of=/dev/vda+bs=512+seek=3+conv=notrunc,fsync";
      let text = "";
      let switched: Promise<void> | undefined;
      const decoder = new TextDecoder();
      const machine = await Machine.create({
        memory: 128 << 20,
        kernel: new Uint8Array(readFileSync(join(GUEST, "Image.gz"))),
        initrd: new Uint8Array(readFileSync(join(GUEST, "initramfs.cpio.gz"))),
        append,
        disks: [{ backend: drives[0]! }],
        console: {
          write(b: Uint8Array) {
            text += decoder.decode(b, { stream: true });
            if (switched === undefined && text.includes("SWITCHNOW")) switched = snapshotDrive(drives, 0, ov);
          },
        },
      });
      expect(await machine.run()).toEqual({ kind: "poweroff" });
      await switched;
      expect(switched).toBeDefined();
      drives[0]!.close();
      const enc = (t: string) => new TextEncoder().encode(t);
      const frozen = new Uint8Array(readFileSync(base));
      const wantBase = baseBytes.slice();
      wantBase.set(enc("one\n"), 1024);
      expect(Buffer.compare(frozen, wantBase)).toBe(0);
      expect(spawnSync("qemu-img", ["check", ov]).status).toBe(0);
      const out = join(dir, "running-ov.raw");
      qemuImg("convert", "-O", "raw", ov, out);
      const wantOv = wantBase.slice();
      wantOv.set(enc("two\n"), 1536);
      expect(Buffer.compare(new Uint8Array(readFileSync(out)), wantOv)).toBe(0);
    }, 120_000);
  },
);

describe("--disk and --net limits", () => {
  it("parses format, bw and iops, and --net's bw and ops", () => {
    const d = parseDiskSpec("/x.qcow2,format=qcow2,bw=10M,iops=100,transport=pci,readonly");
    expect(d).toEqual({
      path: "/x.qcow2",
      readonly: true,
      shareRw: false,
      transport: "pci",
      format: "qcow2",
      limits: { bandwidth: { size: 10 * MiB, refillTimeMs: 1000 }, ops: { size: 100, refillTimeMs: 1000 } },
    });
    expect(parseDiskSpec("/y.img").limits).toBeUndefined();
    expect(parseNetLimits("socket,listen=4444,bw=512K,ops=1000")).toEqual({
      rest: "socket,listen=4444",
      limits: {
        bandwidth: { size: 512 * 1024, refillTimeMs: 1000 },
        ops: { size: 1000, refillTimeMs: 1000 },
      },
    });
    expect(parseNetLimits("socket,connect=h:1")).toEqual({ rest: "socket,connect=h:1" });
  });

  it("refuses bad values in one line", () => {
    const bad: [() => unknown, string][] = [
      [() => parseDiskSpec("/x,bw=0"), "--disk: bw=0 is not a rate from 1 byte to 1024G per second"],
      [() => parseDiskSpec("/x,bw=2048G"), "--disk: bw=2048G is not a rate from 1 byte to 1024G per second"],
      [
        () => parseDiskSpec("/x,iops=1.5"),
        "--disk: iops=1.5 is not a number of operations per second from 1 to 1000000000",
      ],
      [() => parseDiskSpec("/x,share-rw"), "--disk /x: share-rw needs readonly"],
      [() => parseDiskSpec(",readonly"), "--disk: ',readonly' has no image path"],
      [
        () => parseNetLimits("socket,listen=1,ops=-1"),
        "--net: ops=-1 is not a number of operations per second from 1 to 1000000000",
      ],
      [() => parseNetLimits("socket,listen=1,bw=x"), "--net bw: 'x' is not a size (examples: 256M, 1G)"],
    ];
    for (const [f, msg] of bad) expect(f).toThrow(msg);
  });
});
