// The usage example of packages/cpu/README.md runs as a test. (It lives here because
// the cpu package's README is written with its ISA fixtures, which this package runs.)
import { describe, expect, it } from "vitest";
import { runReadmeExample } from "../../../scripts/readme-example.ts";

describe("@visor/cpu README", () => {
  it("the usage example runs and its assertions hold", async () => {
    expect(await runReadmeExample("packages/cpu/README.md")).toBe(1);
  });
});
