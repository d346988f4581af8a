// The package's shape: no import cycles among its modules, and a `Hart` whose public
// surface is exactly what README.md documents.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GuestRam } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { Hart } from "../src/index.ts";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));

/** Every .ts module under src/ (tests excluded), by path relative to src/. */
function modules(dir = SRC, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...modules(join(dir, e.name), `${prefix}${e.name}/`));
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) out.push(`${prefix}${e.name}`);
  }
  return out;
}

/** Relative imports (type-only ones too: a cycle of types is still a cycle of modules). */
function importsOf(mod: string): string[] {
  const text = readFileSync(join(SRC, mod), "utf8");
  const dir = mod.includes("/") ? mod.slice(0, mod.lastIndexOf("/") + 1) : "";
  const out: string[] = [];
  for (const m of text.matchAll(/(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/g)) {
    const parts = `${dir}${m[1]}`.split("/");
    const norm: string[] = [];
    for (const p of parts) {
      if (p === "." || p === "") continue;
      if (p === "..") norm.pop();
      else norm.push(p);
    }
    out.push(norm.join("/"));
  }
  return out;
}

describe("@visor/cpu modules", () => {
  it("import each other without cycles", () => {
    const mods = modules();
    const graph = new Map(mods.map((m) => [m, importsOf(m)]));
    for (const [m, deps] of graph) for (const d of deps) expect(graph.has(d), `${m} imports ${d}`).toBe(true);
    const state = new Map<string, "visiting" | "done">();
    const cycles: string[] = [];
    const visit = (m: string, path: string[]): void => {
      if (state.get(m) === "done") return;
      if (state.get(m) === "visiting") {
        cycles.push([...path.slice(path.indexOf(m)), m].join(" -> "));
        return;
      }
      state.set(m, "visiting");
      for (const d of graph.get(m) ?? []) visit(d, [...path, m]);
      state.set(m, "done");
    };
    for (const m of mods) visit(m, []);
    expect(cycles).toEqual([]);
  });

  it("keep the hot loop alone in hart.ts, the slow paths in their own modules", () => {
    const lines = (f: string) => readFileSync(join(SRC, f), "utf8").split("\n").length;
    for (const f of [
      "core.ts",
      "mmu.ts",
      "trap.ts",
      "csr-file.ts",
      "amo.ts",
      "hext.ts",
      "system.ts",
      "exit.ts",
    ])
      expect(lines(f), f).toBeGreaterThan(50);
    expect(lines("hart.ts")).toBeLessThan(1600);
  });
});

/** The public members of Hart, as the README's API table lists them. */
const DOCUMENTED = [
  "advancePc",
  "boot",
  "clearRegisters",
  "codeCache",
  "copyRegistersFrom",
  "cycles",
  "debugHook",
  "executedCount",
  "exitMask",
  "flushTlb",
  "fromState",
  "getCsr",
  "getF",
  "getX",
  "hartId",
  "injectVsTrap",
  "instret",
  "interruptPending",
  "jitStats",
  "pc",
  "priv",
  "requestStop",
  "reset",
  "run",
  "setCsr",
  "setF",
  "setIrq",
  "setPending",
  "setPrivilege",
  "setSatp",
  "setX",
  "setXPair",
  "stats",
  "toState",
  "translate",
  "virt",
  "waitForInterrupt",
  "waiting",
  "xHi",
  "xLo",
];

describe("the public Hart", () => {
  it("has exactly the documented members", () => {
    const members = Object.getOwnPropertyNames(Hart.prototype).filter((n) => n !== "constructor");
    expect(members.sort()).toEqual([...DOCUMENTED].sort());
  });

  it("has no public fields (its state lives in the package's core)", () => {
    const h = new Hart({ ram: new GuestRam(0x8000_0000, 1 << 16), bus: noBus });
    // The own properties are the private core and the hart's part of the translator
    // (TypeScript-private, one field each).
    expect(Object.keys(h)).toEqual(["c", "t"]);
  });

  it("is documented member by member in README.md", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    for (const m of DOCUMENTED) expect(readme, m).toMatch(new RegExp(`hart\\.${m}\\b`));
  });
});

const noBus = {
  read: () => -1,
  write: () => false,
  read64: () => undefined,
  write64: () => false,
};
