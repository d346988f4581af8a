/**
 * visor: the reference VMM (loaded by main.ts).
 *   visor                 boot the bundled Linux guest to a shell
 *   visor run [options]   boot a VM (see visor run --help)
 *   visor exec PROGRAM    run a riscv64 Linux program on the hart (user mode)
 */
import { reportError, UserError } from "./errors.ts";
import { userDirectory, versionLine } from "./paths.ts";
import { RUN_HELP, runMain } from "./run.ts";

const HELP = `usage: visor [command] [options]

commands:
  run [options]            boot a VM on the virt machine (the default command)
  exec [options] PROGRAM   run a static riscv64 Linux program, Linux ABI served by visor
  help                     this text
  --version                print visor's version (also after run or exec)

'visor' with no arguments boots the bundled Linux guest to its shell.

${RUN_HELP}`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
      return runMain([]);
    case "run":
      return runMain(rest);
    case "exec": {
      const { execMain } = await import("@visor/syscall/node/cli");
      return execMain(rest, { cwd: userDirectory(), version: versionLine() });
    }
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${HELP}\n`);
      return 0;
    default:
      if (cmd.startsWith("--")) return runMain(argv);
      throw new UserError(`unknown command '${cmd}' (see 'visor help')`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.exitCode = reportError(e);
  },
);
