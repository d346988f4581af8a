/** A failed KVM or libc call: which operation, and errno with its text. */
export class KvmError extends Error {
  override name = "KvmError";
  readonly op: string;
  readonly errno: number;
  constructor(op: string, errno: number, text: string) {
    super(`${op}: ${text} (errno ${errno})`);
    this.op = op;
    this.errno = errno;
  }
}

export const EINTR = 4;
export const EAGAIN = 11;
export const E2BIG = 7;
export const ENOENT = 2;
export const EACCES = 13;
