/// <reference types="node" />

/**
 * Why a host file could not be opened or read, in a few words ("no such file",
 * "permission denied", ...): the part of a one-line error after the file's name. An
 * errno Node does not name here keeps its own message.
 */
export function fileErrorReason(e: unknown): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case "ENOENT":
      return "no such file";
    case "EEXIST":
      return "already exists";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    case "ENOTDIR":
      return "a component of the path is not a directory";
    case "ELOOP":
      return "too many levels of symbolic links";
    default:
      return e instanceof Error ? e.message : String(e);
  }
}
