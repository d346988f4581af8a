/**
 * The control socket end to end: a real `visor run --api-sock` (the bundled guest, at its
 * shell) driven with real `curl --unix-socket`: describe, pause (the guest's instruction
 * count stands still), stats, snapshot (a file the snapshot loader takes), resume (the
 * shell answers again), a backup by overlay switch (the guest's next write lands in the
 * overlay, the raw image below is unchanged), power-off (visor exits 0 and the socket file is gone). Every
 * answer fits the OpenAPI file.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeSnapshot } from "@visor/hypervisor";
import { afterAll, describe, expect, it } from "vitest";
import { checkResponse } from "./openapi.ts";

const MAIN = join(import.meta.dirname, "../../src/main.ts");
const hasCurl = spawnSync("curl", ["--version"]).status === 0;
const dir = mkdtempSync(join(tmpdir(), "visor-curl-"));
const SOCK = join(dir, "api.sock");
let child: ChildProcessWithoutNullStreams | undefined;
afterAll(() => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** One request with curl; the answer is checked against the OpenAPI file's `route`. */
function curl(method: string, path: string, body?: object, route = path): { status: number; json: unknown } {
  const args = [
    "-sS",
    "--unix-socket",
    SOCK,
    "-X",
    method,
    "-w",
    "\n%{http_code}",
    `http://localhost${path}`,
  ];
  if (body !== undefined) args.push("-H", "Content-Type: application/json", "-d", JSON.stringify(body));
  const r = spawnSync("curl", args, { encoding: "utf8", timeout: 30_000 });
  expect(r.status, r.stderr).toBe(0);
  const cut = r.stdout.lastIndexOf("\n");
  const status = Number(r.stdout.slice(cut + 1));
  const text = r.stdout.slice(0, cut);
  const json = text === "" ? undefined : JSON.parse(text);
  checkResponse(method, route, status, json);
  return { status, json };
}

function waitFor(c: ChildProcessWithoutNullStreams, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(text)) {
        c.stdout.off("data", onData);
        resolve();
      }
    };
    c.stdout.on("data", onData);
    c.on("exit", () => reject(new Error(`visor exited before printing '${text}'`)));
  });
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  // Relative paths are the child's own directory's, not a package manager's INIT_CWD.
  delete env.INIT_CWD;
  delete env.npm_lifecycle_event;
  delete env.npm_execpath;
  return env;
}

describe("visor run --api-sock, driven with curl", () => {
  it("refuses, in one line, a path that holds something other than a stale socket", () => {
    writeFileSync(join(dir, "notes.txt"), "mine");
    const r = spawnSync(process.execPath, ["--conditions=source", MAIN, "run", "--api-sock", "notes.txt"], {
      cwd: dir,
      env: childEnv(),
      encoding: "utf8",
      input: "",
      timeout: 60_000,
    });
    expect(r.stderr).toBe(
      `visor: --api-sock: ${join(dir, "notes.txt")} exists and is not a socket; not replacing it\n`,
    );
    expect(r.status).toBe(1);
    expect(readFileSync(join(dir, "notes.txt"), "utf8")).toBe("mine");
  });

  it.skipIf(!hasCurl)(
    "describe, pause, stats, snapshot, resume, drive overlay switch, power-off (needs curl; skipped without it)",
    async () => {
      const env = childEnv();
      writeFileSync(join(dir, "disk.img"), new Uint8Array(1 << 20));
      const c = spawn(
        process.execPath,
        [
          "--conditions=source",
          MAIN,
          "run",
          "--api-sock",
          "api.sock",
          "--disk",
          "disk.img",
          "--append",
          "console=ttyS0 quiet",
        ],
        { cwd: dir, env },
      );
      child = c;
      let stderr = "";
      c.stderr.on("data", (d) => {
        stderr += d.toString();
      });
      const exited = new Promise<number | null>((r) => c.on("exit", (code) => r(code)));
      await waitFor(c, "/ # ");
      expect(lstatSync(SOCK).mode & 0o777).toBe(0o600);

      const info = curl("GET", "/");
      expect(info.json).toMatchObject({ app_name: "visor", state: "Running", started_by: "boot" });

      expect(curl("PATCH", "/vm", { state: "Paused" }).status).toBe(204);
      expect((curl("GET", "/").json as { state: string }).state).toBe("Paused");
      const before = curl("GET", "/stats").json as { instructions: number };
      const after = curl("GET", "/stats").json as { instructions: number };
      expect(after.instructions).toBe(before.instructions); // paused: not one instruction ran
      expect(curl("PATCH", "/vm", { state: "Paused" })).toEqual({
        status: 409,
        json: { fault_message: "the VM is already paused" },
      });

      const snap = curl("PUT", "/snapshot/create", { snapshot_path: "vm.snap" });
      expect(snap).toEqual({
        status: 200,
        json: { snapshot_path: join(dir, "vm.snap"), size_bytes: expect.any(Number) },
      });
      const state = decodeSnapshot(readFileSync(join(dir, "vm.snap"))).state;
      expect(state.config.memory).toBe(256 << 20);

      expect(curl("PUT", "/snapshot/create", { snapshot_path: 7 }).status).toBe(400);
      expect(curl("POST", "/vm", {}).status).toBe(405);

      expect(curl("PATCH", "/vm", { state: "Resumed" }).status).toBe(204);
      const answered = waitFor(c, "after 42");
      c.stdin.write("echo after $((6*7))\n");
      await answered;
      expect((curl("GET", "/stats").json as { instructions: number }).instructions).toBeGreaterThan(
        after.instructions,
      );

      // A backup of the running disk: the overlay switch. The guest's next write goes to
      // the overlay; the image below stays as it was, so it can be copied meanwhile.
      const route = "/drives/{drive_id}/snapshot";
      expect(curl("PUT", "/drives/disk0/snapshot", { overlay_path: "ov.qcow2" }, route).status).toBe(204);
      expect(readFileSync(join(dir, "ov.qcow2")).subarray(0, 4).toString("latin1")).toBe("QFI\xfb");
      expect(curl("PUT", "/drives/disk0/snapshot", { overlay_path: "ov.qcow2" }, route).status).toBe(400);
      expect(curl("PUT", "/drives/disk9/snapshot", { overlay_path: "x.qcow2" }, route).status).toBe(404);
      const wrote = waitFor(c, "wrote-0it");
      c.stdin.write(
        "echo backup-test | dd of=/dev/vda bs=512 seek=8 conv=notrunc,fsync 2>/dev/null; echo wrote-$((0))it\n",
      );
      await wrote;
      expect(
        readFileSync(join(dir, "disk.img"))
          .subarray(4096, 4107)
          .every((b) => b === 0),
      ).toBe(true);

      expect(curl("PUT", "/actions", { action_type: "PowerOff" }).status).toBe(204);
      expect(await exited).toBe(0);
      expect(existsSync(SOCK)).toBe(false);
      expect(stderr).toMatch(/the VM is paused \(control socket\)/);
      // What the guest wrote after the switch is in the overlay (qcow2 over the raw image).
      const { openDiskImage } = await import("@visor/devices/node");
      const ov = openDiskImage(join(dir, "ov.qcow2"), { readonly: true });
      const got = new Uint8Array(11);
      ov.read(4096, got);
      ov.close();
      expect(new TextDecoder().decode(got)).toBe("backup-test");
    },
    120_000,
  );
});
