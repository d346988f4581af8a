/**
 * pnpm fuzz [SURFACE ...] [--time D] [--seed N] [--random] [--list]
 *
 * Runs each named surface (all when none is named) for D per surface (30s, 5m, 1h; default
 * 60s), prints the inputs run and any invariant that broke with its shrunk input, and exits
 * 1 if one did. By default the run is coverage-guided (guided.ts: a corpus kept under
 * fuzz-results/<surface>/ grows with every input that reaches new code); --random runs
 * fast-check's plain random generation instead, which is faster per input and shrinks
 * failures structurally. Totals are added up in fuzz-results/totals.json over runs.
 */
import fs from "node:fs";
import path from "node:path";
import { Coverage, runGuided } from "./guided.ts";
import { loadSurfaces } from "./registry.ts";
import { runSurface } from "./run.ts";

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s);
  if (!m) throw new Error(`--time takes a duration such as 30s, 5m or 1h, not ${JSON.stringify(s)}`);
  const n = Number(m[1]);
  const unit = m[2] ?? "s";
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!;
}

async function main(argv: string[]): Promise<number> {
  let timeMs = 60_000;
  let seed: number | undefined;
  let list = false;
  let random = false;
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--time") timeMs = parseDuration(argv[++i] ?? "");
    else if (a === "--seed") seed = Number(argv[++i]);
    else if (a === "--list") list = true;
    else if (a === "--random") random = true;
    else if (a === "--help" || a === "-h") {
      console.log("usage: pnpm fuzz [SURFACE ...] [--time D] [--seed N] [--random] [--list]");
      return 0;
    } else if (a.startsWith("-")) throw new Error(`unknown option ${a} (try --help)`);
    else names.push(a);
  }
  // Coverage starts before the surfaces (and the packages they import) are loaded, so V8
  // instruments every function from its first compile.
  const cov = random ? undefined : new Coverage();
  await cov?.start();
  const all = await loadSurfaces();
  if (list) {
    for (const s of all) console.log(`${s.name.padEnd(20)} ${s.description}`);
    return 0;
  }
  for (const n of names) {
    if (!all.some((s) => s.name === n)) {
      throw new Error(`no fuzz surface named ${n}; known: ${all.map((s) => s.name).join(", ")}`);
    }
  }
  const chosen = names.length > 0 ? all.filter((s) => names.includes(s.name)) : all;
  const results = path.resolve(process.env.INIT_CWD ?? process.cwd(), "fuzz-results");
  const totalsFile = path.join(results, "totals.json");
  let totals: Record<string, number> = {};
  try {
    totals = JSON.parse(fs.readFileSync(totalsFile, "utf8")) as Record<string, number>;
  } catch {}
  let failed = 0;
  for (const s of chosen) {
    const r = cov
      ? await runGuided(s, cov, {
          timeMs,
          seed: seed ?? (Math.random() * 2 ** 32) >>> 0,
          dir: path.join(results, s.name),
        })
      : await runSurface(s, { timeMs, ...(seed !== undefined ? { seed } : {}) });
    totals[s.name] = (totals[s.name] ?? 0) + r.inputs;
    const rate = ((r.inputs * 1000) / Math.max(1, r.ms)).toFixed(0);
    const guided = r.corpus !== undefined ? `  corpus ${r.corpus}, ${r.features} new coverage features` : "";
    console.log(
      `${s.name.padEnd(20)} ${String(r.inputs).padStart(9)} inputs  ${rate}/s  ${r.failure ? "FAIL" : "ok"}${guided}`,
    );
    if (r.failure) {
      failed++;
      console.log(`  ${r.failure}`);
    }
  }
  fs.mkdirSync(path.dirname(totalsFile), { recursive: true });
  fs.writeFileSync(totalsFile, `${JSON.stringify(totals, null, 2)}\n`);
  return failed > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`fuzz: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(2);
  },
);
