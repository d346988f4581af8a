// One-line reasons for host files that cannot be opened: what a user sees after the file's
// name when a disk image, a kernel or a snapshot is missing or unreadable.
import { mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fileErrorReason, NodeImageFile, openDiskImage } from "../../src/node/index.ts";

function errorOf(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("no error");
}

describe("fileErrorReason", () => {
  const dir = mkdtempSync(join(tmpdir(), "visor-file-error-"));
  const file = join(dir, "f");
  writeFileSync(file, "x");

  it("names the common errno values in a few words", () => {
    expect(fileErrorReason(errorOf(() => openSync(join(dir, "missing"), "r")))).toBe("no such file");
    expect(fileErrorReason(errorOf(() => openSync(file, "wx")))).toBe("already exists");
    expect(fileErrorReason(errorOf(() => openSync(join(file, "below"), "r")))).toBe(
      "a component of the path is not a directory",
    );
  });

  it("keeps the message of anything else", () => {
    expect(fileErrorReason(new Error("disk on fire"))).toBe("disk on fire");
    expect(fileErrorReason("plain")).toBe("plain");
  });

  it("is the reason the disk backends give, after the path", () => {
    expect(() => openDiskImage(join(dir, "none.img"))).toThrow(`${join(dir, "none.img")}: no such file`);
    expect(() => new NodeImageFile(dir)).toThrow(`${dir}: is a directory`);
    expect(() => new NodeImageFile(join(file, "x"))).toThrow(
      `${join(file, "x")}: a component of the path is not a directory`,
    );
  });
});
