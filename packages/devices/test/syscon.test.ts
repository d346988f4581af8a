import { describe, expect, it } from "vitest";
import { Syscon, type SysconEvent } from "../src/syscon.ts";

describe("Syscon (sifive,test1)", () => {
  it("reports power-off, reset and failure with its exit code", () => {
    const events: SysconEvent[] = [];
    const s = new Syscon({ onEvent: (e) => events.push(e) });
    s.write(0, 4, 0x5555);
    s.write(0, 4, 0x7777);
    s.write(0, 4, (3 << 16) | 0x3333);
    s.write(0, 2, 0x5555);
    expect(events).toEqual([
      { kind: "poweroff" },
      { kind: "reset" },
      { kind: "fail", code: 3 },
      { kind: "poweroff" },
    ]);
  });

  it("ignores other values, offsets and byte writes; reads 0", () => {
    const events: SysconEvent[] = [];
    const s = new Syscon({ onEvent: (e) => events.push(e) });
    s.write(0, 4, 0x1234);
    s.write(4, 4, 0x5555);
    s.write(0, 1, 0x55);
    expect(events).toEqual([]);
    expect(s.read(0, 4)).toBe(0);
    s.fromState(s.toState());
    expect(s.toState()).toEqual({});
  });
});
