import { readFileSync } from "node:fs";

/** An error the user can act on: printed as one line, exit code 1 (or `code`). */
export class UserError extends Error {
  override name = "UserError";
  readonly code: number;
  constructor(message: string, code = 1) {
    super(message);
    this.code = code;
  }
}

/** Print an error as one line on stderr and return the exit code to use. */
export function reportError(e: unknown): number {
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`visor: ${msg.split("\n")[0]}\n`);
  if (process.env.VISOR_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return e instanceof UserError ? e.code : 1;
}

/**
 * The bytes of a file the user named (`what`: "kernel", "snapshot", ...), or a UserError
 * saying in one line why it cannot be read.
 */
export function readInput(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "is a directory"
          : code === "EACCES" || code === "EPERM"
            ? "permission denied"
            : e instanceof Error
              ? e.message
              : String(e);
    throw new UserError(`cannot read ${what} '${path}': ${why}`);
  }
}
