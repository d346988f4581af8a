/**
 * The OpenAPI file (apps/vmm/api/visor-api.json) for the control socket's tests, and a
 * checker for the part of JSON Schema it uses (object, array, string, integer, number,
 * boolean; required, additionalProperties false, enum, $ref): every answer a test sees
 * must be what the file says it is.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface Schema {
  $ref?: string;
  type?: string;
  enum?: unknown[];
  required?: string[];
  additionalProperties?: boolean;
  properties?: Record<string, Schema>;
  items?: Schema;
}

export interface Operation {
  requestBody?: { content: { "application/json": { schema: Schema } } };
  responses: Record<string, { content?: { "application/json": { schema: Schema } } }>;
  parameters?: { name: string; in: string }[];
}

export const SPEC = JSON.parse(
  readFileSync(join(import.meta.dirname, "../../api/visor-api.json"), "utf8"),
) as {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
};

export function resolve(s: Schema): Schema {
  if (s.$ref === undefined) return s;
  const name = s.$ref.replace("#/components/schemas/", "");
  const target = SPEC.components.schemas[name];
  if (target === undefined) throw new Error(`no schema ${s.$ref}`);
  return resolve(target);
}

/** Where `v` breaks `schema` ("" when it does not), `at` naming the place. */
export function violation(v: unknown, schema: Schema, at = "$"): string {
  const s = resolve(schema);
  if (s.enum !== undefined && !s.enum.includes(v))
    return `${at}: ${JSON.stringify(v)} is not one of ${s.enum}`;
  switch (s.type) {
    case "string":
      return typeof v === "string" ? "" : `${at}: not a string`;
    case "boolean":
      return typeof v === "boolean" ? "" : `${at}: not a boolean`;
    case "number":
      return typeof v === "number" && Number.isFinite(v) ? "" : `${at}: not a number`;
    case "integer":
      return Number.isSafeInteger(v) ? "" : `${at}: not an integer`;
    case "array": {
      if (!Array.isArray(v)) return `${at}: not an array`;
      for (let i = 0; i < v.length; i++) {
        const w = violation(v[i], s.items!, `${at}[${i}]`);
        if (w !== "") return w;
      }
      return "";
    }
    case "object": {
      if (typeof v !== "object" || v === null || Array.isArray(v)) return `${at}: not an object`;
      const o = v as Record<string, unknown>;
      for (const k of s.required ?? []) if (!(k in o)) return `${at}: no ${k}`;
      for (const [k, x] of Object.entries(o)) {
        const p = s.properties?.[k];
        if (p === undefined) {
          if (s.additionalProperties === false) return `${at}: ${k} is not in the schema`;
          continue;
        }
        const w = violation(x, p, `${at}.${k}`);
        if (w !== "") return w;
      }
      return "";
    }
    default:
      throw new Error(`${at}: the checker does not know type ${s.type}`);
  }
}

/**
 * Throws unless `status` is a response the file lists for `method` on the route `path`
 * (an OpenAPI path, /drives/{drive_id}/snapshot) and `body` fits its schema; or, for a
 * path or method the file does not have, a 404 or 405 with an error body.
 */
export function checkResponse(method: string, path: string, status: number, body: unknown): void {
  const error = { $ref: "#/components/schemas/Error" };
  // A path the file does not have is a 404; a method it does not list there, a 405.
  const expected = SPEC.paths[path] === undefined ? 404 : 405;
  const op = SPEC.paths[path]?.[method.toLowerCase()];
  if (op === undefined) {
    if (status !== expected) throw new Error(`${method} ${path}: ${status}, not ${expected}`);
    const w = violation(body, error);
    if (w !== "") throw new Error(`${method} ${path} ${status}: ${w}`);
    return;
  }
  const r = op.responses[String(status)];
  if (r === undefined) throw new Error(`the OpenAPI file lists no ${status} for ${method} ${path}`);
  const schema = r.content?.["application/json"].schema;
  if (schema === undefined) {
    if (body !== undefined && body !== "")
      throw new Error(`${method} ${path} ${status}: a body where none is documented`);
    return;
  }
  const w = violation(body, schema);
  if (w !== "") throw new Error(`${method} ${path} ${status}: ${w}`);
}
