/// <reference types="node" />
/**
 * Disk image locks between processes: a holder process opens an image with the file
 * backend and waits; a second process (or this one) then tries to open it. Two writers
 * conflict, readers share, a reader and a writer conflict unless the reader is share-rw,
 * and a lock goes away when its holder is killed (the kernel drops it, nothing stale).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { FileBlockBackend, type FileBlockOptions, ImageLockedError } from "../src/node/index.ts";

const dir = mkdtempSync(join(tmpdir(), "visor-lock-"));
const img = join(dir, "disk.img");
writeFileSync(img, new Uint8Array(4096));
const BACKEND = join(import.meta.dirname, "../src/node/file-block-backend.ts");

const holders: ChildProcess[] = [];
afterEach(() => {
  for (const h of holders.splice(0)) if (h.exitCode === null) h.kill("SIGKILL");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Another Node process that opens `img` with `opts` and prints "held" (or its error). */
function holder(opts: FileBlockOptions): Promise<ChildProcess> {
  const code = `
    const { FileBlockBackend } = await import(${JSON.stringify(BACKEND)});
    try { new FileBlockBackend(${JSON.stringify(img)}, ${JSON.stringify(opts)}); console.log("held"); }
    catch (e) { console.log("error: " + e.message); }
    setInterval(() => {}, 1000);`;
  const c = spawn(process.execPath, ["--input-type=module", "-e", code]);
  holders.push(c);
  return new Promise((resolve, reject) => {
    let out = "";
    c.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("held")) resolve(c);
      else if (out.includes("error")) reject(new Error(out.trim()));
    });
    c.on("exit", () => reject(new Error(`holder exited: ${out}`)));
  });
}

function killed(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    c.on("exit", () => resolve());
    c.kill("SIGKILL");
  });
}

describe("disk image locks (QEMU's scheme, kernel OFD locks)", () => {
  it("refuses a second writer in one line; the lock goes away when the holder dies", async () => {
    const h = await holder({});
    expect(() => new FileBlockBackend(img)).toThrow(ImageLockedError);
    expect(() => new FileBlockBackend(img)).toThrow(/^.*disk\.img is in use by another process \(locked\)$/);
    // A reader that does not allow writers is refused too.
    expect(() => new FileBlockBackend(img, { readonly: true })).toThrow(/in use by another process/);
    // A share-rw reader accepts the writer.
    new FileBlockBackend(img, { readonly: true, shareRw: true }).close();
    await killed(h);
    const mine = new FileBlockBackend(img);
    mine.write(0, Uint8Array.of(1));
    mine.close();
    expect(readFileSync(img)[0]).toBe(1);
  }, 30_000);

  it("lets readers share, and keeps a writer out while one reads", async () => {
    const h = await holder({ readonly: true });
    const r = new FileBlockBackend(img, { readonly: true });
    expect(() => new FileBlockBackend(img)).toThrow(/in use by another process \(locked\)/);
    r.close();
    expect(() => new FileBlockBackend(img)).toThrow(/in use by another process/);
    await killed(h);
    new FileBlockBackend(img).close();
  }, 30_000);

  it("conflicts between two opens in one process too, and close() releases", () => {
    const a = new FileBlockBackend(img);
    expect(() => new FileBlockBackend(img)).toThrow(/in use/);
    a.close();
    const b = new FileBlockBackend(img);
    b.close();
    expect(() => new FileBlockBackend(img, { shareRw: true })).toThrow(/share-rw is for read-only disks/);
  });
});
