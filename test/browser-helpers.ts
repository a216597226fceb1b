// Helpers for the browser end-to-end test: Debian's Chromium through playwright-core (never a
// downloaded browser), a stand-in origin in front of the engine that the test can cut, and probes of
// which engine features exist yet.

import { existsSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Client, type Frame } from './support/client.ts';
import { ROOT, type EngineProc } from './support/engine.ts';

export const CHROMIUM_PATH = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic'];
export const PAGE_PATH = join(ROOT, 'src', 'web', 'index.html');

export const IN_CI = process.env.CI === 'true';
export const HAVE_CHROMIUM = existsSync(CHROMIUM_PATH);

/** Under CI a missing browser is a failure; on a developer's box the suite skips, loudly. */
export function browserAvailable(): boolean {
  if (HAVE_CHROMIUM || IN_CI) return true;
  console.warn(`\n*** browser e2e SKIPPED: ${CHROMIUM_PATH} is missing (apt-get install -y chromium). Under CI=true this fails. ***\n`);
  return false;
}

export function launch(): Promise<Browser> {
  if (!HAVE_CHROMIUM) throw new Error(`${CHROMIUM_PATH} is missing: install Debian's chromium (apt-get install -y chromium); the e2e test never downloads a browser`);
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
}

/**
 * A stand-in for the engine's own origin: every request (the page, its script, the client library,
 * the API) and the WebSocket upgrade go through to the engine, so the page runs exactly as when
 * the engine serves it (its CSP, ws://<host>/ws, same-origin /api), and the test can cut its
 * sockets to make it reconnect. (Playwright's route.fulfill cannot stand in: Chromium's
 * local-network-access checks treat a fulfilled page as public and block its socket.)
 */
export class StandIn {
  private readonly sockets = new Set<Duplex>();
  private refusing = false;
  private readonly server: Server;
  http = '';

  private constructor(private readonly eng: EngineProc) {
    this.server = createServer((req, res) => {
      const up = request({ host: '127.0.0.1', port: this.eng.port, method: req.method, path: req.url, headers: req.headers }, (r: IncomingMessage) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.writeHead(502).end());
      req.pipe(up);
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  static async start(eng: EngineProc): Promise<StandIn> {
    const s = new StandIn(eng);
    await new Promise<void>((res) => s.server.listen(0, '127.0.0.1', res));
    s.http = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  /** Relay the upgrade request as it came, then the bytes both ways. */
  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.refusing) {
      socket.destroy();
      return;
    }
    const up: Socket = connect(this.eng.port, '127.0.0.1', () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(raw + '\r\n');
      if (head.length > 0) up.write(head);
      socket.pipe(up).pipe(socket);
    });
    this.sockets.add(socket);
    const drop = (): void => {
      this.sockets.delete(socket);
      socket.destroy();
      up.destroy();
    };
    socket.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
  }

  /** Drop every relayed WebSocket and refuse new ones until resume(). */
  cut(): void {
    this.refusing = true;
    for (const s of [...this.sockets]) s.destroy();
  }

  resume(): void {
    this.refusing = false;
  }

  close(): Promise<void> {
    this.cut();
    this.server.closeAllConnections();
    return new Promise((res) => this.server.close(() => res()));
  }
}

export interface Features {
  /** GET / answers the page (text/html). */
  rootPage: boolean;
  /** The `read` op is answered with {op:'read', unread}. */
  readOp: boolean;
  /** join stores and delivers an ENTER message. */
  enter: boolean;
  /** A member's disconnect stores and delivers a QUIT message right away. */
  quit: boolean;
  /** GET /api/me/rooms answers {rooms:[...]}. */
  meRooms: boolean;
}

/** Ask the engine, over the wire, which of the features the page uses it has. Never sleeps. */
export async function probe(eng: EngineProc): Promise<Features> {
  const root = await fetch(`${eng.http}/`);
  const rootPage = root.status === 200 && (root.headers.get('content-type') ?? '').startsWith('text/html');
  await root.arrayBuffer();

  const me = await fetch(`${eng.http}/api/me/rooms?user=probe-a&name=probe`);
  let meRooms = false;
  if (me.status === 200) meRooms = Array.isArray(((await me.json()) as Frame).rooms);
  else await me.arrayBuffer();

  const a = await Client.connect(eng.url, { user: 'probe-a', name: 'probe' });
  const b = await Client.connect(eng.url, { user: 'probe-b', name: 'probe' });
  const room = 'probe-room';
  const ja = await a.request({ op: 'join', room });
  await b.request({ op: 'join', room });
  // Messages arrive in seq order: anything stored for the joins comes before this CHAT.
  const first = await a.request({ op: 'send', room, text: 'probe', cid: 'probe-1' });
  const chat1 = await a.waitFor((f) => f.op === 'msg' && f.cid === 'probe-1', 10_000, 'probe chat');
  const before1 = [...ja.messages, ...a.frames.slice(0, a.frames.indexOf(chat1)).filter((f) => f.op === 'msg')];
  const enter = before1.some((m: Frame) => m.type === 'ENTER');

  const read = await a.request({ op: 'read', room, upTo: first.id });
  let readOp: boolean;
  if (read.op === 'read') readOp = true;
  else if (read.op === 'error' && read.code === 'unknown_op') readOp = false;
  else throw new Error(`unexpected reply to read: ${JSON.stringify(read)}`);

  // b's close handler has run by the time its close handshake completes; a QUIT stored then
  // comes before a's next CHAT.
  await b.close();
  await a.request({ op: 'send', room, text: 'probe 2', cid: 'probe-2' });
  const chat2 = await a.waitFor((f) => f.op === 'msg' && f.cid === 'probe-2', 10_000, 'probe chat 2');
  const quit = a.frames.slice(a.frames.indexOf(chat1), a.frames.indexOf(chat2)).some((f) => f.op === 'msg' && f.type === 'QUIT');
  await a.close();
  return { rootPage, readOp, enter, quit, meRooms };
}

/** Type a nickname, join a room through the UI and wait until the engine answered `joined`. */
export async function joinAs(page: Page, nickname: string, room: string): Promise<void> {
  const nick = page.getByTestId('nickname');
  if ((await nick.inputValue()) !== nickname) await nick.fill(nickname);
  await page.getByTestId('room').fill(room);
  await page.getByTestId('join').click();
  await page.getByTestId('status').and(page.locator('[data-state=connected]')).waitFor();
  await page.locator(`[data-testid=room-item][data-room="${room}"]`).waitFor();
  await page.waitForFunction((r) => {
    const h = document.querySelector('[data-testid=active-room]');
    const m = document.querySelector('[data-testid=messages] .empty');
    return h?.textContent === r && (m === null || m.textContent !== 'Joining\u2026');
  }, room);
}

export async function sendText(page: Page, text: string): Promise<void> {
  await page.getByTestId('send-text').fill(text);
  await page.getByTestId('send-button').click();
}

/** The text of every rendered message of the active room, oldest first. */
export function messageTexts(page: Page): Promise<string[]> {
  return page.getByTestId('message-text').allTextContents();
}

export function badge(page: Page, room: string): Promise<string | null> {
  return page.locator(`[data-testid=room-item][data-room="${room}"] [data-testid=unread-badge]`).getAttribute('data-count');
}

/** The dashboard's rates and the engine's own (its counters' growth around two of the page's polls). */
export interface DashboardRates { rateIn: number; rateOut: number; engineIn: number; engineOut: number; offered: number; s1: Frame }

/**
 * Load for the dashboard: 4 connections in one room, each sending every 50 ms (80 messages/s
 * offered); `measure()` waits for the page to show it, then reads the page's rates and the
 * engine's around two polls. The caller stops `timers`.
 */
export async function dashboardLoad(eng: EngineProc, page: Page): Promise<{ clients: Client[]; sentBy: number[]; timers: NodeJS.Timeout[]; measure: () => Promise<DashboardRates> }> {
  const room = 'dash-room';
  const clients = await Promise.all([0, 1, 2, 3].map((i) => Client.connect(eng.url, { user: `dash-${i}`, name: `Dash ${i}` })));
  for (const c of clients) await c.request({ op: 'join', room });
  const every = 50;
  const offered = (clients.length * 1000) / every;
  const sentBy = clients.map(() => 0);
  const timers = clients.map((c, i) => setInterval(() => c.send({ op: 'send', room, text: 'load', cid: `d${i}-${sentBy[i]++}` }), every));
  const num = async (id: string): Promise<number> => Number((await page.getByTestId(id).innerText()).replace(/,/g, ''));
  const measure = async (): Promise<DashboardRates> => {
    // The page's numbers become non-zero: 4 connections, messages flowing in and out.
    await page.waitForFunction(() => {
      const n = (id: string): number => Number(document.querySelector(`[data-testid="${id}"]`)!.textContent!.replace(/,/g, ''));
      return n('connections') === 4 && n('rate-in') > 0 && n('rate-out') > 0;
    }, undefined, { timeout: 15_000 });
    const polls = async (): Promise<number> => Number(await page.getByTestId('poll-status').getAttribute('data-polls'));
    const s0 = (await (await fetch(`${eng.http}/api/stats`)).json()) as Frame;
    const p0 = await polls();
    await page.waitForFunction((p) => Number(document.querySelector('[data-testid="poll-status"]')!.getAttribute('data-polls')) >= p + 2, p0, { timeout: 10_000 });
    const [rateIn, rateOut] = [await num('rate-in'), await num('rate-out')];
    const s1 = (await (await fetch(`${eng.http}/api/stats`)).json()) as Frame;
    const dt = (s1.uptimeMs - s0.uptimeMs) / 1000;
    return { rateIn, rateOut, engineIn: (s1.accepted - s0.accepted) / dt, engineOut: (s1.delivered - s0.delivered) / dt, offered, s1 };
  };
  return { clients, sentBy, timers, measure };
}
