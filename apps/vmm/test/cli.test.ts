/**
 * `visor` as a user runs it, in child processes: help, one-line errors with non-zero
 * exit codes for bad input, a bare-metal program's HTIF result as the exit status, a
 * VM saved with --snapshot that --restore continues, and one live-migrated between two
 * visor processes.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const MAIN = join(import.meta.dirname, "../src/main.ts");
const ISA = join(import.meta.dirname, "../../../packages/cpu/fixtures/isa/bin");
const dir = mkdtempSync(join(tmpdir(), "visor-vmm-"));
const BAD_GZIP = join(dir, "bad.gz");
writeFileSync(BAD_GZIP, Uint8Array.of(0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8));
/** VMs started by a test; whatever a failed test left running is killed at the end. */
const children: ChildProcessWithoutNullStreams[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

function vm(args: string[]): ChildProcessWithoutNullStreams {
  const c = spawn(process.execPath, ["--conditions=source", MAIN, "run", ...args]);
  children.push(c);
  return c;
}

function visor(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--conditions=source", MAIN, ...args], {
    encoding: "utf8",
    input: "",
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Resolves once the child's `stream` output contains `text`. */
function waitFor(
  child: ChildProcessWithoutNullStreams,
  stream: "stdout" | "stderr",
  text: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(text)) {
        child[stream].off("data", onData);
        resolve(seen);
      }
    };
    child[stream].on("data", onData);
    child.on("exit", () => reject(new Error(`exited before printing '${text}'; saw: ${seen.slice(-300)}`)));
  });
}

/** The child's exit status; take it right after spawning so the event cannot be missed. */
function exited(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => child.on("exit", (code) => resolve(code)));
}

describe("visor", () => {
  it("prints its usage", () => {
    const r = visor(["help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("usage: visor [command]");
    expect(r.stdout).toContain("--restore PATH");
  });

  it("refuses bad input in one line with a non-zero status", () => {
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /^visor: unknown command 'frobnicate'/],
      [["run", "--kernel", join(dir, "missing")], /^visor: cannot read kernel '.*missing': no such file$/],
      [["run", "--virt", "sideways"], /^visor: --virt: 'sideways' is not one of nested, shadow, off$/],
      [["run", "--kernel", MAIN], /^visor: kernel: not a RISC-V Linux Image \(bad magic\)$/],
      [["run", "--kernel", BAD_GZIP], /^visor: kernel: corrupt gzip data$/],
      [["run", "--memory", "lots"], /^visor: --memory: 'lots' is not a size/],
      [
        ["run", "--restore", join(dir, "missing.snap")],
        /^visor: cannot read snapshot '.*missing.snap': no such file$/,
      ],
      [["run", "--restore", MAIN], /^visor: --restore .*: snapshot: not a visor snapshot/],
      [["run", "--restore", MAIN, "--memory", "64M"], /^visor: --memory cannot be combined with --restore/],
      [["run", "--migrate-to", "4444"], /^visor: --migrate-to: '4444' is not HOST:PORT$/],
      [
        ["run", "--incoming", "1234", "--kernel", MAIN],
        /^visor: --kernel cannot be combined with --incoming/,
      ],
      [["run", "--incoming", "1234"], /^visor: migration needs --migrate-key FILE/],
      [["run", "--migrate-to", "127.0.0.1:1234"], /^visor: migration needs --migrate-key FILE/],
      [
        ["run", "--incoming", "1234", "--migrate-key", MAIN],
        /^visor: --migrate-key: .* does not hold a hex key/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = visor(args);
      expect(r.stderr.trimEnd().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr.trimEnd(), args.join(" ")).toMatch(message);
      expect(r.status, args.join(" ")).not.toBe(0);
    }
  });

  it("runs a bare-metal program and exits with its HTIF result", () => {
    expect(visor(["run", "--bios", join(ISA, "rv64m.elf")]).status).toBe(0);
    const fail = visor(["run", "--bios", join(ISA, "harness-fail.elf")]);
    expect(fail.stderr).toBe("visor: FAIL test 3\n");
    expect(fail.status).toBe(1);
  });

  it("saves a running VM with --snapshot and continues it with --restore", async () => {
    const snap = join(dir, "vm.snap");
    writeFileSync(snap, "an older file, replaced only by a complete snapshot");
    const a = vm(["--snapshot", snap]);
    const aDone = exited(a);
    await waitFor(a, "stdout", "/ # ");
    a.stdin.write("echo one > /tmp/mark\n");
    await waitFor(a, "stdout", "/ # ");
    const saved = waitFor(a, "stderr", "visor: snapshot saved to");
    a.kill("SIGUSR1"); // what Ctrl-A W does on a terminal
    await saved;
    a.stdin.write("poweroff -f\n");
    expect(await aDone).toBe(0);

    const b = vm(["--restore", snap]);
    const done = exited(b);
    // The shell and its files are as they were: /tmp/mark came before the snapshot.
    b.stdin.write("echo restored $(cat /tmp/mark) $((6*7))\n");
    await waitFor(b, "stdout", "restored one 42");
    b.stdin.write("poweroff -f\n");
    expect(await done).toBe(0);
  }, 120_000);

  it("live-migrates a running VM from one visor to another with --migrate-to and --incoming", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const p = (probe.address() as { port: number }).port;
        probe.close(() => resolve(p));
      });
    });
    // Both sides hold the same pre-shared key: the stream goes over TLS 1.3.
    const key = join(dir, "migrate.key");
    writeFileSync(key, `${"5a".repeat(32)}\n`);
    const dst = vm(["--incoming", String(port), "--migrate-key", key]);
    const dstDone = exited(dst);
    await waitFor(dst, "stderr", "waiting for a migration");
    const received = waitFor(dst, "stderr", "migration received");
    const src = vm(["--migrate-to", `127.0.0.1:${port}`, "--migrate-key", key]);
    const srcDone = exited(src);
    await waitFor(src, "stdout", "/ # ");
    src.stdin.write("echo two > /tmp/mark\n");
    await waitFor(src, "stdout", "/ # ");
    const migrated = waitFor(src, "stderr", "visor: migrated to");
    src.kill("SIGUSR2"); // what Ctrl-A M does on a terminal
    expect(await migrated).toMatch(/rounds while running/);
    expect(await srcDone).toBe(0);
    await received;
    dst.stdin.write("echo moved $(cat /tmp/mark) $((6*7))\n");
    await waitFor(dst, "stdout", "moved two 42");
    dst.stdin.write("poweroff -f\n");
    expect(await dstDone).toBe(0);
  }, 120_000);
});
