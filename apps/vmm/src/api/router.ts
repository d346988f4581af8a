/**
 * The control socket's routes: a request (method, path, body text) in, a response
 * (status, JSON) out, over a VmControl. No HTTP here (server.ts does the transport), so
 * the routes are tested without a socket. docs/vmm-api.md describes them, and
 * apps/vmm/api/visor-api.json is their OpenAPI description (a test keeps the two equal).
 *
 * Every request body is untrusted: it must be one JSON object with exactly the fields the
 * route knows, each of the right type; anything else is a 400 naming what is wrong.
 */
import { ApiError, type VmControl } from "./control.ts";

export interface ApiResponse {
  status: number;
  /** Sent as JSON; none for 204. */
  body?: unknown;
  headers?: Record<string, string>;
}

type Method = "GET" | "PUT" | "PATCH";

/** One field of a request body: a string, one of `values` if given. */
interface FieldSpec {
  values?: readonly string[];
  /** A file system path: no NUL byte. */
  path?: boolean;
}

interface Operation {
  /** The body's fields (all required); undefined: the request takes no body. */
  body?: Record<string, FieldSpec>;
  run(c: VmControl, body: Record<string, string>, params: Record<string, string>): Promise<ApiResponse>;
}

interface Route {
  /** The path as the OpenAPI file writes it: /drives/{drive_id}/snapshot. */
  path: string;
  methods: Partial<Record<Method, Operation>>;
}

/** The longest string field taken (paths, addresses). */
export const MAX_FIELD_LENGTH = 4096;

const ok = (body: unknown, status = 200): ApiResponse => ({ status, body });
const noContent: ApiResponse = { status: 204 };

export const ROUTES: readonly Route[] = [
  {
    path: "/",
    methods: { GET: { run: async (c) => ok(c.info()) } },
  },
  {
    path: "/vm",
    methods: {
      PATCH: {
        body: { state: { values: ["Paused", "Resumed"] } },
        run: async (c, b) => {
          if (b.state === "Paused") c.pause();
          else c.resume();
          return noContent;
        },
      },
    },
  },
  {
    path: "/snapshot/create",
    methods: {
      PUT: {
        body: { snapshot_path: { path: true } },
        run: async (c, b) => ok(c.snapshot(b.snapshot_path!)),
      },
    },
  },
  {
    path: "/migrate",
    methods: {
      GET: { run: async (c) => ok(c.migration()) },
      PUT: {
        body: { destination: {} },
        run: async (c, b) => ok(c.migrate(b.destination!), 202),
      },
    },
  },
  {
    path: "/stats",
    methods: { GET: { run: async (c) => ok(c.stats()) } },
  },
  {
    path: "/actions",
    methods: {
      PUT: {
        body: { action_type: { values: ["PowerOff"] } },
        run: async (c) => {
          c.powerOff();
          return noContent;
        },
      },
    },
  },
  {
    path: "/drives/{drive_id}/snapshot",
    methods: {
      PUT: {
        body: { overlay_path: { path: true } },
        run: async (c, b, p) => {
          await c.snapshotDrive(p.drive_id!, b.overlay_path!);
          return noContent;
        },
      },
    },
  },
];

/** A path parameter: a short name of letters, digits, '-' and '_'. */
const PARAM = "([A-Za-z0-9_-]{1,64})";

const compiled = ROUTES.map((r) => ({
  route: r,
  names: [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!),
  pattern: new RegExp(`^${r.path.replace(/\{\w+\}/g, PARAM)}$`),
}));

export function fault(status: number, message: string, headers?: Record<string, string>): ApiResponse {
  return { status, body: { fault_message: message }, ...(headers ? { headers } : {}) };
}

/**
 * Answer one request. `target` is the request line's target (a path, no query); `body`
 * the body as text ("" when there is none). Never throws: an unexpected error is a 500.
 */
export async function handle(
  c: VmControl,
  method: string,
  target: string,
  body: string,
): Promise<ApiResponse> {
  if (!target.startsWith("/") || target.includes("?") || target.includes("#")) {
    return fault(400, `'${printable(target)}' is not a path (no query strings or fragments)`);
  }
  let found: { op: Partial<Record<Method, Operation>>; params: Record<string, string> } | undefined;
  for (const { route, names, pattern } of compiled) {
    const m = pattern.exec(target);
    if (m === null) continue;
    const params: Record<string, string> = {};
    names.forEach((n, i) => {
      params[n] = m[i + 1]!;
    });
    found = { op: route.methods, params };
    break;
  }
  if (found === undefined) return fault(404, `no such resource: ${printable(target)}`);
  const op = found.op[method as Method];
  if (op === undefined) {
    const allow = Object.keys(found.op).join(", ");
    return fault(405, `${printable(method)} is not allowed on ${target} (allowed: ${allow})`, {
      Allow: allow,
    });
  }
  let fields: Record<string, string> = {};
  if (op.body === undefined) {
    if (body.trim() !== "") return fault(400, `${method} ${target} takes no body`);
  } else {
    const parsed = parseBody(body, op.body);
    if (typeof parsed === "string") return fault(400, parsed);
    fields = parsed;
  }
  try {
    return await op.run(c, fields, found.params);
  } catch (e) {
    if (e instanceof ApiError) return fault(e.status, e.message);
    return fault(500, `internal error: ${(e as Error).message ?? String(e)}`);
  }
}

/** The body's fields, or a message saying what is wrong with it. */
function parseBody(text: string, spec: Record<string, FieldSpec>): Record<string, string> | string {
  if (text.trim() === "") return `a JSON body is required: {${describe(spec)}}`;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `the body is not JSON: ${(e as Error).message}`;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    return `the body must be a JSON object: {${describe(spec)}}`;
  const out: Record<string, string> = {};
  for (const k of Object.keys(v)) {
    if (!Object.hasOwn(spec, k)) return `unknown field '${printable(k)}' (expected {${describe(spec)}})`;
  }
  for (const [k, s] of Object.entries(spec)) {
    const x = (v as Record<string, unknown>)[k];
    if (x === undefined) return `missing field '${k}'`;
    if (typeof x !== "string") return `field '${k}' must be a string, not ${x === null ? "null" : typeof x}`;
    if (s.values !== undefined && !s.values.includes(x)) {
      return `field '${k}': '${printable(x)}' is not one of ${s.values.join(", ")}`;
    }
    if (x === "") return `field '${k}' is empty`;
    if (x.length > MAX_FIELD_LENGTH) return `field '${k}' is longer than ${MAX_FIELD_LENGTH} characters`;
    if (s.path && x.includes("\0")) return `field '${k}' contains a NUL character`;
    out[k] = x;
  }
  return out;
}

function describe(spec: Record<string, FieldSpec>): string {
  return Object.entries(spec)
    .map(([k, s]) => `"${k}": ${s.values ? s.values.map((v) => `"${v}"`).join("|") : "string"}`)
    .join(", ");
}

/** A client's string in a message: control characters escaped, cut at 200 characters. */
export function printable(s: string): string {
  const cut = s.length > 200 ? `${s.slice(0, 200)}...` : s;
  return JSON.stringify(cut).slice(1, -1);
}
