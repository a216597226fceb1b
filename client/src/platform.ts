// What the library needs from its platform (a browser or Node >= 20): a WebSocket, timers and
// random bytes. Typed here structurally, so the published declarations carry no DOM or Node types.

/**
 * A bivariant callback type: a handler declared for a richer event (the browser's MessageEvent,
 * `ws`'s) fits where the library only reads a few fields of it.
 */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/** The part of the WebSocket API the library uses; the browser's WebSocket and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `ws`'s default export in Node. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** readyState of an open socket (the same in every implementation). */
export const OPEN = 1;

interface Globals {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  crypto?: { getRandomValues(bytes: Uint8Array): Uint8Array };
  WebSocket?: WebSocketConstructor;
}

const g = globalThis as unknown as Globals;

/** Run `fn` after `ms`; returns the function that cancels it. */
export function after(ms: number, fn: () => void): () => void {
  const handle = g.setTimeout(fn, ms);
  return () => g.clearTimeout(handle);
}

/** The global WebSocket, if the platform has one (browsers; Node 22+). */
export function globalWebSocket(): WebSocketConstructor | undefined {
  return g.WebSocket;
}

/** `n` cryptographically random bytes (Web Crypto: browsers, and Node >= 19's global crypto). */
export function randomBytes(n: number): Uint8Array {
  if (g.crypto === undefined) throw new Error('no Web Crypto on this platform (globalThis.crypto): @uchat/client needs Node >= 20 or a browser');
  return g.crypto.getRandomValues(new Uint8Array(n));
}

/** Length of a string in UTF-8 bytes (lone surrogates count as the 3 bytes of U+FFFD). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
