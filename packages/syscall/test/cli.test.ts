/// <reference types="node" />
/**
 * `visor exec` through execMain in a real child process: exit status pass-through,
 * 128 + signal, stdin/stdout/stderr, clear one-line errors for programs that cannot run,
 * and the --stats report.
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseExecArgs } from "../src/node/cli.ts";
import { FIXTURES, makeRoot } from "./root.ts";

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src", "node", "cli.ts");
let root: string;
/** Node code that runs execMain on its argv and exits with its status. */
const code = `import(${JSON.stringify(cli)}).then((m) => m.execMain(process.argv.slice(1))).then((c) => process.exit(c));`;

function visor(args: string[], input = ""): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(
    process.execPath,
    ["--conditions=source", "--input-type=module", "-e", code, "--", ...args],
    {
      input,
      encoding: "utf8",
      timeout: 60_000,
    },
  );
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "visor-cli-"));
  makeRoot(root);
  fs.writeFileSync(path.join(root, "notelf"), "just text\n", { mode: 0o755 });
  fs.writeFileSync(path.join(root, "noexec"), "#!/bin/sh\necho hi\n", { mode: 0o644 });
  fs.writeFileSync(path.join(root, "script"), '#!/bin/sh\necho "script says $1"\n', { mode: 0o755 });
  // A 64-bit little-endian ELF header for x86-64 (e_machine 62).
  const elf = new Uint8Array(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  const dv = new DataView(elf.buffer);
  dv.setUint16(16, 2, true);
  dv.setUint16(18, 62, true);
  fs.writeFileSync(path.join(root, "x86"), elf, { mode: 0o755 });
  // A riscv64 executable whose program headers lie: e_phoff points far past the file.
  const lying = new Uint8Array(fs.readFileSync(path.join(FIXTURES, "guests", "storeloop")));
  new DataView(lying.buffer).setBigUint64(32, 0x7fffffff00000000n, true);
  fs.writeFileSync(path.join(root, "lying"), lying, { mode: 0o755 });
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe("visor exec", () => {
  it("passes the guest's exit status through", () => {
    const r = visor(["--root", root, "/bin/sh", "-c", "exit 42"]);
    expect(r.status).toBe(42);
  });

  it("exits 128 + signal when the guest is killed", () => {
    expect(visor(["--root", root, "/bin/sh", "-c", "kill -9 $$"]).status).toBe(137);
    expect(visor(["--root", root, "/bin/sh", "-c", "kill -SEGV $$"]).status).toBe(139);
  });

  it("passes stdin, stdout and stderr through, with --env", () => {
    const r = visor(
      ["--root", root, "--env", "GREETING=hi there", "/bin/sh", "-c", 'cat; echo "$GREETING"; echo oops >&2'],
      "from stdin\n",
    );
    expect(r.stdout).toBe("from stdin\nhi there\n");
    expect(r.stderr).toBe("oops\n");
    expect(r.status).toBe(0);
  });

  it("a guest writing to a host pipe whose reader left gets SIGPIPE", () => {
    const r = spawnSync(
      "sh",
      [
        "-c",
        `"$0" --conditions=source --input-type=module -e '${code}' -- --root "$1" /bin/busybox yes | head -2; echo pipeline-done`,
        process.execPath,
        root,
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    expect(r.stdout).toBe("y\ny\npipeline-done\n");
    expect(r.status).toBe(0);
  });

  it("exits when the guest does, while the host pipe on stdin is still open", async () => {
    const child = spawn(
      process.execPath,
      [
        "--conditions=source",
        "--input-type=module",
        "-e",
        code,
        "--",
        "--root",
        root,
        "/bin/sh",
        "-c",
        "read x; echo got $x; exit 7",
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    // One line, and the write end stays open: the guest must not need EOF to finish, and
    // visor must not wait for the writer to close before exiting.
    child.stdin.write("hello\n");
    const status = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    child.stdin.destroy();
    expect(out).toBe("got hello\n");
    expect(status).toBe(7);
  }, 30_000);

  it("runs #! scripts", () => {
    const r = visor(["--root", root, "/script", "arg1"]);
    expect(r.stdout).toBe("script says arg1\n");
  });

  it("reports a missing program in one line", () => {
    const r = visor(["--root", root, "/no/such/program"]);
    expect(r.stderr).toBe(
      `visor exec: /no/such/program: no such file (looked up as ${path.join(root, "no/such/program")}, inside the root ${root})\n`,
    );
    expect(r.status).toBe(127);
  });

  it("reports a non-ELF file in one line", () => {
    const r = visor(["--root", root, "/notelf"]);
    expect(r.stderr).toBe("visor exec: /notelf: not an ELF executable or #! script\n");
    expect(r.status).toBe(126);
  });

  it("reports a wrong-architecture ELF in one line", () => {
    const r = visor(["--root", root, "/x86"]);
    expect(r.stderr).toBe("visor exec: /x86: ELF for x86-64, not riscv64\n");
    expect(r.status).toBe(126);
  });

  it("reports a riscv64 ELF with lying headers in one line", () => {
    const r = visor(["--root", root, "/lying"]);
    expect(r.stderr).toBe("visor exec: /lying: ELF e_phoff out of range\n");
    expect(r.stdout).toBe("");
    expect(r.status).toBe(126);
  });

  it("reports a file without execute permission", () => {
    const r = visor(["--root", root, "/noexec"]);
    expect(r.stderr).toBe("visor exec: /noexec: Permission denied\n");
    expect(r.status).toBe(126);
  });

  it("reports a bad --root and bad usage", () => {
    const r = visor(["--root", path.join(root, "nope"), "/bin/sh"]);
    expect(r.stderr).toBe(`visor exec: --root ${path.join(root, "nope")}: no such directory\n`);
    expect(r.status).toBe(2);
    const u = visor(["--bogus", "/bin/sh"]);
    expect(u.stderr.split("\n")[0]).toBe("visor exec: unknown option --bogus");
    expect(u.status).toBe(2);
  });

  it("--stats lists system calls by name with counts and time, and the traps", () => {
    const r = visor(["--root", root, "--stats", "/bin/sh", "-c", "echo a; echo b; cat /data/tree/top.txt"]);
    expect(r.stdout).toBe("a\nb\ntop of the tree\n");
    expect(r.stderr).toMatch(/traps to the kernel\s+\d+ \(\d+ system calls, \d+ page faults/);
    expect(r.stderr).toMatch(/\n\s+write\s+2\s+0\s+\d+\.\d\d\s+\d+\.\d\n/);
    expect(r.stderr).toMatch(/\n\s+execve\s+1\s+0\s/);
  });

  it("parses options", () => {
    expect(
      parseExecArgs(["--root", "/r", "--env", "A=1", "--env=B=2", "--stats", "prog", "--not-an-option"]),
    ).toEqual({
      root: "/r",
      env: ["A=1", "B=2"],
      stats: true,
      memoryMiB: 1024,
      jit: "on",
      program: "prog",
      args: ["--not-an-option"],
    });
    expect(() => parseExecArgs(["--env", "novalue", "p"])).toThrow("--env wants K=V");
    expect(() => parseExecArgs([])).toThrow("missing PROGRAM");
    expect(parseExecArgs(["--help"]).help).toBe(true);
    expect(parseExecArgs(["--root", "/r", "--version"]).version).toBe(true);
    expect(() => parseExecArgs(["--help=yes"])).toThrow("--help takes no value");
  });

  it("parses --jit MODE and --jit=MODE, and refuses other modes naming the valid ones", () => {
    expect(parseExecArgs(["p"]).jit).toBe("on");
    expect(parseExecArgs(["--jit", "off", "p"]).jit).toBe("off");
    expect(parseExecArgs(["--jit=always", "p"]).jit).toBe("always");
    expect(parseExecArgs(["--jit", "on", "p", "--jit", "off"]).args).toEqual(["--jit", "off"]);
    expect(() => parseExecArgs(["--jit", "fast", "p"])).toThrow(
      "--jit: 'fast' is not one of off, on, always",
    );
    expect(() => parseExecArgs(["--jit=", "p"])).toThrow("--jit: '' is not one of off, on, always");
    expect(() => parseExecArgs(["--jit"])).toThrow("--jit needs a value");
    const r = visor(["--jit", "sometimes", "--root", root, "/bin/sh", "-c", "exit 0"]);
    expect(r.stderr.split("\n")[0]).toBe("visor exec: --jit: 'sometimes' is not one of off, on, always");
    expect(r.stdout).toBe("");
    expect(r.status).toBe(2);
  });

  for (const mode of ["off", "on", "always"]) {
    it(`--jit ${mode} --stats reports the translator's mode and counters`, () => {
      const r = visor([`--jit=${mode}`, "--stats", "--root", root, "/bin/sh", "-c", "echo a | cat"]);
      expect(r.stdout).toBe("a\n");
      expect(r.status).toBe(0);
      // The mode in effect is the one asked for, or "off (asked for MODE); unavailable: why".
      const line = /\n {2}translator {11}(\S+)( \(asked for (\S+)\))?(; unavailable: (.+))?\n/.exec(r.stderr);
      expect(line, r.stderr).not.toBeNull();
      if (line![1] !== mode) {
        expect(line![1]).toBe("off");
        expect(line![3]).toBe(mode);
        expect(line![5]).toBeTruthy();
      }
      expect(r.stderr).toMatch(
        /\n {2}translated {11}\d+ regions, \d+ instructions, in \d+ modules, \d+\.\d ms\n/,
      );
      expect(r.stderr).toMatch(/\n {2}ran translated {7}\d+\.\d% of instructions \(\d+\)\n/);
      expect(r.stderr).toMatch(/\n {2}entered {14}\d+ times from the interpreter\n/);
      expect(r.stderr).toMatch(/\n {2}translations dropped \d+ invalidated, \d+ evicted\n/);
      expect(r.stderr).toMatch(/\n {2}translations live {4}\d+ regions, \d+ bytes of wasm\n/);
      if (mode === "off") expect(r.stderr).toContain("  ran translated       0.0% of instructions (0)\n");
    });
  }

  it("prints its usage with --help; --version needs a version from the caller", () => {
    const help = visor(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: visor exec /);
    expect(help.stdout).toContain("--memory MIB");
    expect(help.stdout).toMatch(/\n {2}--jit MODE {6}binary translation/);
    expect(help.stdout).toContain("on (hot code, the default), off (interpret only), always");
    const version = visor(["--version"]);
    expect(version.stderr).toMatch(/^visor exec: unknown option --version\n/);
    expect(version.status).toBe(2);
  });
});
