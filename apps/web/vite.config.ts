/**
 * The static site: `vite` serves it, `vite build` writes it to dist/. Workspace packages
 * resolve to their TypeScript sources (the "source" export condition), so no package
 * build is needed first. The docs pages the panels link to are served (dev) and copied
 * (build) under docs/.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const docsDir = join(repo, "docs");

/** docs/*.md beside the site, as plain text: the panels' "More:" links. */
function docsPages(): Plugin {
  const pages = () => readdirSync(docsDir).filter((f) => /^[\w-]+\.md$/.test(f));
  return {
    name: "visor-docs-pages",
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const m = /^\/docs\/([\w-]+\.md)$/.exec(req.url ?? "");
        if (m === null || !pages().includes(m[1]!)) return next();
        res.setHeader("content-type", "text/plain; charset=utf-8");
        res.end(readFileSync(join(docsDir, m[1]!)));
      });
    },
    generateBundle() {
      for (const f of pages())
        this.emitFile({ type: "asset", fileName: `docs/${f}`, source: readFileSync(join(docsDir, f)) });
    },
  };
}

export default defineConfig({
  root: here,
  // Relative URLs: the built site works from any folder of any static server.
  base: "./",
  resolve: { conditions: ["source", "module", "browser", "development|production"] },
  worker: { format: "es" },
  build: { target: "es2023", outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1024 },
  server: { fs: { allow: [repo] } },
  plugins: [docsPages()],
});
