/**
 * Where the user's relative paths are relative to. `pnpm -s visor ...` runs the command at
 * the repository root, not in the directory the user typed it in; pnpm (like npm) names
 * that directory in INIT_CWD. visor does not chdir: it resolves each path it is given.
 */
import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";

/**
 * The directory the user ran visor from: INIT_CWD when a package manager's script started
 * the process (npm_lifecycle_event or npm_execpath set), else the working directory.
 */
export function userDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const init = env.INIT_CWD;
  const fromScript = env.npm_lifecycle_event !== undefined || env.npm_execpath !== undefined;
  if (fromScript && init !== undefined && isAbsolute(init)) return init;
  return process.cwd();
}

/** A path the user gave, made absolute against userDirectory(). */
export function userPath(path: string): string {
  return resolve(userDirectory(), path);
}

/** `visor X.Y.Z`, the version in this app's package.json (read where the module lies). */
export function versionLine(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return `visor ${pkg.version}`;
}
