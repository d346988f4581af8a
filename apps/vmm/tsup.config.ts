import { cpSync, mkdirSync } from "node:fs";
import { defineConfig } from "tsup";

/**
 * The bundled guest's files, copied into dist/ so that an installed package has them
 * (src/bundled.ts); its README goes with them for their licence (GPL-2.0) and sources.
 */
const GUEST_FILES: Record<string, string[]> = {
  riscv64: ["Image.gz", "initramfs.cpio.gz", "README.md"],
  x86_64: ["bzImage", "initramfs.cpio.gz", "README.md"],
};

export default defineConfig({
  // main.ts loads cli.ts (and that run.ts) with a dynamic import: they become chunks.
  entry: { main: "src/main.ts" },
  format: ["esm"],
  platform: "node",
  target: "node22",
  clean: true,
  sourcemap: true,
  // The @visor/* packages stay imports (they are dependencies), resolved at run time.
  async onSuccess() {
    for (const [arch, files] of Object.entries(GUEST_FILES)) {
      mkdirSync(`dist/guests/${arch}`, { recursive: true });
      for (const f of files) cpSync(`../../guests/${arch}/${f}`, `dist/guests/${arch}/${f}`);
    }
  },
});
