/**
 * What the control socket (server.ts, router.ts) can do to a VM: the VmControl interface.
 * visor run implements it over a Machine (machine-control.ts); the router's tests use a
 * fake. Nothing here knows about HTTP: a refusal is an ApiError with the status to send.
 */
import type { VmStats } from "../stats.ts";

/** A refusal the client should see: an HTTP status and a one-line message. */
export class ApiError extends Error {
  override name = "ApiError";
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * Thrown by a drive snapshot function (VmControlOptions.snapshotDrive) for a disk whose
 * format cannot take an overlay: the API answers 501.
 */
export class NotSupportedError extends Error {
  override name = "NotSupportedError";
}

export type VmState = "Running" | "Paused";

export interface DriveInfo {
  drive_id: string;
  path: string;
  readonly: boolean;
  transport: "mmio" | "pci";
}

/** GET / */
export interface InstanceInfo {
  app_name: "visor";
  vmm_version: string;
  /** The process's id, for whoever wants to signal it (Ctrl-A keys have signal twins). */
  pid: number;
  state: VmState;
  /** How this VM came to be here. */
  started_by: "boot" | "restore" | "incoming";
  vm_config: {
    memory_bytes: number;
    harts: number;
    virt: string;
    clock: "host" | "deterministic";
    firmware: boolean;
    jit: string;
    drives: DriveInfo[];
    nets: number;
  };
}

/** GET /migrate */
export interface MigrationStatus {
  /** none: never started here; active; completed (the VM has left); failed (it runs on here). */
  state: "none" | "active" | "completed" | "failed";
  destination?: string;
  /** Of an active migration: copying while the VM runs, or the paused last step. */
  phase?: "connecting" | "copying" | "paused" | "done";
  /** Rounds of copying completed while the VM ran. */
  rounds?: number;
  pages_sent?: number;
  bytes_sent?: number;
  /** Dirty pages the last round counted (what the next round would send). */
  dirty_pages?: number;
  /** The guest's RAM in 4 KiB pages. */
  guest_pages?: number;
  /** Of a completed migration: how long the VM was paused for the last step. */
  downtime_ms?: number;
  /** Of a failed one: why. */
  error?: string;
}

export interface SnapshotResult {
  /** The file written (a relative path given is resolved against visor's directory). */
  snapshot_path: string;
  size_bytes: number;
}

export interface VmControl {
  info(): InstanceInfo;
  /** Stop the vCPUs between two instruction slices (409 if already paused or migrating). */
  pause(): void;
  /** Let them run on (409 if running). */
  resume(): void;
  /** Save the VM to `path` (atomic replace); 409 while a migration runs. */
  snapshot(path: string): SnapshotResult;
  /** Start a live migration to HOST:PORT (409 while one runs; 400 without a security option). */
  migrate(destination: string): MigrationStatus;
  migration(): MigrationStatus;
  stats(): VmStats;
  /** Stop the VM now (as Ctrl-A X): visor run exits 0. */
  powerOff(): void;
  /**
   * Switch a disk to a new overlay whose backing file is the disk's image as it is now,
   * for a consistent backup of the image (404 unknown drive, 501 not supported).
   */
  snapshotDrive(driveId: string, overlayPath: string): Promise<void>;
}
