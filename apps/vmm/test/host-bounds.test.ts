/**
 * What a hostile guest can make the `visor run` process spend, measured on the process
 * itself: the guests of packages/hypervisor/test/fixtures/flood run in a child `visor`
 * whose stdout is a pipe the test does not read, and its peak resident memory (VmHWM in
 * /proc/PID/status) must stay under twice that of the same VMM running a guest that does
 * nothing.
 *
 * Samples are taken at events, not after a time: the idle guest printed READY; the
 * console flood made visor hold the guest (its one-line notice on stderr) and then the
 * test read a fixed amount of output through the pipe, so the guest was held and released
 * many times; the transmit flood's guest printed DONE after every 4 GiB chain came back.
 * While waiting, the child is killed as soon as it passes three times the idle figure
 * (the old code grew to gigabytes here), so a regression fails fast and stays small.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const MAIN = join(import.meta.dirname, "../src/main.ts");
const FLOOD = join(import.meta.dirname, "../../../packages/hypervisor/test/fixtures/flood/bin");
/** The bound the tests check: peak RSS under this many times the idle VMM's. */
const BOUND = 2;
/** Past this many times the idle figure the child is killed at once (a failed test). */
const KILL_AT = 3;
/** Console output the test reads through the pipe while the flood goes on. */
const READ_THROUGH = 8 << 20;
/** How often the child's memory is looked at while waiting for an event. */
const POLL_MS = 20;

const children: ChildProcessWithoutNullStreams[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

function vm(args: string[]): ChildProcessWithoutNullStreams {
  const c = spawn(process.execPath, ["--conditions=source", MAIN, "run", ...args]);
  children.push(c);
  return c;
}

/** Peak resident set of a process, in KiB (VmHWM); 0 once it has exited (a zombie has none). */
function peakKiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m === null ? 0 : Number(m[1]);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * Resolves when `stream` of the child has shown `text`; rejects if the child exits first
 * or its peak memory passes `killAtKiB` (it is killed then).
 */
function event(
  child: ChildProcessWithoutNullStreams,
  stream: "stdout" | "stderr",
  text: string,
  killAtKiB = Number.POSITIVE_INFINITY,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const done = (e?: Error) => {
      clearInterval(poll);
      child[stream].off("data", onData);
      child.off("exit", onExit);
      if (e) reject(e);
      else resolve();
    };
    const onData = (d: Buffer) => {
      seen = (seen + d.toString("latin1")).slice(-4096);
      if (seen.includes(text)) done();
    };
    const onExit = () => done(new Error(`visor exited before '${text}'; saw: ${seen.slice(-300)}`));
    const poll = setInterval(() => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const kib = peakKiB(child.pid!);
      if (kib > killAtKiB) {
        child.kill("SIGKILL");
        done(new Error(`visor grew to ${kib} KiB before '${text}' (killed at ${killAtKiB} KiB)`));
      }
    }, POLL_MS);
    child[stream].on("data", onData);
    child.on("exit", onExit);
  });
}

/** Read exactly `n` bytes of the child's stdout, then stop reading again. */
function readThrough(child: ChildProcessWithoutNullStreams, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (d: Buffer) => {
      got += d.length;
      if (got >= n) {
        child.stdout.off("data", onData);
        child.stdout.pause();
        resolve();
      }
    };
    child.on("exit", () => reject(new Error(`visor exited after ${got} bytes of output`)));
    child.stdout.on("data", onData);
  });
}

/** The idle figure: peak RSS of `visor run` with the idle guest, once it printed READY. */
async function idleKiB(extra: string[]): Promise<number> {
  const c = vm(["--kernel", join(FLOOD, "idle.bin"), "--append", "", "--virt", "off", ...extra]);
  await event(c, "stdout", "READY");
  const kib = peakKiB(c.pid!);
  c.kill("SIGKILL");
  expect(kib).toBeGreaterThan(0);
  return kib;
}

describe("a hostile guest cannot make visor grow", () => {
  let idle = 0;
  beforeAll(async () => {
    idle = await idleKiB([]);
  });

  for (const [how, guest] of [
    ["SBI DBCN, 64 KiB per call", "sbi-flood.bin"],
    ["UART THR, a byte per store", "uart-flood.bin"],
  ] as const) {
    it(`flooding the console (${how}) into a pipe nobody reads`, async () => {
      const c = vm(["--kernel", join(FLOOD, guest), "--append", "", "--virt", "off"]);
      // Nobody reads stdout: visor must hold the guest (and says so once).
      await event(c, "stderr", "the console output is not being read", KILL_AT * idle);
      const held = peakKiB(c.pid!);
      expect(held).toBeGreaterThan(0);
      // Let it through in steps (held, released, held again, many times), then stop reading.
      await readThrough(c, READ_THROUGH);
      const after = peakKiB(c.pid!);
      c.kill("SIGKILL");
      expect(after).toBeGreaterThan(0);
      expect(held).toBeLessThan(BOUND * idle);
      expect(after).toBeLessThan(BOUND * idle);
    });
  }

  it("sending 30 transmit chains of 4 GiB each to virtio-net", async () => {
    const netIdle = await idleKiB(["--net", `socket,listen=127.0.0.1:${await freePort()}`]);
    const c = vm([
      "--kernel",
      join(FLOOD, "net-tx.bin"),
      "--append",
      "",
      "--virt",
      "off",
      "--net",
      `socket,listen=127.0.0.1:${await freePort()}`,
    ]);
    await event(c, "stdout", "DONE", KILL_AT * netIdle);
    const peak = peakKiB(c.pid!);
    c.kill("SIGKILL");
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(BOUND * netIdle);
  });
});
