/**
 * Constants of the RISC-V Supervisor Binary Interface, version 2.0 (riscv-sbi-doc,
 * "RISC-V Supervisor Binary Interface Specification", v2.0 ratified 2024).
 * Section numbers refer to that document.
 */

/** §3 "Binary Encoding", table "Standard SBI Errors". */
export const SBI_SUCCESS = 0;
export const SBI_ERR_FAILED = -1;
export const SBI_ERR_NOT_SUPPORTED = -2;
export const SBI_ERR_INVALID_PARAM = -3;
export const SBI_ERR_DENIED = -4;
export const SBI_ERR_INVALID_ADDRESS = -5;
export const SBI_ERR_ALREADY_AVAILABLE = -6;
export const SBI_ERR_ALREADY_STARTED = -7;
export const SBI_ERR_ALREADY_STOPPED = -8;
export const SBI_ERR_NO_SHMEM = -9;

/** get_spec_version: major in bits 24..30, minor in bits 0..23 (§4.1). This SBI implements 2.0. */
export const SBI_SPEC_VERSION = (2 << 24) | 0;

/**
 * Implementation ID returned by sbi_get_impl_id (§4.2). The registry in §4.9 assigns
 * small numbers (0 BBL, 1 OpenSBI, 2 Xvisor, 3 KVM, 4 RustSBI, ... 11 bhyve at the time of
 * writing). Visor is not registered, so it answers with an ID far outside that range,
 * ASCII "VISR" (0x56495352), which no registered implementation can collide with.
 */
export const SBI_IMPL_ID_VISOR = 0x5649_5352;
/** Implementation version: major << 16 | minor, for Visor's built-in SBI 0.1. */
export const SBI_IMPL_VERSION = (0 << 16) | 1;

/** Extension IDs (EID, passed in a7). */
export const SBI_EXT_LEGACY_SET_TIMER = 0x00;
export const SBI_EXT_LEGACY_CONSOLE_PUTCHAR = 0x01;
export const SBI_EXT_LEGACY_CONSOLE_GETCHAR = 0x02;
export const SBI_EXT_LEGACY_CLEAR_IPI = 0x03;
export const SBI_EXT_LEGACY_SEND_IPI = 0x04;
export const SBI_EXT_LEGACY_REMOTE_FENCE_I = 0x05;
export const SBI_EXT_LEGACY_REMOTE_SFENCE_VMA = 0x06;
export const SBI_EXT_LEGACY_REMOTE_SFENCE_VMA_ASID = 0x07;
export const SBI_EXT_LEGACY_SHUTDOWN = 0x08;
export const SBI_EXT_BASE = 0x10;
export const SBI_EXT_TIME = 0x5449_4d45; // "TIME"
export const SBI_EXT_IPI = 0x73_5049; // "sPI"
export const SBI_EXT_RFENCE = 0x5246_4e43; // "RFNC"
export const SBI_EXT_HSM = 0x48_534d; // "HSM"
export const SBI_EXT_SRST = 0x5352_5354; // "SRST"
export const SBI_EXT_DBCN = 0x4442_434e; // "DBCN"

/** Function IDs (FID, passed in a6). */
export const SBI_BASE_GET_SPEC_VERSION = 0;
export const SBI_BASE_GET_IMPL_ID = 1;
export const SBI_BASE_GET_IMPL_VERSION = 2;
export const SBI_BASE_PROBE_EXTENSION = 3;
export const SBI_BASE_GET_MVENDORID = 4;
export const SBI_BASE_GET_MARCHID = 5;
export const SBI_BASE_GET_MIMPID = 6;

export const SBI_TIME_SET_TIMER = 0;

export const SBI_IPI_SEND_IPI = 0;

export const SBI_RFENCE_REMOTE_FENCE_I = 0;
export const SBI_RFENCE_REMOTE_SFENCE_VMA = 1;
export const SBI_RFENCE_REMOTE_SFENCE_VMA_ASID = 2;
export const SBI_RFENCE_REMOTE_HFENCE_GVMA_VMID = 3;
export const SBI_RFENCE_REMOTE_HFENCE_GVMA = 4;
export const SBI_RFENCE_REMOTE_HFENCE_VVMA_ASID = 5;
export const SBI_RFENCE_REMOTE_HFENCE_VVMA = 6;

export const SBI_HSM_HART_START = 0;
export const SBI_HSM_HART_STOP = 1;
export const SBI_HSM_HART_GET_STATUS = 2;
export const SBI_HSM_HART_SUSPEND = 3;

export const SBI_SRST_SYSTEM_RESET = 0;

export const SBI_DBCN_CONSOLE_WRITE = 0;
export const SBI_DBCN_CONSOLE_READ = 1;
export const SBI_DBCN_CONSOLE_WRITE_BYTE = 2;

/** HSM hart states (§9, table "HSM Hart States"). */
export const SBI_HSM_STATE_STARTED = 0;
export const SBI_HSM_STATE_STOPPED = 1;
export const SBI_HSM_STATE_START_PENDING = 2;
export const SBI_HSM_STATE_STOP_PENDING = 3;
export const SBI_HSM_STATE_SUSPENDED = 4;
export const SBI_HSM_STATE_SUSPEND_PENDING = 5;
export const SBI_HSM_STATE_RESUME_PENDING = 6;
export type SbiHsmState = 0 | 1 | 2 | 3 | 4 | 5 | 6;

/** HSM suspend types (§9.4, table "HSM Hart Suspend Types"). */
export const SBI_HSM_SUSPEND_RET_DEFAULT = 0x0000_0000;
export const SBI_HSM_SUSPEND_NON_RET_DEFAULT = 0x8000_0000;

/** SRST reset types and reasons (§10.1). */
export const SBI_SRST_RESET_TYPE_SHUTDOWN = 0;
export const SBI_SRST_RESET_TYPE_COLD_REBOOT = 1;
export const SBI_SRST_RESET_TYPE_WARM_REBOOT = 2;
export const SBI_SRST_RESET_REASON_NONE = 0;
export const SBI_SRST_RESET_REASON_SYSFAIL = 1;

/**
 * RFENCE "whole address space": the spec treats start_addr = 0 with size = 0, or
 * size = 2^XLEN - 1, as a full flush (§8). The SBI passes such requests on with this size.
 */
export const SBI_RFENCE_FULL = 0xffff_ffff_ffff_ffffn;

/** hart_mask_base = -1 (all ones): every hart, hart_mask ignored (§3 "Hart list parameter"). */
export const SBI_HART_MASK_BASE_ALL = 0xffff_ffff_ffff_ffffn;
