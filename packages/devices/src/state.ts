/**
 * Checks for device state objects read back from snapshots. A snapshot file is input like
 * any other: a bad one is refused with one clear line, never loaded as garbage.
 */

export class DeviceStateError extends Error {
  override name = "DeviceStateError";
}

function fail(device: string, field: string, why: string): never {
  throw new DeviceStateError(`invalid ${device} state: ${field} ${why}`);
}

export function stateObject(v: unknown, device: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(device, "state", "is not an object");
  return v as Record<string, unknown>;
}

/** An integer in [0, max]. */
export function stateInt(s: Record<string, unknown>, field: string, device: string, max: number): number {
  const v = s[field];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
    fail(device, field, `must be an integer in [0, ${max}], got ${JSON.stringify(v)}`);
  }
  return v;
}

/** A finite number (may be negative or fractional-free large); used for clock offsets. */
export function stateNumber(s: Record<string, unknown>, field: string, device: string): number {
  const v = s[field];
  if (typeof v !== "number" || !Number.isFinite(v)) fail(device, field, "must be a finite number");
  return v;
}

export function stateBool(s: Record<string, unknown>, field: string, device: string): boolean {
  const v = s[field];
  if (typeof v !== "boolean") fail(device, field, "must be a boolean");
  return v;
}

export function stateString(s: Record<string, unknown>, field: string, device: string): string {
  const v = s[field];
  if (typeof v !== "string") fail(device, field, "must be a string");
  return v;
}

/** An array of exactly `length` (or at most `maxLength`) integers in [0, max]. */
export function stateIntArray(
  s: Record<string, unknown>,
  field: string,
  device: string,
  max: number,
  length: { exact?: number; max?: number },
): number[] {
  const v = s[field];
  if (!Array.isArray(v)) fail(device, field, "must be an array");
  if (length.exact !== undefined && v.length !== length.exact) {
    fail(device, field, `must have ${length.exact} entries, got ${v.length}`);
  }
  if (length.max !== undefined && v.length > length.max) {
    fail(device, field, `must have at most ${length.max} entries, got ${v.length}`);
  }
  for (const x of v) {
    if (typeof x !== "number" || !Number.isInteger(x) || x < 0 || x > max) {
      fail(device, field, `entries must be integers in [0, ${max}]`);
    }
  }
  return v as number[];
}

const U64_HEX = /^0x[0-9a-f]{1,16}$/;

/** A 64-bit unsigned value stored as a "0x..." hex string (JSON has no 64-bit integers). */
export function stateU64(s: Record<string, unknown>, field: string, device: string): bigint {
  const v = s[field];
  if (typeof v !== "string" || !U64_HEX.test(v)) fail(device, field, "must be a 0x-prefixed hex u64");
  return BigInt(v);
}

/** An array of exactly `length` u64 hex strings. */
export function stateU64Array(
  s: Record<string, unknown>,
  field: string,
  device: string,
  length: number,
): bigint[] {
  const v = s[field];
  if (!Array.isArray(v) || v.length !== length)
    fail(device, field, `must be an array of ${length} hex strings`);
  return v.map((x, i) => {
    if (typeof x !== "string" || !U64_HEX.test(x))
      fail(device, `${field}[${i}]`, "must be a 0x-prefixed hex u64");
    return BigInt(x);
  });
}

export const u64ToState = (v: bigint): string => `0x${BigInt.asUintN(64, v).toString(16)}`;
