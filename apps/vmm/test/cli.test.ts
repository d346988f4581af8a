/**
 * `visor` as a user runs it, in child processes: help, one-line errors with non-zero
 * exit codes for bad input, a bare-metal program's HTIF result as the exit status, a
 * VM saved with --save-to that --restore continues, and one live-migrated between two
 * visor processes.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const MAIN = join(import.meta.dirname, "../src/main.ts");
const ISA = join(import.meta.dirname, "../../../packages/cpu/fixtures/isa/bin");
const BUSYBOX = join(import.meta.dirname, "../../../packages/syscall/fixtures/busybox/busybox");
const VERSION = JSON.parse(readFileSync(join(import.meta.dirname, "../package.json"), "utf8")).version;
const dir = mkdtempSync(join(tmpdir(), "visor-vmm-"));
const BAD_GZIP = join(dir, "bad.gz");
writeFileSync(BAD_GZIP, Uint8Array.of(0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8));
/** VMs started by a test; whatever a failed test left running is killed at the end. */
const children: ChildProcessWithoutNullStreams[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The environment for a visor child: this one without what a package manager's script
 * sets (vitest itself may run under pnpm, whose INIT_CWD would move relative paths),
 * plus `extra`.
 */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.INIT_CWD;
  delete env.npm_lifecycle_event;
  delete env.npm_execpath;
  return { ...env, ...extra };
}

function vm(args: string[]): ChildProcessWithoutNullStreams {
  const c = spawn(process.execPath, ["--conditions=source", MAIN, "run", ...args], { env: childEnv() });
  children.push(c);
  return c;
}

function visor(
  args: string[],
  where: { cwd?: string; env?: Record<string, string> } = {},
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--conditions=source", MAIN, ...args], {
    cwd: where.cwd ?? process.cwd(),
    env: childEnv(where.env),
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

/**
 * `visor run --stats` output names the --jit mode asked for (and the one in effect with
 * the reason, when translation is unavailable) and has a line for every counter.
 */
function expectTranslator(stderr: string, mode: string): void {
  const head = /\ntranslator: --jit (\S+)(, in effect (\S+))?( \(unavailable: (.+)\))?\n/.exec(stderr);
  expect(head, stderr).not.toBeNull();
  expect(head![1]).toBe(mode);
  if (head![3] !== undefined) {
    expect(head![3]).toBe("off");
    expect(head![5]).toBeTruthy();
  }
  for (const label of [
    "regions translated",
    "translated instructions",
    "translation time \\(ms\\)",
    "entries from the interpreter",
    "invalidations",
    "evictions",
    "live regions",
    "live bytes \\(wasm\\)",
  ]) {
    expect(stderr).toMatch(new RegExp(`\\n${label} +\\d+(\\.\\d+)?\\n`));
  }
  expect(stderr).toMatch(/\nexecuted translated +(\d+\.\d%|-) {2}\(\d+ of \d+ instructions\)\n/);
  if (mode === "off") expect(stderr).toMatch(/\nexecuted translated +0\.0% {2}\(0 of \d+ instructions\)\n/);
}

/** Everything the child writes to `stream` from now on, in `.text`. */
function collect(child: ChildProcessWithoutNullStreams, stream: "stdout" | "stderr"): { text: string } {
  const out = { text: "" };
  child[stream].on("data", (d: Buffer) => {
    out.text += d.toString();
  });
  return out;
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
    expect(r.stdout).toMatch(/\n {2}--jit on\|off\|always {2}binary translation/);
    expect(visor(["run", "--help"]).stdout).toContain("also with --restore and --incoming");
    expect(visor(["exec", "--help"]).stdout).toMatch(/\n {2}--jit MODE {6}binary translation/);
  });

  it("prints its version with --version, for every command", () => {
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
    for (const args of [["--version"], ["run", "--version"], ["exec", "--version"]]) {
      const r = visor(args);
      expect(r.stdout, args.join(" ")).toBe(`visor ${VERSION}\n`);
      expect(r.stderr, args.join(" ")).toBe("");
      expect(r.status, args.join(" ")).toBe(0);
    }
  });

  it("prints exec's usage with exec --help", () => {
    const r = visor(["exec", "--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: visor exec \[--root DIR\]/);
    expect(r.stdout).toContain("--root DIR");
    expect(r.stderr).toBe("");
  });

  it("says where exec looked for a program it did not find", () => {
    const root = join(dir, "exec-root");
    const user = join(dir, "exec-user");
    mkdirSync(root, { recursive: true });
    mkdirSync(user, { recursive: true });
    writeFileSync(join(user, "prog"), "on the host, outside the root\n", { mode: 0o755 });
    // ./prog is beside the user but not in the root: the message says it is looked up inside --root.
    const outside = visor(["exec", "--root", "../exec-root", "./prog"], { cwd: user });
    expect(outside.stderr).toBe(
      `visor exec: ./prog: no such file in the root ${root} (the program is looked up inside --root; ${join(user, "prog")} is outside it)\n`,
    );
    expect(outside.status).toBe(127);
    // Nowhere at all: the message names the path it resolved to.
    const missing = visor(["exec", "--root", root, "sub/nope"], { cwd: user });
    expect(missing.stderr).toBe(
      `visor exec: sub/nope: no such file (looked up as ${join(root, "sub/nope")}, inside the root ${root})\n`,
    );
    expect(missing.status).toBe(127);
    const noRoot = visor(["exec", "--root", "nonexistent", "./prog"], { cwd: user });
    expect(noRoot.stderr).toBe(`visor exec: --root ${join(user, "nonexistent")}: no such directory\n`);
    expect(noRoot.status).toBe(2);
  });

  it("resolves relative paths against INIT_CWD when a package manager's script started it", () => {
    // The user's directory (INIT_CWD) holds the disk, the firmware and the program; the
    // process's working directory (the repository root under pnpm) holds decoys or nothing.
    const user = join(dir, "init-cwd");
    const other = join(dir, "script-cwd");
    mkdirSync(user, { recursive: true });
    mkdirSync(other, { recursive: true });
    writeFileSync(join(user, "disk.img"), new Uint8Array(64 * 1024));
    copyFileSync(join(ISA, "rv64m.elf"), join(user, "fw.elf"));
    copyFileSync(BUSYBOX, join(user, "echo"));
    writeFileSync(join(other, "echo"), "a decoy: not a program\n", { mode: 0o755 });
    const pnpm = { INIT_CWD: user, npm_lifecycle_event: "visor" };

    const run = visor(["run", "--bios", "fw.elf", "--disk", "disk.img"], { cwd: other, env: pnpm });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    // Without the package manager's variables the same paths are the working directory's.
    const plain = visor(["run", "--bios", "fw.elf", "--disk", "disk.img"], { cwd: other });
    expect(plain.stderr).toBe(`visor: cannot read firmware '${join(other, "fw.elf")}': no such file\n`);
    expect(plain.status).not.toBe(0);
    // INIT_CWD alone (not under a script) is ignored.
    expect(visor(["run", "--bios", "fw.elf"], { cwd: other, env: { INIT_CWD: user } }).status).not.toBe(0);

    // exec: the default root is the user's directory, and so --root's base.
    const exec = visor(["exec", "./echo", "from", "the", "user's", "directory"], { cwd: other, env: pnpm });
    expect(exec.stdout).toBe("from the user's directory\n");
    expect(exec.status).toBe(0);
    const rooted = visor(["exec", "--root", ".", "/echo", "rooted"], { cwd: other, env: pnpm });
    expect(rooted.stdout).toBe("rooted\n");
    expect(rooted.status).toBe(0);
  });

  it("refuses bad input in one line with a non-zero status", () => {
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /^visor: unknown command 'frobnicate'/],
      [["run", "--kernel", join(dir, "missing")], /^visor: cannot read kernel '.*missing': no such file$/],
      [["run", "--virt", "sideways"], /^visor: --virt: 'sideways' is not one of nested, shadow, off$/],
      [["run", "--jit", "fast"], /^visor: --jit: 'fast' is not one of off, on, always$/],
      [["run", "--jit=sometimes"], /^visor: --jit: 'sometimes' is not one of off, on, always$/],
      [["run", "--jit=ON"], /^visor: --jit: 'ON' is not one of off, on, always$/],
      [["run", "--jit"], /^visor: option --jit needs a value$/],
      // --jit is how this host runs the guest, not machine state: it goes with --restore
      // and --incoming (these fail later, for the reasons given).
      [["run", "--restore", MAIN, "--jit", "off"], /^visor: --restore .*: snapshot: not a visor snapshot/],
      [["run", "--incoming", "1234", "--jit=always"], /^visor: migration needs --migrate-key FILE/],
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

  it("refuses a bad exec --jit with its usage error status", () => {
    const r = visor(["exec", "--jit", "fast", "/bin/true"]);
    expect(r.stderr.split("\n")[0]).toBe("visor exec: --jit: 'fast' is not one of off, on, always");
    expect(r.status).toBe(2);
  });

  for (const mode of ["off", "on", "always"]) {
    it(`run --jit ${mode} --stats prints the translator's mode and counters`, () => {
      const r = visor(["run", "--bios", join(ISA, "rv64m.elf"), `--jit=${mode}`, "--stats"]);
      expect(r.status).toBe(0);
      expectTranslator(r.stderr, mode);
    });
  }

  it("exec --jit MODE --stats prints the translator's mode and counters", () => {
    const r = visor(["exec", "--root", dirname(BUSYBOX), "--jit", "always", "--stats", "/busybox", "true"]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/\n {2}translator {11}(always|off \(asked for always\); unavailable: .+)\n/);
    expect(r.stderr).toMatch(
      /\n {2}translated {11}\d+ regions, \d+ instructions, in \d+ modules, \d+\.\d ms\n/,
    );
    expect(r.stderr).toMatch(/\n {2}ran translated {7}\d+\.\d% of instructions \(\d+\)\n/);
  });

  it("runs a bare-metal program and exits with its HTIF result", () => {
    expect(visor(["run", "--bios", join(ISA, "rv64m.elf")]).status).toBe(0);
    const fail = visor(["run", "--bios", join(ISA, "harness-fail.elf")]);
    expect(fail.stderr).toBe("visor: FAIL test 3\n");
    expect(fail.status).toBe(1);
  });

  it("saves a running VM with --save-to and continues it with --restore", async () => {
    const snap = join(dir, "vm.snap");
    writeFileSync(snap, "an older file, replaced only by a complete snapshot");
    const a = vm(["--save-to", snap, "--jit", "always"]);
    const aDone = exited(a);
    await waitFor(a, "stdout", "/ # ");
    a.stdin.write("echo one > /tmp/mark\n");
    await waitFor(a, "stdout", "/ # ");
    const saved = waitFor(a, "stderr", "visor: snapshot saved to");
    a.kill("SIGUSR1"); // what Ctrl-A W does on a terminal
    await saved;
    a.stdin.write("poweroff -f\n");
    expect(await aDone).toBe(0);

    // The mode is the restoring side's own (it is not in the snapshot).
    const b = vm(["--restore", snap, "--jit", "off", "--stats"]);
    const done = exited(b);
    const bErr = collect(b, "stderr");
    // The shell and its files are as they were: /tmp/mark came before the snapshot.
    b.stdin.write("echo restored $(cat /tmp/mark) $((6*7))\n");
    await waitFor(b, "stdout", "restored one 42");
    b.stdin.write("poweroff -f\n");
    expect(await done).toBe(0);
    expectTranslator(bErr.text, "off");
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
    const dst = vm(["--incoming", String(port), "--migrate-key", key, "--jit=off", "--stats"]);
    const dstDone = exited(dst);
    const dstErr = collect(dst, "stderr");
    await waitFor(dst, "stderr", "waiting for a migration");
    const received = waitFor(dst, "stderr", "migration received");
    const src = vm(["--migrate-to", `127.0.0.1:${port}`, "--migrate-key", key, "--jit=always"]);
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
    expectTranslator(dstErr.text, "off");
  }, 120_000);
});
