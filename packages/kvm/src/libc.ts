/**
 * The few libc calls KVM needs (open, close, ioctl, mmap, munmap, strerror), through the
 * koffi FFI: prebuilt for each platform, so a fresh machine needs no compiler. Loaded on
 * first use, so importing this package on a host without glibc costs nothing until a VM
 * is opened.
 */
import koffi from "koffi";

export interface Libc {
  open(path: string, flags: number): number;
  close(fd: number): number;
  /** ioctl with an integer (or no) argument. */
  ioctlInt(fd: number, request: number, arg: number): number;
  /** ioctl with a pointer to a buffer the kernel reads and/or writes. */
  ioctlPtr(fd: number, request: number, arg: Uint8Array | null): number;
  /** mmap; returns the mapping's address, or undefined (errno says why). */
  mmap(length: number, prot: number, flags: number, fd: number): unknown;
  munmap(addr: unknown, length: number): number;
  errno(): number;
  strerror(errno: number): string;
  address(ptr: unknown): bigint;
  exit(code: number): never;
  view(ptr: unknown, length: number): ArrayBuffer;
}

/** <sys/mman.h> and <fcntl.h> values on Linux x86-64 and arm64. */
export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_PRIVATE = 2;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

let libc: Libc | undefined;

/** The libc bindings (loaded once per thread). Throws a one-line error off Linux/glibc. */
export function getLibc(): Libc {
  if (libc !== undefined) return libc;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load("libc.so.6");
  } catch (e) {
    throw new Error(`KVM needs Linux with glibc: ${e instanceof Error ? e.message : String(e)}`);
  }
  const open = lib.func("int open(const char *path, int flags)");
  const close = lib.func("int close(int fd)");
  // ioctl is variadic in C; its third argument is passed in a register either way on the
  // 64-bit System V ABI, so two fixed prototypes (integer, pointer) call it correctly.
  const ioctlInt = lib.func("ioctl", "int", ["int", "unsigned long", "unsigned long"]);
  const ioctlPtr = lib.func("ioctl", "int", ["int", "unsigned long", "void *"]);
  const mmap = lib.func("void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)");
  const munmap = lib.func("int munmap(void *addr, size_t length)");
  const strerror = lib.func("const char *strerror(int errnum)");
  const exit = lib.func("void _exit(int status)");
  libc = {
    open: (path, flags) => open(path, flags) as number,
    close: (fd) => close(fd) as number,
    ioctlInt: (fd, request, arg) => ioctlInt(fd, request, arg) as number,
    ioctlPtr: (fd, request, arg) => ioctlPtr(fd, request, arg) as number,
    mmap: (length, prot, flags, fd) => {
      const p = mmap(null, length, prot, flags, fd, 0);
      if (p === null || koffi.address(p) === MAP_FAILED) return undefined;
      return p;
    },
    munmap: (addr, length) => munmap(addr, length) as number,
    errno: () => koffi.errno(),
    strerror: (e) => strerror(e) as string,
    address: (p) => koffi.address(p),
    exit: (code) => {
      exit(code);
      throw new Error("_exit returned");
    },
    view: (p, length) => koffi.view(p, length),
  };
  return libc;
}
