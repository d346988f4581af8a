/**
 * The hypervisor (H) extension's hook interface. The Hart calls these at the points where
 * the H extension changes behaviour (trap routing, translation, CSR access, xRET, WFI,
 * fences). `Hart.h` is undefined when the extension is off, so the base ISA pays one
 * `undefined` test on slow paths and nothing on the hot path.
 */
import type { Access, WalkResult } from "@visor/memory";
import type { Hart } from "./hart.ts";

export interface HState {
  vsstatus: number;
  /** Handle trap routing under H; true when it took the trap (or exited). */
  raise(h: Hart, cause: number, tvalLo: number, tvalHi: number, irq: boolean, tval2: number, tinst: number): boolean;
  /** Exit to the host for a trap entering HS-mode; true when it exited. */
  hostExit(h: Hart, cause: number, tvalLo: number, tvalHi: number): boolean;
  translateGuest(h: Hart, aLo: number, aHi: number, access: Access, priv: number, res: WalkResult): number;
  pendingInterrupt(h: Hart): number;
  pendingForWfi(h: Hart): boolean;
  /** -1: not an H-specific case; 0: handled by csrRead/csrWrite here; >0: exception cause. */
  csrAccessCheck(h: Hart, csr: number, write: boolean): number;
  csrRead(h: Hart, csr: number): number;
  csrWrite(h: Hart, csr: number, lo: number, hi: number): number;
  illegalOrVirtual(h: Hart, csr: number): number;
  timeDelta(h: Hart): number;
  counterEnabled(h: Hart, bit: number): boolean;
  syncHvip(h: Hart): void;
  sret(h: Hart): number;
  wfiCheck(h: Hart): number;
  sfenceCheck(h: Hart): number;
  execOther(h: Hart, op: number, w: number, raw: number): number;
}
