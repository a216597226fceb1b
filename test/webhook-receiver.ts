// A real webhook receiver for the tests (node:http on 127.0.0.1): it records every request,
// verifies its signature with the verify.mjs of docs/webhooks.md (read from the page, so the
// documented code is what runs), and answers as the test says, switched at any moment: 200, a
// status, or holding the request open until released. Waiting is event-driven: a waiter is
// checked after every request.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './support/engine.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Evt = Record<string, any> & { id: string; type: string; room: string | null };

export interface Request {
  ids: string[];
  verified: boolean;
  status: number;
  events: Evt[];
  timestamp: string;
  /** When it arrived (ms, the receiver's clock). */
  at: number;
}

type Verify = (secret: string, headers: IncomingHttpHeaders, raw: Buffer, nowS?: number) => boolean;

/** The `verify.mjs` code block of docs/webhooks.md, imported as a module. */
export async function docsVerify(): Promise<Verify> {
  const page = readFileSync(join(ROOT, 'docs/webhooks.md'), 'utf8');
  const m = /<!-- verify\.mjs -->\n```js\n([\s\S]*?)```/.exec(page);
  if (!m) throw new Error('docs/webhooks.md has no verify.mjs block');
  const file = join(mkdtempSync(join(tmpdir(), 'verify-')), 'verify.mjs');
  writeFileSync(file, m[1]);
  return ((await import(pathToFileURL(file).href)) as { verify: Verify }).verify;
}

/** How to answer a request: a status, or 'hold' (answered 200 when the test releases it). */
export type Answer = number | 'hold';

export class Receiver {
  readonly requests: Request[] = [];
  /** Decides each answer; the default takes everything. */
  answer: (events: Evt[]) => Answer = () => 200;
  private readonly held: ServerResponse[] = [];
  private waiters: (() => void)[] = [];
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(secret: string): Promise<Receiver> {
    const verify = await docsVerify();
    let self: Receiver | null = null;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => self!.onRequest(verify(secret, req.headers, Buffer.concat(chunks)), req.headers, Buffer.concat(chunks), res));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    self = new Receiver(server, `http://127.0.0.1:${port}/hook`);
    return self;
  }

  private onRequest(verified: boolean, headers: IncomingHttpHeaders, raw: Buffer, res: ServerResponse): void {
    const events = (JSON.parse(raw.toString('utf8')) as { events: Evt[] }).events;
    const a = this.answer(events);
    this.requests.push({ ids: String(headers['x-chat-event-ids']).split(','), verified, status: a === 'hold' ? 200 : a, events, timestamp: String(headers['x-chat-timestamp']), at: Date.now() });
    if (a === 'hold') this.held.push(res);
    else res.writeHead(a).end();
    this.wake();
  }

  /** Answer every held request 200. */
  release(): void {
    for (const res of this.held.splice(0)) res.writeHead(200).end();
  }

  /** Events of the requests answered 2xx, in the order they arrived (repeats included). */
  delivered(): Evt[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300).flatMap((r) => r.events);
  }

  /** Distinct events delivered, by id. */
  deliveredById(): Map<string, Evt> {
    return new Map(this.delivered().map((e) => [e.id, e]));
  }

  /** Resolve once `check` holds (checked now and after every request). */
  waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; ${this.requests.length} requests so far`)), timeoutMs);
      const test = (): void => {
        if (check()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(test);
      };
      test();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** Within each room, the first delivery of each event follows the id order (repeats allowed). */
export function inRoomOrder(events: Evt[]): boolean {
  const last = new Map<string | null, number>();
  const seen = new Set<string>();
  for (const e of events) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    const prev = last.get(e.room) ?? 0;
    if (Number(e.id) < prev) return false;
    last.set(e.room, Number(e.id));
  }
  return true;
}
