/** Finds every surface in `surfaces/`: one file, one or more surfaces, no list to keep. */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { FuzzSurface } from "./surface.ts";

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "surfaces");

export async function loadSurfaces(): Promise<FuzzSurface[]> {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .sort();
  const out: FuzzSurface[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(path.join(dir, f)).href)) as {
      default: FuzzSurface | FuzzSurface[];
    };
    const list = Array.isArray(mod.default) ? mod.default : [mod.default];
    out.push(...list);
  }
  const seen = new Set<string>();
  for (const s of out) {
    if (seen.has(s.name)) throw new Error(`two fuzz surfaces are named ${s.name}`);
    seen.add(s.name);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
