/// <reference types="node" />
/**
 * The root jail: no path, "..", or symlink (absolute or relative, made by the host or by
 * the guest) reaches a file outside --root.
 *
 * Layout on the host:
 *   base/secret.txt          the file the guest must never read
 *   base/root/               the guest's "/"
 *   base/root/...            symlinks aimed outside in every way we could think of
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LinuxError, Resolver, ROOT_REF } from "../src/index.ts";
import { NodeFs } from "../src/node/index.ts";
import { runGuest } from "./harness.ts";
import { makeRoot } from "./root.ts";

let base: string;
let root: string;
const SECRET = "TOP-SECRET-CONTENT";

beforeAll(() => {
  base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "visor-jail-")));
  root = path.join(base, "root");
  fs.mkdirSync(root);
  makeRoot(root);
  fs.writeFileSync(path.join(base, "secret.txt"), SECRET);
  fs.mkdirSync(path.join(base, "outside-dir"));
  fs.writeFileSync(path.join(base, "outside-dir", "secret.txt"), SECRET);
  const ln = (target: string, name: string) => fs.symlinkSync(target, path.join(root, name));
  ln("/", "abs-root");
  ln(base, "abs-base"); // an absolute host path: inside the guest it means root/<base>
  ln(path.join(base, "secret.txt"), "abs-secret");
  ln("..", "up");
  ln("../../../../../../../../..", "upup");
  ln("../secret.txt", "up-secret");
  ln("up/up/up/secret.txt", "chain");
  ln("loop-b", "loop-a");
  ln("loop-a", "loop-b");
  ln("self", "self");
  ln("data/..", "dotdot-via-dir");
  fs.mkdirSync(path.join(root, "deep/er"), { recursive: true });
  fs.symlinkSync("../../../secret.txt", path.join(root, "deep/er/rel"));
  fs.symlinkSync("../../../outside-dir", path.join(root, "deep/er/reldir"));
});

afterAll(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

describe("root jail: the guest cannot read outside --root", () => {
  const attempts = [
    "/../secret.txt",
    "/../../../../secret.txt",
    "../secret.txt",
    "/abs-root/../secret.txt",
    "/abs-base/secret.txt",
    "/abs-secret",
    "/up/secret.txt",
    "/upup/secret.txt",
    "/up-secret",
    "/chain",
    "/dotdot-via-dir/../secret.txt",
    "/deep/er/rel",
    "/deep/er/reldir/secret.txt",
    "/data/../../secret.txt",
    "/proc/self/exe/../../../secret.txt",
    "/dev/../../secret.txt",
  ];

  it("every path to the secret fails inside the guest", async () => {
    const script = attempts.map((p) => `cat '${p}' 2>/dev/null && echo "LEAK ${p}"`).join("; ");
    const r = await runGuest(
      root,
      ["/bin/sh", "-c", `${script}; cd /; cd ..; cd ../..; pwd; ls /up | head -3; echo end`],
      {
        env: ["PATH=/bin"],
      },
    );
    expect(r.stdout).not.toContain(SECRET);
    expect(r.stdout).not.toContain("LEAK");
    // ".." at the root stays at the root, and a symlink to ".." lists the root itself.
    expect(r.stdout).toBe("/\nabs-base\nabs-root\nabs-secret\nend\n");
  });

  it("symlink loops end in ELOOP, not a hang", async () => {
    const r = await runGuest(root, ["/bin/sh", "-c", "cat /loop-a; cat /self/x"], { env: ["PATH=/bin"] });
    expect(r.stderr).toBe(
      "cat: can't open '/loop-a': Too many levels of symbolic links\ncat: can't open '/self/x': Too many levels of symbolic links\n",
    );
  });

  it("symlinks and paths the guest creates cannot escape either", async () => {
    const r = await runGuest(
      root,
      [
        "/bin/sh",
        "-c",
        `ln -s ${base}/secret.txt /tmp/mine; ln -s ../../../../.. /tmp/dots; cat /tmp/mine 2>/dev/null || echo no-abs;
         cat /tmp/dots/secret.txt 2>/dev/null || echo no-rel; echo pwned > /up/../../pwned.txt; echo pwned > /tmp/dots/pwned2.txt;
         mkdir -p /tmp/dots/madedir; ls /pwned.txt /pwned2.txt; ln /up-secret /hard; cat /hard 2>/dev/null || echo no-leak-through-hardlink;
         mv /up/../../root /elsewhere 2>/dev/null || echo no-move`,
      ],
      { env: ["PATH=/bin"] },
    );
    expect(r.stdout).toBe("no-abs\nno-rel\n/pwned.txt\n/pwned2.txt\nno-leak-through-hardlink\nno-move\n");
    expect(fs.existsSync(path.join(base, "pwned.txt"))).toBe(false);
    expect(fs.existsSync(path.join(base, "pwned2.txt"))).toBe(false);
    expect(fs.existsSync(path.join(base, "madedir"))).toBe(false);
    expect(fs.readFileSync(path.join(root, "pwned.txt"), "utf8")).toBe("pwned\n");
    expect(fs.existsSync(path.join(root, "madedir"))).toBe(true);
    expect(fs.readFileSync(path.join(base, "secret.txt"), "utf8")).toBe(SECRET);
  });

  it("a program outside the root cannot be executed by any path", async () => {
    fs.copyFileSync(path.join(root, "bin", "busybox"), path.join(base, "outside-busybox"));
    fs.chmodSync(path.join(base, "outside-busybox"), 0o755);
    const r = await runGuest(
      root,
      ["/bin/sh", "-c", "/up/outside-busybox echo LEAK; /../outside-busybox echo LEAK; echo done"],
      {
        env: ["PATH=/bin"],
      },
    );
    expect(r.stdout).toBe("done\n");
  });

  it("resolver property: any mix of components stays under the root", () => {
    const fsys = new NodeFs(root);
    const res = new Resolver(fsys);
    const ctx = { exe: () => "/bin/busybox", fdLink: () => undefined, fdList: () => [] };
    const start = res.refOf(res.resolve(ctx, ROOT_REF, "/deep/er", true));
    const comp = fc.constantFrom(
      "..",
      ".",
      "",
      "up",
      "upup",
      "abs-root",
      "abs-base",
      "abs-secret",
      "up-secret",
      "chain",
      "deep",
      "er",
      "rel",
      "reldir",
      "data",
      "tree",
      "a",
      "secret.txt",
      "dotdot-via-dir",
      "tmp",
    );
    fc.assert(
      fc.property(
        fc.array(comp, { maxLength: 12 }),
        fc.boolean(),
        fc.boolean(),
        (parts, absolute, follow) => {
          const p = (absolute ? "/" : "") + parts.join("/");
          let node: ReturnType<Resolver["resolve"]>;
          try {
            node = res.resolve(ctx, start, p.length === 0 ? "." : p, follow);
          } catch (e) {
            if (e instanceof LinuxError) return; // ENOENT, ENOTDIR, ELOOP ...
            throw e;
          }
          // The canonical guest path has no "." or ".." and maps under the root on the host.
          expect(node.path.startsWith("/")).toBe(true);
          expect(node.path.split("/").includes("..")).toBe(false);
          if (node.kind === "host") {
            const hostPath = fsys.host(node.path);
            // A final symlink is returned only when not following; its own location is inside
            // (where it points is never used by the host without the resolver).
            if (fs.lstatSync(hostPath).isSymbolicLink()) {
              expect(follow).toBe(false);
              expect(fs.realpathSync(path.dirname(hostPath)).startsWith(root)).toBe(true);
              return;
            }
            const real = fs.realpathSync(hostPath);
            expect(real === root || real.startsWith(`${root}/`)).toBe(true);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("the Node host refuses an open that lands outside the root (a racing symlink swap)", () => {
    // The kernel never passes such a path; this checks the host's own /proc/self/fd guard.
    fs.symlinkSync(base, path.join(root, "tmp", "swapped"));
    const fsys = new NodeFs(root);
    let err: unknown;
    try {
      fsys.open("/tmp/swapped/secret.txt", 0, 0).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LinuxError);
    expect((err as LinuxError).errno).toBe(13);
    fs.unlinkSync(path.join(root, "tmp", "swapped"));
  });
});
