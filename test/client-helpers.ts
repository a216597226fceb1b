// Helpers for the client library's tests against a real engine: a tap on the library's WebSocket
// (the real `ws` socket, whose frames the test can see, hold back or cut), a collector of what a
// subscription delivers that resolves on events (never sleeps), and seeded jitter.

import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { onTestFailed } from 'vitest';
import WS from 'ws';
import type { ChatClient, ClientState, IncomingMessage, JoinOptions, ResetInfo, StateDetail, WebSocketConstructor, WebSocketLike } from '../client/src/index.ts';
import { rng } from './reliability-helpers.ts';
import type { Frame } from './support/client.ts';

/** A seeded jitter source for the client's backoff; the seed is printed if the test fails. */
export function seededRandom(): () => number {
  const seed = Number(process.env.CLIENT_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
  onTestFailed(() => console.error(`client test seed: CLIENT_TEST_SEED=${seed}`));
  return rng(seed);
}

/** Resolves when `check` holds; re-checked by `poke()`, rejects after `timeoutMs`. */
class Waiters {
  private list: (() => boolean)[] = [];

  until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      const test = (): boolean => {
        if (!check()) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      if (!test()) this.list.push(test);
    });
  }

  poke(): void {
    this.list = this.list.filter((t) => !t());
  }
}

/**
 * Every WebSocket a client opens through `tap.WebSocket` is a real `ws` socket; the tap records the
 * frames both ways, can hold back incoming frames (they never reach the client) and cut the
 * connection (the client sees 1006, as when the network goes away).
 */
export class Tap {
  readonly sockets: TappedSocket[] = [];
  /** Frames the client wrote, with the number of the connection (0-based). */
  readonly sent: { conn: number; f: Frame }[] = [];
  /** Frames the engine sent, with the number of the connection. */
  readonly received: { conn: number; f: Frame }[] = [];
  /** Incoming frames held back from the client. */
  readonly held: Frame[] = [];
  /** Incoming frames matching this are held back. */
  hold: ((f: Frame) => boolean) | null = null;
  /** Incoming frames matching this are replaced by what it returns before the client sees them. */
  rewrite: ((f: Frame) => Frame | null) | null = null;
  private readonly waiters = new Waiters();
  readonly WebSocket: WebSocketConstructor;

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const tap = this;
    this.WebSocket = class extends TappedSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, tap);
      }
    };
  }

  get current(): TappedSocket {
    const s = this.sockets.at(-1);
    if (s === undefined) throw new Error('no connection yet');
    return s;
  }

  until(what: string, check: (t: this) => boolean, timeoutMs?: number): Promise<void> {
    return this.waiters.until(what, () => check(this), timeoutMs);
  }

  /** Hand every held frame to the client now, in order, on the current connection. */
  release(): void {
    const frames = this.held.splice(0);
    for (const f of frames) this.current.deliver(f);
  }

  sentOps(op: string): { conn: number; f: Frame }[] {
    return this.sent.filter((s) => s.f.op === op);
  }

  /** @internal */
  event(): void {
    this.waiters.poke();
  }
}

export class TappedSocket implements WebSocketLike {
  private readonly ws: WS;
  private readonly conn: number;
  onopen: ((e: unknown) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;

  constructor(url: string, protocols: string | string[] | undefined, private readonly tap: Tap) {
    this.conn = tap.sockets.length;
    tap.sockets.push(this);
    this.ws = new WS(url, protocols);
    this.ws.onopen = (e) => { this.onopen?.(e); tap.event(); };
    this.ws.onerror = (e) => this.onerror?.(e);
    this.ws.onclose = (e) => { this.onclose?.({ code: e.code, reason: e.reason }); tap.event(); };
    this.ws.onmessage = (e) => {
      let f = JSON.parse(String(e.data)) as Frame;
      tap.received.push({ conn: this.conn, f });
      if (tap.hold?.(f)) {
        tap.held.push(f);
      } else {
        const out = tap.rewrite?.(f);
        if (out !== undefined && out !== null) f = out;
        this.deliver(f);
      }
      tap.event();
    };
  }

  deliver(f: Frame): void {
    this.onmessage?.({ data: JSON.stringify(f) });
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  send(data: string): void {
    this.tap.sent.push({ conn: this.conn, f: JSON.parse(data) as Frame });
    this.ws.send(data);
    this.tap.event();
  }

  close(code?: number, reason?: string): void {
    this.ws.close(code, reason);
  }

  /** Cut the TCP connection without a close handshake. */
  cut(): void {
    this.ws.terminate();
  }
}

/** What one subscription delivered: messages, resets, and the order of both. */
export class Seen {
  readonly messages: IncomingMessage[] = [];
  readonly resets: ResetInfo[] = [];
  /** For each reset, how many messages had been delivered before it. */
  readonly resetAt: number[] = [];
  private readonly waiters = new Waiters();

  handlers(extra: Partial<JoinOptions> = {}): JoinOptions {
    return {
      ...extra,
      onMessage: (m) => { this.messages.push(m); this.waiters.poke(); },
      onReset: (r) => { this.resets.push(r); this.resetAt.push(this.messages.length); this.waiters.poke(); },
    };
  }

  texts(): string[] {
    return this.messages.filter((m) => m.type === 'CHAT').map((m) => m.text ?? '');
  }

  until(what: string, check: (s: this) => boolean, timeoutMs?: number): Promise<void> {
    return this.waiters.until(what, () => check(this), timeoutMs);
  }

  /** Until a CHAT message with this text arrived; returns it. */
  async text(text: string): Promise<IncomingMessage> {
    await this.until(`message "${text}"`, (s) => s.messages.some((m) => m.text === text));
    return this.messages.find((m) => m.text === text)!;
  }
}

/** Seqs that do not strictly increase, as "a -> b" strings (empty when in order, each once). */
export function outOfOrder(ms: { seq: number }[]): string[] {
  const bad: string[] = [];
  for (let i = 1; i < ms.length; i++) if (ms[i].seq <= ms[i - 1].seq) bad.push(`${ms[i - 1].seq} -> ${ms[i].seq}`);
  return bad;
}

/** Resolves with the detail of the client's next transition into `state` that `pred` accepts. */
export function nextState(c: ChatClient, state: ClientState, pred: (d: StateDetail) => boolean = () => true, timeoutMs = 30_000): Promise<StateDetail> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`timed out waiting for state ${state}`)); }, timeoutMs);
    const off = c.on('state', (s, d) => {
      if (s !== state || !pred(d)) return;
      clearTimeout(timer);
      off();
      resolve(d);
    });
  });
}

/**
 * A TCP relay in front of a local port (as a load balancer would be) that answers the far end's
 * FIN with a reset. uWebSockets.js does not set SO_REUSEADDR on its listen socket, so a connection
 * a killed engine closed first would hold its port in TIME_WAIT for 60 s and a restart on that
 * port would fail ("cannot listen"); reset, the engine's side of it is gone at once.
 */
export async function relay(target: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ port: target, host: '127.0.0.1', allowHalfOpen: true });
    sockets.add(client).add(upstream);
    const drop = (): void => {
      for (const s of [client, upstream]) sockets.delete(s);
      if (!upstream.destroyed) upstream.resetAndDestroy();
      client.destroy();
    };
    upstream.on('end', drop).on('error', drop).on('close', drop);
    client.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
