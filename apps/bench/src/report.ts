/** The Markdown report and its SVG charts. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fmt } from "./stats.ts";
import { barChart } from "./svg.ts";
import type { RunResults, SuiteResult, Table } from "./types.ts";

function cell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

export function markdownTable(t: Table): string {
  const lines: string[] = [];
  if (t.caption) lines.push(`${t.caption}`, "");
  lines.push(`| ${t.head.map(cell).join(" | ")} |`);
  // Right-align columns of numbers, left-align text.
  const numeric = (i: number) =>
    t.rows.length > 0 &&
    t.rows.every((r) =>
      /^[-+]?[\d.,]*\d[\d.,]*(e[-+]?\d+)?(x|%| \(±\d+%\))?$|^-$|^[\d.]+\.\.[\d.]+$/.test(r[i] ?? "-"),
    );
  lines.push(`|${t.head.map((_, i) => (i > 0 && numeric(i) ? "---:" : "---")).join("|")}|`);
  for (const r of t.rows) lines.push(`| ${r.map(cell).join(" | ")} |`);
  return lines.join("\n");
}

function suiteSection(s: SuiteResult, imgDir: string): string {
  const out: string[] = [];
  out.push(`## ${s.title}`, "");
  out.push(`Status: **${s.status}** (${(s.durationMs / 1000).toFixed(0)} s)`, "");
  out.push(s.about, "");
  if (s.notes.length > 0) {
    out.push("Notes:", "");
    for (const n of s.notes) out.push(`- ${n}`);
    out.push("");
  }
  for (const t of s.tables) out.push(markdownTable(t), "");
  for (const c of s.charts) {
    out.push(`![${c.title}](${imgDir}/${c.file})`, "");
    out.push(`*${c.caption}*`, "");
  }
  return out.join("\n");
}

export function environmentTable(r: RunResults): Table {
  const e = r.env;
  const rows: string[][] = [
    ["date", e.date],
    ["commit", `${e.commit}${e.commitDirty ? " (with uncommitted changes)" : ""}`],
    ["mode", r.quick ? "--quick" : "full"],
    ["node / V8", `${e.node} / ${e.v8}`],
    ["OS", e.os],
    ["CPU", `${e.cpuModel}, ${e.cpus} logical CPUs, ${e.memoryGiB} GiB RAM`],
    ["load average at start", e.loadAverage.join(", ")],
  ];
  for (const [k, v] of Object.entries(e.peers)) rows.push([k, v]);
  return { head: ["", "value"], rows };
}

/** The report's Markdown; charts are referenced as `${imgDir}/FILE`. */
export function renderReport(r: RunResults, imgDir = "img"): string {
  const out: string[] = [];
  out.push("# Visor benchmark report", "");
  out.push(
    `Commit \`${r.env.commit.slice(0, 12)}\`${r.env.commitDirty ? " (dirty)" : ""}, ${r.env.date}, ${r.quick ? "`--quick`" : "full"} run, ${(r.durationMs / 1000).toFixed(0)} s. Times are medians of alternating runs (A B A B ...); ± is half the min..max spread relative to the median.`,
    "",
  );
  out.push("## Environment", "", markdownTable(environmentTable(r)), "");
  out.push("## Summary", "");
  out.push(
    markdownTable({
      head: ["suite", "status", "figures", "time"],
      rows: r.suites.map((s) => [
        s.name,
        s.status,
        String(s.figures.length),
        `${(s.durationMs / 1000).toFixed(0)} s`,
      ]),
    }),
    "",
  );
  for (const s of r.suites) out.push(suiteSection(s, imgDir));
  out.push("## All figures", "");
  out.push(
    markdownTable({
      head: ["id", "median", "min", "max", "unit", "runs"],
      rows: r.suites.flatMap((s) =>
        s.figures.map((f) => [f.id, fmt(f.median), fmt(f.min), fmt(f.max), f.unit, String(f.n)]),
      ),
    }),
    "",
  );
  return out.join("\n");
}

/** Write results.json, report.md and img/*.svg into `dir`. */
export function writeReport(dir: string, r: RunResults): { json: string; md: string } {
  mkdirSync(join(dir, "img"), { recursive: true });
  for (const s of r.suites) for (const c of s.charts) writeFileSync(join(dir, "img", c.file), barChart(c));
  const json = join(dir, "results.json");
  writeFileSync(json, `${JSON.stringify(r, null, 1)}\n`);
  const md = join(dir, "report.md");
  writeFileSync(md, renderReport(r));
  return { json, md };
}
