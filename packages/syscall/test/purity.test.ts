/// <reference types="node" />
/** The core imports no Node module: host access goes through src/host.ts (docs/architecture.md). */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const src = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src");

describe("package layout", () => {
  it("no file outside src/node imports a node: module, or uses console or web-only globals", () => {
    const offenders: string[] = [];
    for (const f of fs.readdirSync(src)) {
      if (!f.endsWith(".ts")) continue;
      const text = fs.readFileSync(path.join(src, f), "utf8");
      const code = text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
      if (/from\s+["']node:|\brequire\(|(?<![.\w])console\.|(?<![.\w])process\./.test(code))
        offenders.push(f);
    }
    expect(offenders).toEqual([]);
  });
});
