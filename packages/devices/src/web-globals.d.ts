/**
 * The few web-platform globals the devices use (qcow2 names, rate-limiter timers).
 * Browsers and Node both provide them; the package compiles without DOM or Node type
 * libraries so nothing else slips in.
 */
declare const performance: { now(): number };
declare function setTimeout(callback: () => void, ms?: number): unknown;
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array, options?: { stream?: boolean }): string;
}
