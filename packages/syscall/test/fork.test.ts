/// <reference types="node" />
/**
 * Forking many children that stay alive, and the page-fault loop guard.
 *
 * fixtures/guests/forkloop.c forks 200 children that pause forever and prints its
 * progress with stdio every 25 forks. Between progress lines the parent's only page fault
 * per fork is the same store to its copy-on-write stack page: a fault really fixed each
 * time, after progress. The kernel's guard against faults "fixed" without effect used to
 * count those as a loop and killed the parent with SIGSEGV after about ten forks.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { AddressSpace } from "../src/mm.ts";
import { runGuest } from "./harness.ts";
import { FIXTURES } from "./root.ts";

const CHILDREN = 200;
const EVERY = 25;
const SIGSEGV_STATUS = 128 + 11;
/** The address fixtures/guests/storeloop.S stores to. */
const STORE_VA = 0x12340000;
const PAGE = 4096;

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

function rootWith(program: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "visor-fork-"));
  roots.push(dir);
  fs.copyFileSync(path.join(FIXTURES, "guests", program), path.join(dir, program));
  fs.chmodSync(path.join(dir, program), 0o755);
  return dir;
}

describe("fork", () => {
  it("forks 200 paused children with stdio progress, then kills and reaps them", async () => {
    const r = await runGuest(rootWith("forkloop"), ["/forkloop", String(CHILDREN), String(EVERY)]);
    const want: string[] = [];
    for (let i = EVERY; i <= CHILDREN; i += EVERY) want.push(`forked ${i}`);
    want.push(`reaped ${CHILDREN}`);
    expect(r.stdout.trim().split("\n")).toEqual(want);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stats!.processes).toBe(CHILDREN + 1);
  }, 120_000);

  it("a fork bomb stops at the task limit: fork fails with EAGAIN, and the parent goes on", async () => {
    // 60 children wanted, 40 tasks allowed (the parent and 39 children): the 40th fork
    // fails, forkloop reports it and exits 3.
    const r = await runGuest(rootWith("forkloop"), ["/forkloop", "60", "25"], { maxTasks: 40 });
    expect(r.stdout.trim()).toBe("forked 25");
    expect(r.stderr).toMatch(/^fork: .*(temporarily unavailable|Try again)/);
    expect(r.status).toBe(3);
    expect(r.stats!.processes).toBe(40);
  }, 120_000);

  it("a fault that is 'fixed' without effect still ends in SIGSEGV, not a hang", async () => {
    // A fault handler that claims success for the page without mapping it: the store
    // faults again with no instruction retired, and the guard must stop the loop.
    const real = AddressSpace.prototype.fault;
    vi.spyOn(AddressSpace.prototype, "fault").mockImplementation(function (this: AddressSpace, va, access) {
      if (va >= STORE_VA && va < STORE_VA + PAGE) return true;
      return real.call(this, va, access);
    });
    const r = await runGuest(rootWith("storeloop"), ["/storeloop"]);
    expect(r.status).toBe(SIGSEGV_STATUS);
  });

  it("the same store to an unmapped page is an ordinary SIGSEGV", async () => {
    const r = await runGuest(rootWith("storeloop"), ["/storeloop"]);
    expect(r.status).toBe(SIGSEGV_STATUS);
  });
});
