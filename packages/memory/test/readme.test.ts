/// <reference types="node" />
import { describe, expect, it } from "vitest";
import { runReadmeExample } from "../../../scripts/readme-example.ts";

describe("README", () => {
  it("the usage example runs and its assertions hold", async () => {
    expect(await runReadmeExample("packages/memory/README.md")).toBe(2);
  });
});
