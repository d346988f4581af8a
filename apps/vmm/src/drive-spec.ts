/**
 * The --disk and --net options' flags, parsed (no image is opened here). A module of its
 * own so that `visor run` loads drives.ts, and the disk image code under it, only when it
 * has disks to open.
 */

import type { RateLimiterConfig } from "@visor/devices";
import type { DiskFormat } from "@visor/devices/node";
import { parseSize } from "./args.ts";
import { UserError } from "./errors.ts";
import { userPath } from "./paths.ts";

export interface DriveSpec {
  path: string;
  readonly: boolean;
  shareRw: boolean;
  transport: "mmio" | "pci";
  /** Given with format=; probed from the file otherwise. */
  format?: DiskFormat;
  /** Limits from bw= (bytes per second) and iops= (requests per second). */
  limits?: RateLimiterConfig;
}

const DISK_FLAGS = "readonly, share-rw, transport=mmio|pci, format=raw|qcow2, bw=SIZE, iops=N";

/** Parse one --disk value: PATH[,readonly][,share-rw][,transport=..][,format=..][,bw=..][,iops=..]. */
export function parseDiskSpec(value: string): DriveSpec {
  const [path, ...flags] = value.split(",");
  if (!path) throw new UserError(`--disk: '${value}' has no image path`);
  const spec: DriveSpec = { path: userPath(path), readonly: false, shareRw: false, transport: "mmio" };
  const limits: RateLimiterConfig = {};
  for (const f of flags) {
    const [k, v] = f.includes("=")
      ? [f.slice(0, f.indexOf("=")), f.slice(f.indexOf("=") + 1)]
      : [f, undefined];
    if ((k === "readonly" || k === "ro") && v === undefined) spec.readonly = true;
    else if (k === "share-rw" && v === undefined) spec.shareRw = true;
    else if (k === "transport" && (v === "pci" || v === "mmio")) spec.transport = v;
    else if (k === "format" && (v === "raw" || v === "qcow2")) spec.format = v;
    else if (k === "bw" && v !== undefined) limits.bandwidth = bandwidth(v, "--disk");
    else if (k === "iops" && v !== undefined) limits.ops = operations(v, "--disk", "iops");
    else throw new UserError(`--disk: unknown flag '${f}' (${DISK_FLAGS})`);
  }
  if (spec.shareRw && !spec.readonly) throw new UserError(`--disk ${path}: share-rw needs readonly`);
  if (limits.bandwidth || limits.ops) spec.limits = limits;
  return spec;
}

/** The largest rate accepted: 1024G (1 TiB) per second, or 10^9 operations per second. */
const MAX_BW = 1024 ** 4;
const MAX_OPS = 1e9;

/** bw=SIZE: bytes per second (10M = 10 MiB/s), one second's worth of burst. */
function bandwidth(v: string, flag: string): RateLimiterConfig["bandwidth"] {
  const n = parseSize(v, `${flag} bw`);
  if (n < 1 || n > MAX_BW)
    throw new UserError(`${flag}: bw=${v} is not a rate from 1 byte to 1024G per second`);
  return { size: n, refillTimeMs: 1000 };
}

/** iops=N / ops=N: operations per second, one second's worth of burst. */
function operations(v: string, flag: string, key: string): RateLimiterConfig["ops"] {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > MAX_OPS)
    throw new UserError(`${flag}: ${key}=${v} is not a number of operations per second from 1 to 1000000000`);
  return { size: n, refillTimeMs: 1000 };
}

/**
 * Split rate limits (bw=SIZE, ops=N) off a --net value; the rest goes to the socket
 * backend as before.
 */
export function parseNetLimits(value: string): { rest: string; limits?: RateLimiterConfig } {
  const keep: string[] = [];
  const limits: RateLimiterConfig = {};
  for (const part of value.split(",")) {
    if (part.startsWith("bw=")) limits.bandwidth = bandwidth(part.slice(3), "--net");
    else if (part.startsWith("ops=")) limits.ops = operations(part.slice(4), "--net", "ops");
    else keep.push(part);
  }
  return { rest: keep.join(","), ...(limits.bandwidth || limits.ops ? { limits } : {}) };
}
