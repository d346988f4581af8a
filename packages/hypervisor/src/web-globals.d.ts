/**
 * The few web-platform globals the machine uses. Browsers and Node both provide them;
 * the package compiles without DOM or Node type libraries so nothing else slips in.
 */
declare const performance: { now(): number };
declare function setTimeout(callback: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare function atob(data: string): string;
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array, options?: { stream?: boolean }): string;
}
