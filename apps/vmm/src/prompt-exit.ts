/**
 * Ending `visor run` once its VM has stopped. When nothing is left in flight but console
 * output, the process exits as soon as stdout and stderr have handed what was written to
 * them to the OS, with process.exit: Node then skips tearing down its heap and isolate
 * piece by piece (hundreds of munmap calls after a boot), which took about 10 ms of the
 * time between the guest's power-off and the process's end (docs/architecture.md,
 * "Start-up and exit"). Node's compile cache is still written on this path.
 *
 * Callers close or flush their disks first; a run with sockets still closing (a gdb
 * client, a network backend) does not come here and lets Node end when they are done.
 */

/** Resolves once `stream` has passed everything written to it so far on (or cannot). */
export function flushed(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    const s = stream as NodeJS.WritableStream & { destroyed?: boolean };
    if (s.destroyed === true || !s.writable) {
      resolve();
      return;
    }
    // Writes complete in order: the callback of an empty one comes after all before it
    // (with an error, too, if the reader has gone: nothing more can be passed on then).
    s.write("", () => resolve());
  });
}

/** Exit with `code` once stdout and stderr are flushed. */
export async function exitOnceFlushed(code: number): Promise<never> {
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}
