/**
 * gzip decompression through the web-standard `DecompressionStream` (available in Node
 * 18+, Deno and browsers), so the package core needs no `node:zlib`.
 */

// Minimal structural types: the package compiles against the plain ES library, which
// does not declare the WHATWG streams.
interface StreamWriter {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
}
interface StreamReader {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel(reason?: unknown): Promise<void>;
}
interface DecompressionStreamLike {
  readonly writable: { getWriter(): StreamWriter };
  readonly readable: { getReader(): StreamReader };
}
type DecompressionStreamCtor = new (format: "gzip") => DecompressionStreamLike;

/** True when the bytes start with the gzip member header ID1 ID2 = 1f 8b (RFC 1952 2.3.1). */
export function isGzip(data: Uint8Array): boolean {
  return data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b;
}

/** Thrown when decompressed data would exceed the caller's limit. */
export class GzipLimitError extends Error {
  override name = "GzipLimitError";
}

export interface GunzipOptions {
  /** Prefix of error messages: "<what>: corrupt gzip data". Default "gzip". */
  what?: string;
  /** Stop with a GzipLimitError once the output would exceed this many bytes. */
  maxBytes?: number;
}

/**
 * Decompresses a gzip stream. Any malformed input (bad header, bad deflate data, CRC or
 * length mismatch, truncation, trailing bytes) is an Error "<what>: corrupt gzip data".
 */
export async function gunzip(data: Uint8Array, opts: GunzipOptions = {}): Promise<Uint8Array> {
  const what = opts.what ?? "gzip";
  const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  const Ctor = (globalThis as { DecompressionStream?: DecompressionStreamCtor }).DecompressionStream;
  if (Ctor === undefined) throw new Error(`${what}: this JavaScript runtime has no DecompressionStream`);
  if (!isGzip(data)) throw new Error(`${what}: corrupt gzip data`);

  const ds = new Ctor("gzip");
  const writer = ds.writable.getWriter();
  const reader = ds.readable.getReader();
  // Feed the input while reading the output; errors surface on both sides, the reader's
  // is the one reported.
  const feeding = (async () => {
    await writer.write(data);
    await writer.close();
  })();
  feeding.catch(() => {});

  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value === undefined) continue;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new GzipLimitError(`${what}: decompressed data exceeds ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
    await feeding;
  } catch (e) {
    if (e instanceof GzipLimitError) throw e;
    throw new Error(`${what}: corrupt gzip data`, { cause: e });
  }

  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
