/// <reference types="node" />
/**
 * The root jail across system calls: a guest that holds a directory (a descriptor, its
 * working directory), removes it or renames it away and puts a symlink to a host directory
 * at its path must not reach that host directory with any call.
 *
 * - fixtures/guests/jailbreak.c tries every path-taking call through stale descriptors and
 *   working directories (getdents64, *at calls, link, rename, truncate, fchdir, io_uring,
 *   /proc/self/fd and /proc/self/cwd, execve) against canaries outside the root; the test
 *   checks its report and a snapshot of everything outside the root.
 * - Unit tests of the resolver's held-directory references (vfs.ts) and of the Node host's
 *   own confinement check.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DirRef, LinuxError, Resolver, ROOT_REF } from "../src/index.ts";
import { NodeFs } from "../src/node/index.ts";
import { runGuest } from "./harness.ts";
import { FIXTURES } from "./root.ts";

const CANARY = "CANARY-SECRET\n";
const ENOENT = 2;
const EACCES = 13;

/** Names, sizes, modes, mtimes and symlink targets of everything under `dir` but `skip`. */
export function snapshot(dir: string, skip: string): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    if (p === skip) return;
    const st = fs.lstatSync(p, { bigint: true });
    const link = st.isSymbolicLink() ? ` -> ${fs.readlinkSync(p)}` : "";
    out.push(`${path.relative(dir, p) || "."} ${st.size} ${st.mode.toString(8)} ${st.mtimeNs}${link}`);
    if (st.isDirectory()) for (const e of fs.readdirSync(p).sort()) walk(path.join(p, e));
  };
  walk(dir);
  return out;
}

let base: string;
let root: string;
let outside: string;

function makeTree(): void {
  base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "visor-stale-")));
  root = path.join(base, "root");
  outside = path.join(base, "out");
  fs.mkdirSync(root);
  fs.mkdirSync(path.join(outside, "n2"), { recursive: true });
  fs.writeFileSync(path.join(base, "secret.txt"), CANARY);
  for (const name of [
    "canary.txt",
    "canary-mode.txt",
    "canary-unlink.txt",
    "canary-trunc.txt",
    "canary-rename.txt",
    "canary-unlink-cwd.txt",
    "canary-rename-cwd.txt",
    "n2/canary.txt",
  ]) {
    fs.writeFileSync(path.join(outside, name), CANARY);
  }
  fs.symlinkSync("host-link-target", path.join(outside, "canary-link"));
  const prog = path.join(FIXTURES, "guests", "jailbreak");
  fs.copyFileSync(prog, path.join(root, "jailbreak"));
  fs.chmodSync(path.join(root, "jailbreak"), 0o755);
  // An executable outside: if execve ever runs it, it prints LEAK and exits 0.
  fs.copyFileSync(prog, path.join(outside, "canary-exec"));
  fs.chmodSync(path.join(outside, "canary-exec"), 0o755);
}

beforeAll(makeTree);
afterAll(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

describe("stale directories cannot leave the root", () => {
  it("the hostile guest reads, lists, creates and changes nothing outside", async () => {
    const before = snapshot(base, root);
    const r = await runGuest(root, ["/jailbreak", outside]);
    const after = snapshot(base, root);
    const lines = r.stdout.trim().split("\n");
    expect(lines.filter((l) => !l.startsWith("held ") && !l.startsWith("linux "))).toEqual([
      "attempts 36 leaks 0 wrong 0",
    ]);
    expect(lines.filter((l) => l.startsWith("held "))).toHaveLength(36);
    // Held directories still behave as on Linux (checked natively in a chroot by build.sh).
    expect(lines.filter((l) => l.startsWith("linux ")).every((l) => l.endsWith(" ok"))).toBe(true);
    expect(lines.filter((l) => l.startsWith("linux "))).toHaveLength(5);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(after).toEqual(before);
    // Nothing from outside arrived inside the root either (hard links, renames).
    expect(fs.existsSync(path.join(root, "stolen"))).toBe(false);
    expect(fs.existsSync(path.join(root, "stolen-cwd"))).toBe(false);
    expect(fs.existsSync(path.join(root, "taken.txt"))).toBe(false);
  });
});

describe("held directory references (vfs.ts)", () => {
  const ctx = { exe: () => "/x", fdLink: () => undefined, fdList: () => [] };
  let rroot: string;
  let fsys: NodeFs;
  let res: Resolver;
  const hold = (p: string): DirRef => res.refOf(res.resolve(ctx, ROOT_REF, p, true));
  const errno = (fn: () => unknown): number | undefined => {
    try {
      fn();
    } catch (e) {
      if (e instanceof LinuxError) return e.errno;
      throw e;
    }
    return undefined;
  };

  beforeAll(() => {
    rroot = path.join(base, "unit-root");
    fs.mkdirSync(rroot);
    fsys = new NodeFs(rroot);
    res = new Resolver(fsys);
  });

  it("a directory replaced by a symlink to the host is a deleted directory", () => {
    fs.mkdirSync(path.join(rroot, "d"));
    const d = hold("/d");
    expect(res.resolve(ctx, d, "x", false).kind).toBe("missing");
    fs.rmdirSync(path.join(rroot, "d"));
    fs.symlinkSync(outside, path.join(rroot, "d"));
    expect(res.locate(ctx, d)).toBeUndefined();
    expect(errno(() => res.resolve(ctx, d, "canary.txt", true))).toBe(ENOENT);
    expect(errno(() => res.resolve(ctx, d, ".", true))).toBe(ENOENT);
    // Absolute paths do not depend on the start directory.
    expect(res.resolve(ctx, d, "/d", false).kind).toBe("host");
  });

  it("a directory replaced by another directory at the same path is not the same directory", () => {
    fs.mkdirSync(path.join(rroot, "e"));
    const e = hold("/e");
    // Keep the old inode alive (as the guest's descriptor does) so it cannot be reused.
    const keep = fs.openSync(path.join(rroot, "e"), "r");
    fs.renameSync(path.join(rroot, "e"), path.join(rroot, "e-old"));
    fs.mkdirSync(path.join(rroot, "e"));
    fs.writeFileSync(path.join(rroot, "e", "new.txt"), "x");
    expect(errno(() => res.resolve(ctx, e, "new.txt", true))).toBe(ENOENT);
    e.moved("/e", "/e-old");
    expect(res.resolve(ctx, e, "new.txt", true).kind).toBe("missing");
    fs.closeSync(keep);
  });

  it("an ancestor swapped for a symlink invalidates every reference below it", () => {
    fs.mkdirSync(path.join(rroot, "p/q/r"), { recursive: true });
    const r = hold("/p/q/r");
    fs.renameSync(path.join(rroot, "p"), path.join(rroot, "p-away"));
    fs.mkdirSync(path.join(base, "host-p/q/r"), { recursive: true });
    fs.writeFileSync(path.join(base, "host-p/q/r/canary.txt"), CANARY);
    fs.symlinkSync(path.join(base, "host-p"), path.join(rroot, "p"));
    expect(errno(() => res.resolve(ctx, r, "canary.txt", true))).toBe(ENOENT);
    r.moved("/p", "/p-away");
    expect(res.locate(ctx, r)).toEqual(["p-away", "q", "r"]);
  });

  it("DirRef.moved follows renames of the directory and of its ancestors only", () => {
    const a = new DirRef("/a/b", 1, 2);
    a.moved("/a/bc", "/z");
    expect(a.path).toBe("/a/b");
    a.moved("/a", "/y");
    expect(a.path).toBe("/y/b");
    a.moved("/y/b", "/w");
    expect(a.path).toBe("/w");
  });

  it("property: whatever happens to the start directory between calls, nothing resolves outside", () => {
    const prop = path.join(base, "prop-root");
    fs.mkdirSync(prop);
    const pfs = new NodeFs(prop);
    const pres = new Resolver(pfs);
    const dirs = ["a", "a/b", "a/b/c"];
    const comp = fc.constantFrom("..", ".", "b", "c", "canary.txt", "n2", "x", "a", "up", "out");
    const change = fc.constantFrom(
      "none",
      "rmdir-symlink",
      "rename-symlink",
      "ancestor-symlink",
      "replace-dir",
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...dirs),
        change,
        fc.array(comp, { maxLength: 8 }),
        fc.boolean(),
        (start, what, parts, follow) => {
          fs.rmSync(path.join(prop, "a"), { recursive: true, force: true });
          fs.rmSync(path.join(prop, "moved"), { recursive: true, force: true });
          for (const d of dirs) fs.mkdirSync(path.join(prop, d));
          fs.symlinkSync("..", path.join(prop, "a", "up"));
          fs.symlinkSync(outside, path.join(prop, "a", "out"));
          const ref = pres.refOf(pres.resolve(ctx, ROOT_REF, `/${start}`, true));
          const host = path.join(prop, start);
          switch (what) {
            case "rmdir-symlink":
              fs.rmSync(host, { recursive: true });
              fs.symlinkSync(outside, host);
              break;
            case "rename-symlink":
              fs.renameSync(host, path.join(prop, "moved"));
              fs.symlinkSync(outside, host);
              break;
            case "ancestor-symlink":
              fs.renameSync(path.join(prop, "a"), path.join(prop, "moved"));
              fs.symlinkSync(base, path.join(prop, "a"));
              break;
            case "replace-dir":
              fs.rmSync(host, { recursive: true });
              fs.mkdirSync(host);
              break;
          }
          const p = parts.length === 0 ? "." : parts.join("/");
          let node: ReturnType<Resolver["resolve"]>;
          try {
            node = pres.resolve(ctx, ref, p, follow);
          } catch (e) {
            if (e instanceof LinuxError) return;
            throw e;
          }
          if (what !== "none" && what !== "replace-dir") throw new Error(`stale ${start} resolved ${p}`);
          if (node.kind === "host" || node.kind === "missing") {
            const h = pfs.host(node.kind === "host" ? node.path : node.parent);
            const dir = node.kind === "host" && fs.lstatSync(h).isSymbolicLink() ? path.dirname(h) : h;
            const real = fs.realpathSync(dir);
            expect(real === prop || real.startsWith(`${prop}/`)).toBe(true);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it("the Node host refuses to create, remove, change or list through a path that leaves the root", () => {
    // The kernel never passes such a path; this is the host's own check (defence in depth).
    fs.symlinkSync(outside, path.join(rroot, "swapped"));
    const calls: [string, () => unknown][] = [
      ["mkdir", () => fsys.mkdir("/swapped/made", 0o755)],
      ["create", () => fsys.open("/swapped/made.txt", 0o101 /* O_WRONLY|O_CREAT */, 0o644)],
      ["unlink", () => fsys.unlink("/swapped/canary-unlink.txt")],
      ["rmdir", () => fsys.rmdir("/swapped/n2")],
      ["rename", () => fsys.rename("/swapped/canary-rename.txt", "/taken")],
      ["link", () => fsys.link("/swapped/canary.txt", "/stolen")],
      ["symlink", () => fsys.symlink("x", "/swapped/made-link")],
      ["chmod", () => fsys.chmod("/swapped/canary-mode.txt", 0o777)],
      ["chown", () => fsys.chown("/swapped/canary-mode.txt", 0, 0)],
      ["utimens", () => fsys.utimens("/swapped/canary-mode.txt", 0n, 0n)],
      ["truncate", () => fsys.truncate("/swapped/canary-trunc.txt", 0)],
      ["readdir", () => fsys.readdir("/swapped")],
      ["statfs", () => fsys.statfs("/swapped")],
    ];
    const before = snapshot(base, rroot);
    for (const [name, call] of calls) expect([name, errno(call)]).toEqual([name, EACCES]);
    expect(snapshot(base, rroot)).toEqual(before);
  });
});
