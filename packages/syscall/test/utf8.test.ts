/// <reference types="node" />
/** The core's UTF-8 codec agrees with the platform's WHATWG TextEncoder/TextDecoder. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { utf8Decode, utf8Encode } from "../src/utf8.ts";

describe("utf8", () => {
  it("encodes like TextEncoder (including lone surrogates)", () => {
    const te = new TextEncoder();
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        expect(utf8Encode(s)).toEqual(te.encode(s));
      }),
      { numRuns: 2000 },
    );
    expect(utf8Encode("\ud800x")).toEqual(te.encode("\ud800x"));
  });

  it("decodes like TextDecoder (including invalid sequences)", () => {
    const td = new TextDecoder();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        expect(utf8Decode(b)).toBe(td.decode(b));
      }),
      { numRuns: 5000 },
    );
    for (const b of [
      [0xe0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xc0, 0xaf],
      [0xf0, 0x9f, 0x98],
    ]) {
      expect(utf8Decode(new Uint8Array(b))).toBe(td.decode(new Uint8Array(b)));
    }
  });
});
