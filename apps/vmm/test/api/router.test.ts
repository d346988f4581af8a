/**
 * The control socket's routes over an in-memory VM: the answers to good requests, and
 * to every kind of malformed one (the peer is untrusted), checked against the OpenAPI
 * file, whose paths, methods and request bodies must also be the router's.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { handle, MAX_FIELD_LENGTH, ROUTES } from "../../src/api/router.ts";
import { FakeVm } from "./fake-vm.ts";
import { checkResponse, resolve, SPEC } from "./openapi.ts";

/** Send one request; the answer must be what the OpenAPI file documents for the route. */
async function call(vm: FakeVm, method: string, target: string, body = "", route = target) {
  const r = await handle(vm, method, target, body);
  if (r.status !== 400 || SPEC.paths[route] !== undefined) checkResponse(method, route, r.status, r.body);
  return r;
}

const message = (r: { body?: unknown }) => (r.body as { fault_message: string }).fault_message;

describe("control socket routes", () => {
  it("GET / describes the instance", async () => {
    const r = await call(new FakeVm(), "GET", "/");
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ app_name: "visor", state: "Running" });
  });

  it("PATCH /vm pauses and resumes; 409 for a second pause or a resume while running", async () => {
    const vm = new FakeVm();
    expect((await call(vm, "PATCH", "/vm", '{"state":"Paused"}')).status).toBe(204);
    expect(vm.state).toBe("Paused");
    const again = await call(vm, "PATCH", "/vm", '{"state":"Paused"}');
    expect(again.status).toBe(409);
    expect(message(again)).toBe("the VM is already paused");
    expect((await call(vm, "PATCH", "/vm", '{"state":"Resumed"}')).status).toBe(204);
    expect((await call(vm, "PATCH", "/vm", '{"state":"Resumed"}')).status).toBe(409);
    expect(vm.calls).toEqual(["pause", "resume"]);
  });

  it("PUT /snapshot/create, PUT and GET /migrate, GET /stats, PUT /actions", async () => {
    const vm = new FakeVm();
    const snap = await call(vm, "PUT", "/snapshot/create", '{"snapshot_path":"vm.snap"}');
    expect(snap).toMatchObject({ status: 200, body: { snapshot_path: "/abs/vm.snap", size_bytes: 123 } });
    const mig = await call(vm, "PUT", "/migrate", '{"destination":"10.0.0.2:4444"}');
    expect(mig).toMatchObject({ status: 202, body: { state: "active", destination: "10.0.0.2:4444" } });
    expect((await call(vm, "PUT", "/migrate", '{"destination":"10.0.0.2:4444"}')).status).toBe(409);
    expect((await call(vm, "GET", "/migrate")).body).toMatchObject({ state: "active" });
    expect((await call(vm, "GET", "/stats")).status).toBe(200);
    expect((await call(vm, "PUT", "/actions", '{"action_type":"PowerOff"}')).status).toBe(204);
    expect(vm.stopped).toBe(true);
  });

  it("PUT /drives/{drive_id}/snapshot: 501 for a disk that cannot, 404 for no such drive, 204 when made", async () => {
    const vm = new FakeVm();
    const route = "/drives/{drive_id}/snapshot";
    const body = '{"overlay_path":"backup.qcow2"}';
    const no = await call(vm, "PUT", "/drives/disk0/snapshot", body, route);
    expect(no.status).toBe(501);
    expect(message(no)).toMatch(/not supported for this disk/);
    expect((await call(vm, "PUT", "/drives/disk7/snapshot", body, route)).status).toBe(404);
    vm.driveMode = "fail";
    expect((await call(vm, "PUT", "/drives/disk0/snapshot", body, route)).status).toBe(400);
    vm.driveMode = "ok";
    expect((await call(vm, "PUT", "/drives/disk0/snapshot", body, route)).status).toBe(204);
    expect(vm.calls).toEqual(["drive disk0 backup.qcow2"]);
    // A drive id outside [A-Za-z0-9_-]{1,64} is no resource at all.
    expect((await call(vm, "PUT", "/drives/..%2F..%2Fetc/snapshot", body)).status).toBe(404);
    expect((await call(vm, "PUT", `/drives/${"d".repeat(65)}/snapshot`, body)).status).toBe(404);
  });

  it("refuses malformed bodies with 400 and says what is wrong", async () => {
    const cases: [string, RegExp][] = [
      ["", /a JSON body is required: \{"state": "Paused"\|"Resumed"\}/],
      ["{", /the body is not JSON/],
      ["[]", /must be a JSON object/],
      ["null", /must be a JSON object/],
      ['"Paused"', /must be a JSON object/],
      ["{}", /missing field 'state'/],
      ['{"state":"Paused","x":1}', /unknown field 'x'/],
      ['{"__proto__":{"state":"Paused"}}', /unknown field '__proto__'/],
      ['{"state":1}', /field 'state' must be a string, not number/],
      ['{"state":null}', /must be a string, not null/],
      ['{"state":["Paused"]}', /must be a string, not object/],
      ['{"state":"paused"}', /'paused' is not one of Paused, Resumed/],
    ];
    for (const [body, why] of cases) {
      const vm = new FakeVm();
      const r = await call(vm, "PATCH", "/vm", body);
      expect(r.status, body).toBe(400);
      expect(message(r), body).toMatch(why);
      expect(vm.calls, body).toEqual([]);
    }
    const vm = new FakeVm();
    const long = await call(
      vm,
      "PUT",
      "/snapshot/create",
      JSON.stringify({ snapshot_path: "a".repeat(MAX_FIELD_LENGTH + 1) }),
    );
    expect(message(long)).toMatch(/longer than 4096/);
    const nul = await call(vm, "PUT", "/snapshot/create", '{"snapshot_path":"a\\u0000b"}');
    expect(message(nul)).toMatch(/NUL/);
    expect((await call(vm, "PUT", "/snapshot/create", '{"snapshot_path":""}')).status).toBe(400);
    expect(message(await call(vm, "GET", "/stats", '{"x":1}'))).toBe("GET /stats takes no body");
    expect(vm.calls).toEqual([]);
  });

  it("404 for an unknown path, 405 (with Allow) for a wrong method, 400 for a query string", async () => {
    const vm = new FakeVm();
    expect((await call(vm, "GET", "/nope")).status).toBe(404);
    expect((await call(vm, "GET", "/vm/")).status).toBe(404);
    const wrong = await call(vm, "DELETE", "/migrate");
    expect(wrong.status).toBe(405);
    expect(wrong.headers).toEqual({ Allow: "GET, PUT" });
    expect((await call(vm, "GET", "/stats?x=1")).status).toBe(400);
    expect((await call(vm, "GET", "*")).status).toBe(400);
    // A hostile method or path comes back escaped, never raw control characters.
    expect(message(await call(vm, "GET", "/\u001b[2J"))).toBe("no such resource: /\\u001b[2J");
  });

  it("answers 500 (not a crash) when the VM side throws something unexpected", async () => {
    const vm = new FakeVm();
    vm.statsThrows = true;
    const r = await call(vm, "GET", "/stats");
    expect(r.status).toBe(500);
    expect(message(r)).toBe("internal error: boom");
  });

  it("never throws, whatever the method, path and body", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "PUT", "PATCH", "POST", "DELETE", "\u0000"),
        fc.oneof(fc.constantFrom(...ROUTES.map((r) => r.path.replace("{drive_id}", "disk0"))), fc.string()),
        fc.oneof(fc.json(), fc.string()),
        async (method, target, body) => {
          const r = await handle(new FakeVm(), method, target, body);
          expect([200, 202, 204, 400, 404, 405, 409, 501]).toContain(r.status);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("serves exactly the OpenAPI file's paths, methods and request bodies", () => {
    const served = ROUTES.flatMap((r) => Object.keys(r.methods).map((m) => `${m} ${r.path}`)).sort();
    const documented = Object.entries(SPEC.paths)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    expect(served).toEqual(documented);
    for (const r of ROUTES) {
      for (const [m, op] of Object.entries(r.methods)) {
        const doc = SPEC.paths[r.path]![m.toLowerCase()]!;
        const schema = doc.requestBody && resolve(doc.requestBody.content["application/json"].schema);
        if (op.body === undefined) {
          expect(schema, `${m} ${r.path}`).toBeUndefined();
          continue;
        }
        expect(schema?.additionalProperties, `${m} ${r.path}`).toBe(false);
        expect(Object.keys(schema!.properties!).sort()).toEqual(Object.keys(op.body).sort());
        expect(schema!.required!.sort()).toEqual(Object.keys(op.body).sort());
        for (const [k, f] of Object.entries(op.body)) expect(schema!.properties![k]!.enum).toEqual(f.values);
        // Every body route documents the refusals of a malformed or oversized body.
        expect(Object.keys(doc.responses)).toEqual(
          expect.arrayContaining(["400", "404", "405", "413", "500"]),
        );
      }
    }
    expect(SPEC.openapi).toMatch(/^3\./);
  });
});
