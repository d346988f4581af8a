import { JIT_MODES, type JitMode } from "@visor/cpu";
import { MIN_GUEST_MEMORY } from "@visor/hypervisor";
import { MAX_GUEST_MEMORY, PAGE_SIZE } from "@visor/memory";
import { UserError } from "./errors.ts";

/** Parse a size like 256M, 1G, 64K or a plain byte count. */
export function parseSize(s: string, what: string): number {
  const m = /^(\d+)([kKmMgG]?)(i?[bB])?$/.exec(s.trim());
  if (!m) throw new UserError(`${what}: '${s}' is not a size (examples: 256M, 1G)`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n)) throw new UserError(`${what}: '${s}' is too large`);
  return n;
}

/** A byte count in the largest unit that divides it (16G, 256M, 64K, 4097). */
export function sizeText(n: number): string {
  for (const [unit, mult] of [
    ["G", 1024 ** 3],
    ["M", 1024 ** 2],
    ["K", 1024],
  ] as const) {
    if (n % mult === 0) return `${n / mult}${unit}`;
  }
  return String(n);
}

/**
 * Parse --memory: a size (see parseSize) of whole 4 KiB pages from MIN_GUEST_MEMORY to
 * MAX_GUEST_MEMORY; anything else is a one-line error that names the limit.
 */
export function parseMemory(s: string): number {
  const n = parseSize(s, "--memory");
  if (n > MAX_GUEST_MEMORY) {
    throw new UserError(`--memory ${s} is above the supported maximum of ${sizeText(MAX_GUEST_MEMORY)}`);
  }
  if (n < MIN_GUEST_MEMORY) {
    throw new UserError(`--memory ${s} is below the minimum of ${sizeText(MIN_GUEST_MEMORY)}`);
  }
  if (n % PAGE_SIZE !== 0) throw new UserError(`--memory ${s} is not a whole number of 4 KiB pages`);
  return n;
}

/** Parse --jit: one of JIT_MODES (off, on, always); anything else is a one-line error naming them. */
export function parseJit(s: string | undefined): JitMode {
  if (s === undefined) return "on";
  if (!JIT_MODES.includes(s as JitMode)) {
    throw new UserError(`--jit: '${s}' is not one of ${JIT_MODES.join(", ")}`);
  }
  return s as JitMode;
}

export interface OptionSpec {
  /** Takes a value. */
  value?: boolean;
  /** May be given several times. */
  repeat?: boolean;
}

export interface Parsed {
  opts: Map<string, string[]>;
  rest: string[];
}

/**
 * Parse `--name value`, `--name=value` and `--flag` options up to the first non-option
 * (or `--`); unknown options are an error.
 */
export function parseOptions(
  argv: string[],
  spec: Record<string, OptionSpec>,
  stopAtPositional = true,
): Parsed {
  const opts = new Map<string, string[]>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith("--")) {
      if (stopAtPositional) {
        rest.push(...argv.slice(i));
        break;
      }
      rest.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const s = spec[name];
    if (s === undefined) throw new UserError(`unknown option --${name} (see 'visor help')`);
    let v = "";
    if (s.value) {
      if (eq > 0) v = a.slice(eq + 1);
      else {
        const next = argv[i + 1];
        if (next === undefined) throw new UserError(`option --${name} needs a value`);
        v = next;
        i++;
      }
    } else if (eq > 0) {
      throw new UserError(`option --${name} takes no value`);
    }
    const list = opts.get(name) ?? [];
    if (list.length > 0 && !s.repeat) throw new UserError(`option --${name} given twice`);
    list.push(v);
    opts.set(name, list);
  }
  return { opts, rest };
}
