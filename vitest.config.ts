import { defineConfig } from "vitest/config";

// One root config runs every package's and app's tests. Workspace packages resolve to
// their TypeScript source through the "source" export condition, so no build is needed.
// Package sources are loaded by Node itself (type stripping), not through vitest's
// transform: the transformed interpreter runs about 10x slower, which matters for tests
// that boot Linux or run busybox on the hart.
export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"], externalConditions: ["source"] } },
  test: {
    // Tests live in each package's test/ folder, never beside the sources.
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    execArgv: ["--conditions=source"],
    server: { deps: { external: [/\/packages\/[^/]+\/src\//] } },
  },
});
