/// <reference types="node" />
import { describe, expect, it } from "vitest";
import { runReadmeExample } from "../../../scripts/readme-example.ts";

describe("README", () => {
  it("the usage example runs and its assertions hold (it reports why when /dev/kvm is unusable)", async () => {
    expect(await runReadmeExample("packages/kvm/README.md")).toBe(2);
  });
});
