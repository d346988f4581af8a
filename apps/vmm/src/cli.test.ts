/**
 * `visor` as a user runs it, in child processes: help, one-line errors with non-zero
 * exit codes for bad input, a bare-metal program's HTIF result as the exit status, and a
 * VM saved with --snapshot that --restore continues.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const MAIN = join(import.meta.dirname, "main.ts");
const ISA = join(import.meta.dirname, "../../../packages/cpu/fixtures/isa/bin");
const dir = mkdtempSync(join(tmpdir(), "visor-vmm-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
      [["run", "--memory", "lots"], /^visor: --memory: 'lots' is not a size/],
      [
        ["run", "--restore", join(dir, "missing.snap")],
        /^visor: cannot read snapshot '.*missing.snap': no such file$/,
      ],
      [["run", "--restore", MAIN], /^visor: --restore .*: snapshot: not a visor snapshot/],
      [["run", "--restore", MAIN, "--memory", "64M"], /^visor: --memory cannot be combined with --restore/],
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
    const a = spawn(process.execPath, ["--conditions=source", MAIN, "run", "--snapshot", snap]);
    await waitFor(a, "stdout", "/ # ");
    a.stdin.write("echo one > /tmp/mark\n");
    await waitFor(a, "stdout", "/ # ");
    a.kill("SIGUSR1"); // what Ctrl-A W does on a terminal
    await waitFor(a, "stderr", "visor: snapshot saved to");
    a.stdin.write("poweroff -f\n");
    expect(await exited(a)).toBe(0);

    const b = spawn(process.execPath, ["--conditions=source", MAIN, "run", "--restore", snap]);
    const done = exited(b);
    // The shell and its files are as they were: /tmp/mark came before the snapshot.
    b.stdin.write("echo restored $(cat /tmp/mark) $((6*7))\n");
    await waitFor(b, "stdout", "restored one 42");
    b.stdin.write("poweroff -f\n");
    expect(await done).toBe(0);
  }, 120_000);
});
