/**
 * VmControl over a running Machine: what visor run's control socket (and its Ctrl-A W and
 * Ctrl-A M keys) do to the VM. One object holds the VM's pause and its migration, so the
 * socket and the keys cannot step on each other.
 *
 * Pausing holds the machine's run loop between two instruction slices (Machine.pause):
 * the event loop goes on (the console, this socket, a migration stream), no guest
 * instruction runs. Requests are served from the event loop while the run loop waits on
 * the host, so a snapshot is always taken between slices, paused or not.
 */
import type net from "node:net";
import { type Machine, type MigrationProgress, migrate } from "@visor/hypervisor";
import type { MigrationSecurity } from "@visor/hypervisor/node";
import { writeFileAtomic } from "../atomic-write.ts";
import { parseHostPort } from "../host-port.ts";
import { userPath, versionLine } from "../paths.ts";
import { type VmStats, vmStats } from "../stats.ts";
import {
  ApiError,
  type DriveInfo,
  type InstanceInfo,
  type MigrationStatus,
  NotSupportedError,
  type SnapshotResult,
  type VmControl,
} from "./control.ts";

export interface MachineControlOptions {
  machine: Machine;
  startedBy: InstanceInfo["started_by"];
  /** The --disk images, in order (drive ids disk0, disk1, ...). */
  drives: { path: string; readonly: boolean; transport: "mmio" | "pci" }[];
  /** How a migration is secured (the command line's options); none: migration is refused. */
  security: MigrationSecurity | undefined;
  timeoutMs: number;
  /** Once a migration has sent everything: flush and let go of the disks, for the receiver. */
  releaseDisks(): void;
  /**
   * Switch disk `index` to a new overlay at `overlayPath` (absolute) whose backing file is
   * the disk's image as it is now; throws NotSupportedError for a disk that cannot. Not
   * given: every disk answers 501.
   */
  snapshotDrive?: (index: number, overlayPath: string) => Promise<void>;
  /** One line for the user (visor run writes it to stderr). */
  log(line: string): void;
}

export class MachineControl implements VmControl {
  private readonly o: MachineControlOptions;
  private readonly m: Machine;
  /** Lets the run loop go on; set while paused. */
  private unpause: (() => void) | undefined;
  /** What is in progress, that pausing, snapshots and migrations must wait for. */
  private busy: string | undefined;
  private status: MigrationStatus = { state: "none" };
  private task: Promise<void> | undefined;
  private readonly t0 = performance.now();

  constructor(opts: MachineControlOptions) {
    this.o = opts;
    this.m = opts.machine;
  }

  get paused(): boolean {
    return this.unpause !== undefined;
  }

  info(): InstanceInfo {
    const c = this.m.configState;
    return {
      app_name: "visor",
      vmm_version: versionLine().replace(/^visor /, ""),
      pid: process.pid,
      state: this.paused ? "Paused" : "Running",
      started_by: this.o.startedBy,
      vm_config: {
        memory_bytes: c.memory,
        harts: c.harts,
        virt: c.virt,
        clock: c.clock,
        firmware: c.firmware,
        jit: this.m.jit,
        drives: this.drives(),
        nets: c.nets,
      },
    };
  }

  pause(): void {
    this.mustRun("pause");
    if (this.paused) throw new ApiError(409, "the VM is already paused");
    this.unpause = this.m.pause();
    this.o.log("the VM is paused (control socket)");
  }

  resume(): void {
    this.mustLive();
    if (this.unpause === undefined) throw new ApiError(409, "the VM is not paused");
    this.letGo();
    this.o.log("the VM runs on (control socket)");
  }

  snapshot(path: string): SnapshotResult {
    this.mustRun("snapshot");
    const file = userPath(path);
    let bytes: Uint8Array;
    try {
      bytes = this.m.snapshot();
    } catch (e) {
      throw new ApiError(400, (e as Error).message);
    }
    try {
      // Beside the target, fsync'ed and renamed over it: a failed save leaves the old file.
      writeFileAtomic(file, bytes);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new ApiError(400, `snapshot not saved: cannot write ${file} (${err.code ?? err.message})`);
    }
    return { snapshot_path: file, size_bytes: bytes.length };
  }

  migrate(destination: string): MigrationStatus {
    this.mustLive();
    if (this.busy !== undefined) throw new ApiError(409, `${this.busy}; not migrating`);
    let addr: { host: string; port: number };
    try {
      addr = parseHostPort(destination, "destination", false);
    } catch (e) {
      throw new ApiError(400, (e as Error).message);
    }
    const security = this.o.security;
    if (security === undefined) {
      throw new ApiError(
        400,
        "migration needs --migrate-key FILE, --tls-cert/--tls-key/--tls-ca or --migrate-insecure on visor run's command line",
      );
    }
    const where = `${addr.host}:${addr.port}`;
    this.busy = "a migration is in progress";
    this.status = { state: "active", destination: where, phase: "connecting" };
    this.o.log(`migrating to ${where} ...`);
    this.task = this.migrateTo(addr, where, security);
    return this.migration();
  }

  migration(): MigrationStatus {
    return { ...this.status };
  }

  stats(): VmStats {
    return vmStats(this.m, (performance.now() - this.t0) / 1000);
  }

  powerOff(): void {
    this.m.stop();
    // A paused run loop must wake to see that it is stopped.
    this.letGo();
  }

  async snapshotDrive(driveId: string, overlayPath: string): Promise<void> {
    const drives = this.drives();
    const index = drives.findIndex((d) => d.drive_id === driveId);
    if (index < 0) {
      const known = drives.length > 0 ? drives.map((d) => d.drive_id).join(", ") : "none";
      throw new ApiError(404, `no drive '${driveId}' (drives: ${known})`);
    }
    this.mustRun("switch a drive to an overlay");
    const fn = this.o.snapshotDrive;
    const unsupported = `${driveId}: switching to an overlay is not supported for this disk (${drives[index]!.path})`;
    if (fn === undefined) throw new ApiError(501, unsupported);
    const file = userPath(overlayPath);
    // No guest instruction runs (and so no disk request starts) until the switch is made.
    const hold = this.paused ? undefined : this.m.pause();
    this.busy = `a drive snapshot of ${driveId} is in progress`;
    try {
      await fn(index, file);
    } catch (e) {
      if (e instanceof NotSupportedError) throw new ApiError(501, `${unsupported}: ${e.message}`);
      throw new ApiError(400, `${driveId}: overlay not made: ${(e as Error).message}`);
    } finally {
      this.busy = undefined;
      hold?.();
    }
    this.o.log(`${driveId} now writes to the overlay ${file}`);
  }

  /** Resolves once a migration in progress has ended, sent or failed. */
  async settled(): Promise<void> {
    await this.task;
  }

  private async migrateTo(
    addr: { host: string; port: number },
    where: string,
    security: MigrationSecurity,
  ): Promise<void> {
    let sock: net.Socket | undefined;
    try {
      const { connectMigration } = await import("@visor/hypervisor/node");
      sock = await connectMigration(addr, security, this.o.timeoutMs);
      const stats = await migrate(this.m, socketSender(sock), {
        onProgress: (p) => this.progress(where, p),
      });
      // The VM has stopped here (and a paused run loop must wake to see it). Let go of its
      // disks (flushed, unlocked) before the stream ends, so the receiver can take them.
      this.letGo();
      this.o.releaseDisks();
      await new Promise<void>((r) => sock!.end(r));
      this.status = { ...this.status, state: "completed", phase: "done", downtime_ms: stats.downtimeMs };
      const mib = (stats.bytes / 2 ** 20).toFixed(1);
      this.o.log(
        `migrated to ${where}: ${stats.rounds} rounds while running, ${mib} MiB, paused ${stats.downtimeMs.toFixed(0)} ms for the last ${stats.finalPages} pages`,
      );
    } catch (e) {
      sock?.destroy();
      const msg = (e as Error).message;
      this.status = { ...this.status, state: "failed", error: msg };
      delete this.status.phase;
      this.o.log(`migration to ${where} failed: ${msg}; the VM runs on here`);
    } finally {
      this.busy = undefined;
    }
  }

  private progress(where: string, p: MigrationProgress): void {
    this.status = {
      state: "active",
      destination: where,
      phase: p.phase,
      rounds: p.rounds,
      pages_sent: p.pages,
      bytes_sent: p.bytes,
      dirty_pages: p.dirtyPages,
      guest_pages: p.guestPages,
    };
  }

  private drives(): DriveInfo[] {
    return this.o.drives.map((d, i) => ({ drive_id: `disk${i}`, ...d }));
  }

  private letGo(): void {
    const f = this.unpause;
    this.unpause = undefined;
    f?.();
  }

  /** Refuse `what` once the VM has stopped. */
  private mustLive(): void {
    if (this.m.exited) throw new ApiError(409, "the VM has stopped");
  }

  /** Refuse `what` once the VM has stopped, or while a migration or drive snapshot runs. */
  private mustRun(what: string): void {
    this.mustLive();
    if (this.busy !== undefined) throw new ApiError(409, `${this.busy}; cannot ${what} now`);
  }
}

/** A send function for migrate(): resolves when the socket takes the bytes, rejects if it fails. */
function socketSender(sock: net.Socket): (chunk: Uint8Array) => Promise<void> {
  let failure: Error | undefined;
  sock.on("error", (e) => {
    failure = e;
  });
  sock.on("close", () => {
    failure ??= new Error("the connection closed");
  });
  return (chunk) =>
    new Promise<void>((resolve, reject) => {
      if (failure !== undefined) {
        reject(failure);
        return;
      }
      const onFail = () => reject(failure ?? new Error("the connection closed"));
      sock.once("close", onFail);
      const done = () => {
        sock.off("close", onFail);
        resolve();
      };
      if (sock.write(chunk)) done();
      else sock.once("drain", done);
    });
}
