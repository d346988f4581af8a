/** An in-memory VmControl for the control socket's router and server tests. */
import {
  ApiError,
  type InstanceInfo,
  type MigrationStatus,
  NotSupportedError,
  type VmControl,
} from "../../src/api/control.ts";
import type { VmStats } from "../../src/stats.ts";

export class FakeVm implements VmControl {
  state: "Running" | "Paused" = "Running";
  calls: string[] = [];
  stopped = false;
  mig: MigrationStatus = { state: "none" };
  /** What snapshotDrive does: "ok", "unsupported" or "fail". */
  driveMode: "ok" | "unsupported" | "fail" = "unsupported";
  /** Thrown from stats(): an unexpected failure inside visor. */
  statsThrows = false;

  info(): InstanceInfo {
    return {
      app_name: "visor",
      vmm_version: "0.0.0",
      pid: 1,
      state: this.state,
      started_by: "boot",
      vm_config: {
        memory_bytes: 1 << 28,
        harts: 1,
        virt: "nested",
        clock: "host",
        firmware: false,
        jit: "on",
        drives: [{ drive_id: "disk0", path: "/images/root.img", readonly: false, transport: "mmio" }],
        nets: 0,
      },
    };
  }
  pause(): void {
    if (this.state === "Paused") throw new ApiError(409, "the VM is already paused");
    this.state = "Paused";
    this.calls.push("pause");
  }
  resume(): void {
    if (this.state === "Running") throw new ApiError(409, "the VM is not paused");
    this.state = "Running";
    this.calls.push("resume");
  }
  snapshot(path: string) {
    this.calls.push(`snapshot ${path}`);
    return { snapshot_path: `/abs/${path}`, size_bytes: 123 };
  }
  migrate(destination: string): MigrationStatus {
    if (this.mig.state === "active") throw new ApiError(409, "a migration is in progress; not migrating");
    this.calls.push(`migrate ${destination}`);
    this.mig = { state: "active", destination, phase: "connecting" };
    return this.mig;
  }
  migration(): MigrationStatus {
    return this.mig;
  }
  stats(): VmStats {
    if (this.statsThrows) throw new TypeError("boom");
    return {
      virt: "nested",
      counting: false,
      seconds: 1.5,
      instructions: 1000,
      mips: 0.001,
      exits: [],
      idle: 0,
      console_waits: 0,
      translator: {
        mode: "on",
        in_effect: "on",
        unavailable: "",
        regions: 0,
        translated_instructions: 0,
        translate_ms: 0,
        executed_translated: 0,
        entries: 0,
        executed: 1000,
        invalidations: 0,
        evictions: 0,
        live_regions: 0,
        modules: 0,
        live_bytes: 0,
      },
      hypercalls: [],
      mmio: [],
      pio: [],
      harts: [{ hart: 0, traps: 0, interrupts: 0, tlb_misses: 0, walks: 0, walk_refs: 0 }],
    };
  }
  powerOff(): void {
    this.stopped = true;
    this.calls.push("poweroff");
  }
  async snapshotDrive(driveId: string, overlayPath: string): Promise<void> {
    if (driveId !== "disk0") throw new ApiError(404, `no drive '${driveId}' (drives: disk0)`);
    if (this.driveMode === "unsupported") {
      const e = new NotSupportedError("raw image");
      throw new ApiError(501, `disk0: switching to an overlay is not supported for this disk: ${e.message}`);
    }
    if (this.driveMode === "fail") throw new ApiError(400, "disk0: overlay not made: EEXIST");
    this.calls.push(`drive ${driveId} ${overlayPath}`);
  }
}
