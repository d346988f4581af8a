// The package's shape: no import cycles among its modules, and a vCPU that does not know
// the board (vcpu.ts, shadow.ts and snapshot.ts never reach machine.ts; the shadow MMU
// never reaches the Vcpu class).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as hypervisor from "../src/index.ts";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));

/** Every .ts module under src/, by path relative to src/. */
function modules(dir = SRC, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...modules(join(dir, e.name), `${prefix}${e.name}/`));
    else if (e.name.endsWith(".ts")) out.push(`${prefix}${e.name}`);
  }
  return out;
}

/** Relative imports and re-exports (type-only ones too: a cycle of types is still a cycle). */
function importsOf(mod: string): string[] {
  const text = readFileSync(join(SRC, mod), "utf8");
  const dir = mod.includes("/") ? mod.slice(0, mod.lastIndexOf("/") + 1) : "";
  const out: string[] = [];
  for (const m of text.matchAll(/(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/g)) {
    const norm: string[] = [];
    for (const p of `${dir}${m[1]}`.split("/")) {
      if (p === "." || p === "") continue;
      if (p === "..") norm.pop();
      else norm.push(p);
    }
    out.push(norm.join("/"));
  }
  return out;
}

const graph = new Map(modules().map((m) => [m, importsOf(m)]));

/** Every module `from` reaches through its imports, itself excluded unless in a cycle. */
function reachable(from: string): Set<string> {
  const seen = new Set<string>();
  const todo = [...(graph.get(from) ?? [])];
  while (todo.length > 0) {
    const m = todo.pop()!;
    if (seen.has(m)) continue;
    seen.add(m);
    todo.push(...(graph.get(m) ?? []));
  }
  return seen;
}

describe("@visor/hypervisor modules", () => {
  it("import only modules that exist", () => {
    for (const [m, deps] of graph) for (const d of deps) expect(graph.has(d), `${m} imports ${d}`).toBe(true);
  });

  it("import each other without cycles", () => {
    const inCycle = [...graph.keys()].filter((m) => reachable(m).has(m));
    expect(inCycle).toEqual([]);
  });

  it("keep the vCPU, the shadow MMU and the snapshot format away from the machine", () => {
    for (const m of ["vcpu.ts", "vcpu-host.ts", "shadow.ts", "snapshot.ts", "errors.ts", "gstage.ts"])
      expect([...reachable(m)], m).not.toContain("machine.ts");
    for (const m of ["shadow.ts", "snapshot.ts", "vcpu-host.ts"])
      expect([...reachable(m)], m).not.toContain("vcpu.ts");
  });
});

describe("the public API", () => {
  it("still exports GuestError and the vCPU's classes and values from the package index", () => {
    const e = new hypervisor.GuestError("unhandled guest trap");
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("GuestError");
    expect(typeof hypervisor.Machine.create).toBe("function");
    expect(typeof hypervisor.Vcpu.hypervisorMemory).toBe("function");
    expect(typeof hypervisor.ShadowMmu).toBe("function");
  });
});
