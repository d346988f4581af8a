import { UserError } from "./errors.ts";

/**
 * Parse HOST:PORT (or PORT alone, on 127.0.0.1, where `portAlone` allows it); `what`
 * names the option or field in the one-line error.
 */
export function parseHostPort(s: string, what: string, portAlone: boolean): { host: string; port: number } {
  const m = /^(?:(.+):)?(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port < 1 || port > 65535 || (m[1] === undefined && !portAlone)) {
    throw new UserError(`${what}: '${s}' is not ${portAlone ? "[HOST:]PORT" : "HOST:PORT"}`);
  }
  return { host: m[1] ?? "127.0.0.1", port };
}
