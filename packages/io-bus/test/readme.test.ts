import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { extractTsBlocks, rewriteImports, runReadmeExample } from "../../../scripts/readme-example.ts";

describe("README", () => {
  it("the usage example runs and its assertions hold", async () => {
    expect(await runReadmeExample("packages/io-bus/README.md")).toBe(1);
  });
});

// The helper is shared by every package's README test; its own checks live here.
describe("scripts/readme-example.ts", () => {
  // Under the repository's git-ignored tmp/, where the helper writes its own files too.
  const tmp = join(import.meta.dirname, "../../../tmp");
  mkdirSync(tmp, { recursive: true });
  const dir = mkdtempSync(join(tmp, "readme-helper-test-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("extracts ts blocks, honours no-run, longer fences and tildes", () => {
    const md = [
      "```ts",
      "a();",
      "```",
      "```typescript no-run",
      "skipped();",
      "```",
      "````ts",
      "```",
      "inner();",
      "````",
      "~~~ts",
      "tilde();",
      "~~~",
      "```js",
      "notTs();",
      "```",
    ].join("\n");
    expect(extractTsBlocks(md)).toEqual([
      { line: 1, code: "a();" },
      { line: 7, code: "```\ninner();" },
      { line: 11, code: "tilde();" },
    ]);
    expect(() => extractTsBlocks("```ts\nopen();\n")).toThrow("unclosed code fence opened at line 1");
  });

  it("rewrites @visor imports to package source and leaves others alone", () => {
    const out = rewriteImports(
      'import { MmioBus } from "@visor/io-bus";\nimport assert from "node:assert";\nconst m = await import(\'@visor/io-bus\');',
      dir,
    );
    // Specifiers are relative to tmp/readme-examples/, where the helper writes each block.
    expect(out).toContain('from "../../packages/io-bus/src/index.ts"');
    expect(out).toContain("import('../../packages/io-bus/src/index.ts')");
    expect(out).toContain('from "node:assert"');
    expect(() => rewriteImports('import "@visor/no-such-package";', dir)).toThrow(
      '"@visor/no-such-package" is not a workspace package',
    );
  });

  it("reports a failing block with the README and its line, and cleans up", async () => {
    const readme = join(dir, "README.md");
    writeFileSync(
      readme,
      [
        "# x",
        "```ts",
        'import { UNMAPPED } from "@visor/io-bus";',
        "if (UNMAPPED !== -1) throw new Error('unexpected');",
        "```",
        "",
        "```ts",
        'import assert from "node:assert/strict";',
        "assert.equal(1 + 1, 3);",
        "```",
      ].join("\n"),
    );
    await expect(runReadmeExample(readme)).rejects.toThrow(
      /README\.md: the example at line 7 failed: AssertionError[\s\S]*2 !== 3/,
    );
    const leftovers = readdirSync(join(tmp, "readme-examples")).filter((f) => f.includes(`-${process.pid}-`));
    expect(leftovers).toEqual([]);
  });

  it("refuses a README with nothing to run", async () => {
    const readme = join(dir, "EMPTY.md");
    writeFileSync(readme, "# nothing\n```ts no-run\nx();\n```\n");
    await expect(runReadmeExample(readme)).rejects.toThrow(/no ```ts block to run/);
  });
});
