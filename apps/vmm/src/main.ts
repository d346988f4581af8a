#!/usr/bin/env node
/**
 * The visor command's entry point. It turns on Node's on-disk compile cache before loading
 * the command line (cli.ts), so later starts reuse the compiled, type-stripped modules:
 * loading takes about 50 ms instead of 190 ms on the project's machine. Static imports
 * would be loaded before this line runs, hence the dynamic import.
 *
 * It also asks V8 to compile each translated region (@visor/cpu jit/) when its module is
 * created instead of at its first call: lazily compiled, a region's first calls ran in
 * V8's baseline tier for longer, and a boot took about twice as long (docs/binary-translation.md).
 * Both work the same from the built package (dist/main.js, the installed `visor`), which
 * also runs this file first.
 */
import module from "node:module";
import v8 from "node:v8";

performance.mark("visor:main"); // the first start-up phase's end (startup-marks.ts)
const major = Number(process.versions.node.split(".")[0]);
if (major < 22) {
  process.stderr.write(`visor: needs Node.js 22 or later; this is ${process.version}\n`);
  process.exit(1);
}
module.enableCompileCache?.();
v8.setFlagsFromString("--no-wasm-lazy-compilation");
await import("./cli.ts");
