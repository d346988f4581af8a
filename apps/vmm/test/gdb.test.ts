/**
 * The gdb stub end to end: Debian's gdb-multiarch in batch mode against `visor run
 * --bios` with a bare-metal ELF (fixtures/gdb/bare.c) and against `visor exec` with a
 * static Linux program (fixtures/gdb/prog.c), both started with `--gdb 0 --paused`;
 * and a hostile client on the real socket. The programs are committed with their
 * sources (fixtures/gdb/build.sh). CI installs gdb-multiarch (.ci/run); elsewhere the
 * gdb tests are skipped when it is missing.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const MAIN = join(import.meta.dirname, "../src/main.ts");
const BIN = join(import.meta.dirname, "fixtures/gdb/bin");
const BUSYBOX_DIR = join(import.meta.dirname, "../../../packages/syscall/fixtures/busybox");
const hasGdb = spawnSync("gdb-multiarch", ["--version"], { stdio: "ignore" }).status === 0;
/** In CI gdb-multiarch is installed by .ci/run: there a missing gdb fails instead of skipping. */
const runGdbTests = hasGdb || process.env.CI !== undefined;

const children: ChildProcessWithoutNullStreams[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.INIT_CWD;
  return env;
}

interface Started {
  child: ChildProcessWithoutNullStreams;
  port: number;
  stdout: () => string;
  stderr: () => string;
  status: Promise<number | null>;
}

/** Start visor with `args` and wait for the stub's "listening on HOST:PORT" line. */
async function startVisor(args: string[]): Promise<Started> {
  const child = spawn(process.execPath, ["--conditions=source", MAIN, ...args], { env: childEnv() });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  const status = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr.on("data", (d) => {
      err += d;
      const m = /gdb stub listening on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) resolve(Number(m[1]));
    });
    child.on("close", () => reject(new Error(`visor ended before listening: ${err}`)));
  });
  return { child, port, stdout: () => out, stderr: () => err, status };
}

/** gdb-multiarch -batch with `commands` against the stub on `port`. */
async function gdb(port: number, program: string, commands: string[]): Promise<string> {
  const args = [
    "-nx",
    "-batch",
    "-ex",
    "set architecture riscv:rv64",
    "-ex",
    `target remote 127.0.0.1:${port}`,
  ];
  for (const c of commands) args.push("-ex", c);
  args.push(program);
  // from the sources' directory: the debug information names them relative to it
  const g = spawn("gdb-multiarch", args, { env: childEnv(), cwd: join(BIN, "..") });
  let out = "";
  g.stdout.on("data", (d) => {
    out += d;
  });
  g.stderr.on("data", (d) => {
    out += d;
  });
  await new Promise((r) => g.on("close", r));
  return out;
}

describe("visor's gdb stub", () => {
  it.skipIf(!runGdbTests)(
    "visor run --bios: break main, stepi, a register, a watchpoint, continue to the end (needs gdb-multiarch)",
    async () => {
      const elf = join(BIN, "bare.elf");
      const v = await startVisor(["run", "--bios", elf, "--gdb", "0", "--paused"]);
      const out = await gdb(v.port, elf, [
        "break main",
        "continue",
        "stepi",
        "info registers pc",
        "watch counter",
        "continue",
        "delete",
        "info registers priv",
        "continue",
      ]);
      expect(out).toMatch(/Breakpoint 1, main \(\) at (\.\/)?bare\.c:17\n17\s+long sum = 0;/);
      expect(out).toMatch(/^pc\s+0x8000[0-9a-f]{4}\s+0x8000[0-9a-f]{4} <main\+\d+>$/m);
      expect(out).toMatch(/Old value = 0\s+New value = 1/);
      expect(out).toMatch(/priv\s+0x3\s+prv:3 \[Machine\]/);
      expect(out).toContain("exited normally");
      expect(await v.status).toBe(0);
    },
    60_000,
  );

  it.skipIf(!runGdbTests)(
    "visor exec: break main in a static Linux program, step, registers, continue to its exit (needs gdb-multiarch)",
    async () => {
      const v = await startVisor(["exec", "--root", BIN, "--gdb", "0", "--paused", "/prog"]);
      const out = await gdb(v.port, join(BIN, "prog"), [
        "break main",
        "continue",
        "stepi",
        "info registers pc",
        "next",
        "next",
        "info locals",
        "continue",
      ]);
      expect(out).toMatch(/Breakpoint 1, main \(\) at (\.\/)?prog\.c:15\n15\s+long sum = 0;/);
      expect(out).toMatch(/^pc\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <main\+\d+>$/m);
      expect(out).toMatch(/i = 1\s+sum = 1/);
      expect(out).toContain("exited normally");
      expect(await v.status).toBe(0);
      expect(v.stdout()).toBe("sum 385\n");
    },
    60_000,
  );

  it("survives a hostile client on its socket; the program runs on when it leaves", async () => {
    const v = await startVisor(["exec", "--root", BIN, "--gdb", "0", "--paused", "/prog"]);
    const replies = await new Promise<string>((resolve) => {
      const s = connect(v.port, "127.0.0.1");
      let got = "";
      s.on("data", (d) => {
        got += d.toString("latin1");
      });
      s.on("connect", () => {
        s.write("$g#00"); // bad checksum
        s.write(`$${"m".repeat(100_000)}#00`); // overlong
        s.write(
          "$mffffffffffffffff,ffffffff#00".replace("#00", `#${checksum("mffffffffffffffff,ffffffff")}`),
        );
        s.write(`$m10000,zz#${checksum("m10000,zz")}`);
        setTimeout(() => s.end(), 500);
      });
      s.on("close", () => resolve(got));
    });
    expect(replies).toContain("-");
    expect(replies).toContain("$E01#a6");
    expect(replies).toContain("$E14#aa");
    expect(await v.status).toBe(0);
    expect(v.stdout()).toBe("sum 385\n");
  }, 60_000);

  it("cuts off a client that floods requests without reading the replies", async () => {
    const v = await startVisor(["exec", "--root", BIN, "--gdb", "0", "--paused", "/prog"]);
    const s = connect(v.port, "127.0.0.1");
    s.pause(); // never reads: the replies pile up on visor's side
    const m = `$m10000,3fff#${checksum("m10000,3fff")}`;
    // 20 000 requests for 16 KiB replies: 320 MiB if nothing stopped it
    s.on("connect", () => {
      for (let i = 0; i < 40; i++) s.write(m.repeat(500));
    });
    for (let i = 0; i < 3000 && !v.stderr().includes("does not read its replies"); i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(v.stderr()).toContain("does not read its replies");
    s.destroy();
    // the client gone, the program runs on to its end
    expect(await v.status).toBe(0);
    expect(v.stdout()).toBe("sum 385\n");
  }, 60_000);

  it("stops a running program at Ctrl-C (0x03) and kills it with k", async () => {
    // not --paused: the shell loops until gdb connects, which stops it
    const v = await startVisor([
      "exec",
      "--root",
      BUSYBOX_DIR,
      "--gdb",
      "0",
      "/busybox",
      "sh",
      "-c",
      "while :; do :; done",
    ]);
    const s = connect(v.port, "127.0.0.1");
    let got = "";
    s.on("data", (d) => {
      got += d.toString("latin1");
    });
    const waitFor = async (re: RegExp) => {
      for (let i = 0; i < 3000 && !re.test(got); i++) await new Promise((r) => setTimeout(r, 5));
      const m = re.exec(got);
      got = "";
      return m?.[0];
    };
    const send = (p: string) => s.write(`$${p}#${checksum(p)}`);
    send("?");
    expect(await waitFor(/\$T02thread:[0-9a-f]+;#/)).toBeDefined();
    send("c");
    await new Promise((r) => setTimeout(r, 300));
    expect(got.replace(/\+/g, "")).toBe(""); // running: no stop reply yet
    s.write(Uint8Array.of(3));
    expect(await waitFor(/\$T02thread:[0-9a-f]+;#/)).toBeDefined();
    send("k");
    expect(await v.status).toBe(128 + 9); // SIGKILL
    s.destroy();
  }, 60_000);

  it("a --paused program that gdb never attached to still ends on Ctrl-C (SIGINT)", async () => {
    const v = await startVisor(["exec", "--root", BIN, "--gdb", "0", "--paused", "/prog"]);
    v.child.kill("SIGINT");
    expect(await v.status).toBe(128 + 2);
    expect(v.stdout()).toBe("");
  }, 60_000);

  it("refuses --paused without --gdb and a bad --gdb address with one line", () => {
    const env = childEnv();
    for (const [args, msg] of [
      [["run", "--bios", join(BIN, "bare.elf"), "--paused"], "--paused needs --gdb"],
      [["run", "--bios", join(BIN, "bare.elf"), "--gdb", "x:y"], "--gdb: 'x:y' is not [HOST:]PORT"],
      [["exec", "--paused", "/prog"], "--paused needs --gdb"],
      [["exec", "--gdb", "99999", "/prog"], "--gdb: '99999' is not [HOST:]PORT"],
    ] as const) {
      const r = spawnSync(process.execPath, ["--conditions=source", MAIN, ...args], {
        env,
        encoding: "utf8",
      });
      expect(r.status, args.join(" ")).not.toBe(0);
      expect(r.stderr).toContain(msg);
      expect(r.stderr.trim().split("\n")[0]).toContain(msg);
    }
  });
});

function checksum(s: string): string {
  let sum = 0;
  for (const c of s) sum += c.charCodeAt(0);
  return (sum & 0xff).toString(16).padStart(2, "0");
}
