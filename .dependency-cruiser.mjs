/**
 * dependency-cruiser rules, run by `pnpm lint` (`depcruise --config .dependency-cruiser.mjs`).
 * See docs/architecture.md for the package map these rules enforce.
 *
 * 1. No import cycles, anywhere (type-only imports count: they are structure too).
 * 2. The layering: a package imports only the packages of its layer table entry below
 *    (which must also be its package.json dependencies), apps import packages, nothing
 *    imports an app, and another package is reached only through its public entry
 *    (an `exports` subpath of its package.json), never a deep path into its source.
 * 3. Package sources are portable (browser or Node): `node:` modules only in `src/node/`.
 * 4. Sources never import tests, scripts or apps; every import resolves; no test file sits
 *    in src/ (vitest would not run it).
 */
import { readdirSync, readFileSync } from "node:fs";

/**
 * Which workspace packages each package may import. Bottom: memory and io-bus (no
 * dependencies). Above them, side by side: cpu and devices. Above those, side by side:
 * hypervisor and syscall. The apps (apps/*) sit on top and may import any package.
 */
// The fuzz app is test tooling (private, never published): its surfaces drive devices
// through the packages' guest-side test drivers (packages/*/test/*-driver.ts), the same
// ones the packages' own tests use. Only those files; never another package's sources.
const FUZZ_MAY_REUSE = "^packages/[^/]+/test/[^/]+-driver\\.ts$";

const LAYERS = {
  memory: [],
  "io-bus": [],
  kvm: [],
  cpu: ["memory", "io-bus"],
  devices: ["memory", "io-bus"],
  hypervisor: ["cpu", "devices", "memory", "io-bus"],
  syscall: ["cpu", "memory"],
};

/** Every package's public entries: the `source` files of its package.json `exports`. */
const PUBLIC_ENTRIES = [];

// A package.json that declares a @visor dependency the table forbids fails the lint too,
// so the table and the manifests cannot drift apart.
for (const dir of readdirSync("packages")) {
  const manifest = JSON.parse(readFileSync(`packages/${dir}/package.json`, "utf8"));
  for (const entry of Object.values(manifest.exports ?? {}))
    if (typeof entry.source === "string") PUBLIC_ENTRIES.push(`packages/${dir}/${entry.source.slice(2)}`);
  const allowed = LAYERS[dir];
  if (allowed === undefined) throw new Error(`.dependency-cruiser.mjs: packages/${dir} has no LAYERS entry`);
  for (const dep of Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies })) {
    if (dep.startsWith("@visor/") && !allowed.includes(dep.slice("@visor/".length)))
      throw new Error(
        `.dependency-cruiser.mjs: packages/${dir}/package.json depends on ${dep}, which the layering forbids (LAYERS.${dir} = [${allowed.join(", ")}])`,
      );
  }
}

const exact = (paths) => `^(${paths.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})$`;
const PACKAGES = Object.keys(LAYERS);

export default {
  forbidden: [
    {
      name: "no-circular",
      comment: "Import cycles are not allowed (type-only imports count).",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    ...PACKAGES.map((pkg) => ({
      name: "layering",
      comment: `@visor/${pkg} may import only ${LAYERS[pkg].map((p) => `@visor/${p}`).join(", ") || "no other package"} (LAYERS).`,
      severity: "error",
      from: { path: `^packages/${pkg}/` },
      to: { path: "^(packages|apps)/", pathNot: `^packages/(${[pkg, ...LAYERS[pkg]].join("|")})/` },
    })),
    {
      name: "no-app-imports",
      comment: "An app imports packages; nothing imports an app, and apps do not import each other.",
      severity: "error",
      from: { path: "^apps/([^/]+)/" },
      to: { path: "^apps/", pathNot: "^apps/$1/" },
    },
    {
      name: "public-entry-only",
      comment:
        "Another package is imported by its name and an exported subpath (@visor/x, @visor/x/node), never by a path into its sources.",
      severity: "error",
      from: { path: "^(packages|apps)/([^/]+)/" },
      to: {
        path: "^packages/",
        pathNot: ["^packages/$2/", exact(PUBLIC_ENTRIES), FUZZ_MAY_REUSE],
      },
    },
    {
      name: "portable-sources",
      comment: "Package sources run in browsers too: node: modules only under src/node/.",
      severity: "error",
      from: { path: "^packages/[^/]+/src/", pathNot: "^packages/[^/]+/src/node/" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "sources-not-to-tests",
      comment: "Published sources never import tests, test helpers, fixtures or repository scripts.",
      severity: "error",
      from: { path: "^(packages|apps)/[^/]+/src/", pathNot: "^apps/fuzz/" },
      to: { path: "^((packages|apps)/[^/]+/(test|fixtures|bench)/|scripts/)" },
    },
    {
      name: "fuzz-reuses-drivers-only",
      comment: "The fuzz app reuses the packages' guest-side test drivers, and nothing else of their tests.",
      severity: "error",
      from: { path: "^apps/fuzz/src/" },
      to: { path: "^((packages|apps)/[^/]+/(test|fixtures|bench)/|scripts/)", pathNot: FUZZ_MAY_REUSE },
    },
    {
      name: "tests-in-test-folder",
      comment:
        "Tests live in the package's test/ folder (vitest only runs packages/*/test and apps/*/test), not beside the sources.",
      severity: "error",
      from: { path: "^(packages|apps)/[^/]+/src/.*\\.test\\.ts$" },
      to: {},
    },
    {
      name: "not-to-unresolvable",
      comment:
        "Every import resolves. A workspace package that is not in the importer's package.json does not resolve.",
      severity: "error",
      from: {},
      // "node" is `/// <reference types="node" />` (the @types/node declarations).
      to: { couldNotResolve: true, pathNot: "^node$" },
    },
    {
      name: "not-to-undeclared",
      comment:
        "Sources import only npm packages their package.json declares (tests and build configs use the root's dev tools).",
      severity: "error",
      from: { path: "^(packages|apps)/[^/]+/src/" },
      to: { dependencyTypes: ["npm-no-pkg", "npm-unknown"] },
    },
  ],
  options: {
    exclude: { path: "^((packages|apps)/[^/]+/dist|tmp)/" },
    doNotFollow: { path: "node_modules" },
    tsConfig: { fileName: "tsconfig.base.json" },
    tsPreCompilationDeps: true,
    // Workspace packages resolve to their TypeScript sources, as in vitest and `pnpm visor`.
    enhancedResolveOptions: {
      conditionNames: ["source", "import", "types", "default"],
      exportsFields: ["exports"],
      extensions: [".ts", ".js"],
    },
  },
};
