/** The environment a run happened in: versions, CPU, commit. */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { versionOf } from "./proc.ts";
import type { Environment } from "./types.ts";

function git(repo: string, args: string[]): string | undefined {
  const r = spawnSync("git", ["-C", repo, ...args], { encoding: "utf8", timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? "unknown";
}

export function environment(repo: string, tools: Record<string, string | undefined>): Environment {
  const peers: Record<string, string> = {};
  for (const [name, path] of Object.entries(tools)) {
    if (path === undefined) continue;
    const v = versionOf(path, name === "qemu-riscv64" ? ["-version"] : ["--version"]);
    if (v !== undefined) peers[name] = v;
  }
  const status = git(repo, ["status", "--porcelain", "--untracked-files=no"]);
  return {
    date: new Date().toISOString(),
    commit: git(repo, ["rev-parse", "HEAD"]) ?? "unknown",
    commitDirty: status !== undefined && status.length > 0,
    node: process.version,
    v8: process.versions.v8,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpuModel(),
    cpus: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    peers,
  };
}
