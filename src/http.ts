// The HTTP API: health, metrics, history, rooms for the host app, the caller's rooms and blocks,
// and the web client at `/` (with /app.js, /app.css and the client library under /client/). Every
// request is validated here; bad input is a 4xx with {"error":{"code","message"}}, never a 500.

import { readdirSync, readFileSync } from 'node:fs';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { RoomInfo } from '../workers/contract.ts';
import { USER_RE, type Authenticator, type Identity } from './auth.ts';
import { checkPage, ROOM_RE } from './codec.ts';
import type { Config } from './config.ts';
import type { Engine } from './engine.ts';
import { ChatError, ERRORS, type ErrorCode } from './errors.ts';
import type { Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { wellFormed } from './text.ts';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 201: '201 Created', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden',
  404: '404 Not Found', 405: '405 Method Not Allowed', 413: '413 Payload Too Large', 415: '415 Unsupported Media Type',
  426: '426 Upgrade Required', 429: '429 Too Many Requests', 500: '500 Internal Server Error', 503: '503 Service Unavailable',
};

const MAX_BODY = 64 * 1024;
const SUBJECT_RE = /^[^\u0000-\u001f\u007f]{1,128}$/;
const MAX_MEMBERS = 1000;

export function sendJson(res: HttpResponse, status: number, body: string): void {
  res.cork(() => {
    res.writeStatus(STATUS_TEXT[status] ?? `${status} Unknown`).writeHeader('content-type', 'application/json').end(body);
  });
}

export function sendError(res: HttpResponse, code: ErrorCode, message?: string): void {
  sendJson(res, ERRORS[code].status, JSON.stringify({ error: { code, message: message ?? ERRORS[code].message } }));
}

interface Ctx {
  who: Identity;
  params: string[];
  query: URLSearchParams;
  body: unknown;
}

interface Reply {
  status: number;
  /** A JSON string, already encoded. */
  json: string;
}

const ok = (value: unknown, status = 200): Reply => ({ status, json: JSON.stringify(value) });

/** A percent-encoded path segment, decoded and checked against its pattern. */
function pathParam(raw: string, what: string, re: RegExp, shape: string): string {
  let v: string;
  try {
    v = decodeURIComponent(raw);
  } catch {
    throw new ChatError('invalid', `${what} is not valid percent-encoding`);
  }
  if (!re.test(v)) throw new ChatError('invalid', `${what} must match ${shape}`);
  return v;
}

const roomParam = (raw: string): string => pathParam(raw, 'room', ROOM_RE, '[A-Za-z0-9._:-]{1,64}');
const userParam = (raw: string): string => pathParam(raw, 'user', USER_RE, '[A-Za-z0-9._:@-]{1,64}');

function requireAdmin(who: Identity): void {
  if (!who.admin) throw new ChatError('forbidden', 'this is the host app API: an admin token is required');
}

function obj(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ChatError('invalid', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}

function userList(v: unknown, name: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > MAX_MEMBERS || !v.every((u) => typeof u === 'string' && USER_RE.test(u))) {
    throw new ChatError('invalid', `${name} must be an array of at most ${MAX_MEMBERS} user ids`);
  }
  return v as string[];
}

function optText(v: unknown, name: string, re: RegExp): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || !re.test(v) || !wellFormed(v)) throw new ChatError('invalid', `${name} must be a string of 1..128 printable characters`);
  return v;
}

export function registerHttp(app: TemplatedApp, engine: Engine, auth: Authenticator, cfg: Config, log: Logger): void {
  /**
   * One wrapper for every JSON route: reads the request synchronously (it is invalid after the
   * handler returns), registers onAborted before any await, reads a bounded body, identifies the
   * caller, and turns ChatError into its status.
   */
  const route = (method: 'get' | 'post' | 'put' | 'del', pattern: string, nParams: number, withBody: boolean, fn: (c: Ctx) => Promise<Reply>): void => {
    app[method](pattern, (res: HttpResponse, req: HttpRequest) => {
      const params = Array.from({ length: nParams }, (_, i) => req.getParameter(i) ?? '');
      const rawQuery = req.getQuery() ?? '';
      const creds = { query: rawQuery, authorization: req.getHeader('authorization') };
      const contentType = req.getHeader('content-type');
      let aborted = false;
      res.onAborted(() => { aborted = true; });
      const bodyP = withBody ? readBody(res, contentType) : Promise.resolve(undefined);
      Promise.all([bodyP, auth.identify(creds)])
        .then(([body, who]) => fn({ who, params, query: new URLSearchParams(rawQuery), body }))
        .then((r) => { if (!aborted) sendJson(res, r.status, r.json); }, (err: unknown) => {
          if (aborted) return;
          if (err instanceof ChatError) return sendError(res, err.code, err.message);
          log.error({ err: String(err), route: pattern }, 'request failed');
          sendJson(res, 500, JSON.stringify({ error: { code: 'internal', message: 'internal error' } }));
        });
    });
  };

  app.get('/healthz', (res) => {
    const ok = engine.accepting;
    const body: Record<string, unknown> = { ok, store: engine.storeOk ? 'ok' : 'degraded', reason: engine.storeReason, connections: engine.stats.connections, buffered: engine.inflight };
    // A node whose bus is down still serves (rooms catch up from the store), so it stays 200.
    if (engine.bus !== null) body.cluster = { node: cfg.nodeId, bus: engine.bus.up ? 'up' : 'down' };
    sendJson(res, ok ? 200 : 503, JSON.stringify(body));
  });

  const metrics = new Metrics(engine, cfg);
  app.get('/metrics', (res) => {
    // prom-client renders asynchronously: register onAborted before the await.
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    metrics.render().then((text) => {
      if (aborted) return;
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', metrics.contentType).end(text);
      });
    }, (err: unknown) => {
      if (aborted) return;
      log.error({ err: String(err), route: '/metrics' }, 'request failed');
      sendJson(res, 500, JSON.stringify({ error: { code: 'internal', message: 'internal error' } }));
    });
  });

  // The dashboard's one JSON document: counters, buffer depth, p50/p99 from the histograms.
  app.get('/api/stats', (res) => sendJson(res, 200, JSON.stringify(metrics.snapshot())));

  route('get', '/api/rooms/:room/messages', 1, false, async ({ who, params, query }) => {
    const room = roomParam(params[0]);
    const limitRaw = query.get('limit');
    if (limitRaw !== null && !/^\d{1,4}$/.test(limitRaw)) throw new ChatError('invalid', 'limit must be an integer 1..100');
    const page = checkPage(query.get('before') || undefined, query.get('after') || undefined, limitRaw === null ? undefined : Number(limitRaw));
    if (typeof page === 'string') throw new ChatError('invalid', page);
    const p = await engine.history(room, page, { userId: who.id, admin: who.admin });
    return { status: 200, json: '{"messages":[' + p.messages.map((d) => d.json).join(',') + '],"more":' + p.more + '}' };
  });

  // Who is online in the room (user ids with a joined connection; on every node in a cluster).
  route('get', '/api/rooms/:room/online', 1, false, async ({ who, params }) => {
    const room = roomParam(params[0]);
    const online = await engine.online(room, { userId: who.id, admin: who.admin });
    return { status: 200, json: JSON.stringify({ room, online }) };
  });

  route('post', '/api/rooms/:room/messages', 1, true, async ({ who, params, body }) => {
    requireAdmin(who);
    const room = roomParam(params[0]);
    const text = obj(body).text;
    if (typeof text !== 'string' || text.length === 0 || text.length > cfg.maxPayload || !wellFormed(text)) throw new ChatError('invalid', 'text must be a non-empty, well-formed string');
    const r = await engine.postSystem(room, text);
    return ok({ room: r.room, id: r.id, seq: r.seq, at: r.at }, 201);
  });

  route('post', '/api/rooms', 0, true, async ({ who, body }) => {
    const b = obj(body);
    if (b.kind !== 'public' && b.kind !== 'group' && b.kind !== 'direct') throw new ChatError('invalid', 'kind must be public, group or direct');
    const id = b.id === undefined ? null : typeof b.id === 'string' && ROOM_RE.test(b.id) ? b.id : null;
    if (b.id !== undefined && id === null) throw new ChatError('invalid', 'id must match [A-Za-z0-9._:-]{1,64}');
    const r = await engine.createRoom(who, {
      id,
      kind: b.kind,
      name: optText(b.name, 'name', SUBJECT_RE),
      subject: optText(b.subject, 'subject', SUBJECT_RE),
      members: userList(b.members, 'members'),
    });
    return ok(r.room, r.created ? 201 : 200);
  });

  route('get', '/api/rooms', 0, false, async ({ who, query }) => {
    const subject = query.get('subject');
    if (subject === null || !SUBJECT_RE.test(subject) || !wellFormed(subject)) throw new ChatError('invalid', 'subject is required (1..128 printable characters)');
    return ok({ rooms: await engine.roomsBySubject(who, subject) });
  });

  route('del', '/api/rooms/:room', 1, false, async ({ who, params }) => {
    requireAdmin(who);
    const room = roomParam(params[0]);
    await engine.deleteRoom(room);
    return ok({ deleted: room });
  });

  route('post', '/api/rooms/:room/members', 1, true, async ({ who, params, body }) => {
    requireAdmin(who);
    const users = userList(obj(body).users, 'users');
    if (users.length === 0) throw new ChatError('invalid', 'users must name at least one user');
    return ok(await engine.setMembers(roomParam(params[0]), users, true) satisfies RoomInfo);
  });

  route('del', '/api/rooms/:room/members/:user', 2, false, async ({ who, params }) => {
    requireAdmin(who);
    return ok(await engine.setMembers(roomParam(params[0]), [userParam(params[1])], false));
  });

  route('get', '/api/me/rooms', 0, false, async ({ who }) => ok({ rooms: await engine.myRooms(who) }));

  route('get', '/api/me/blocks', 0, false, async ({ who }) => ok({ blocked: engine.blockList(who.id) }));

  route('put', '/api/me/blocks/:user', 1, false, async ({ who, params }) => {
    const other = userParam(params[0]);
    if (other === who.id) throw new ChatError('invalid', 'you cannot block yourself');
    await engine.setBlock(who.id, other, true);
    return ok({ blocked: engine.blockList(who.id) });
  });

  route('del', '/api/me/blocks/:user', 1, false, async ({ who, params }) => {
    await engine.setBlock(who.id, userParam(params[0]), false);
    return ok({ blocked: engine.blockList(who.id) });
  });

  // The web client: the page, its script and styles, and the client library (client/dist), all from
  // this origin; its CSP allows no inline script and no other host. The live dashboard at
  // /dashboard is one self-contained page; it polls /api/stats.
  const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
  const DASHBOARD_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
  const serve = (path: string, body: string | null, type: string, csp: string | null, missing: string): void => {
    app.get(path, (res) => {
      if (body === null) return sendError(res, 'not_found', missing);
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', type);
        if (csp !== null) res.writeHeader('content-security-policy', csp);
        res.writeHeader('x-content-type-options', 'nosniff').writeHeader('referrer-policy', 'no-referrer').end(body);
      });
    });
  };
  const HTML = 'text/html; charset=utf-8';
  const JS = 'text/javascript; charset=utf-8';
  const noPage = 'the web client is not built into this engine';
  serve('/', loadFile(new URL('./web/index.html', import.meta.url)), HTML, PAGE_CSP, noPage);
  serve('/app.js', loadFile(new URL('./web/app.js', import.meta.url)), JS, null, noPage);
  serve('/app.css', loadFile(new URL('./web/app.css', import.meta.url)), 'text/css; charset=utf-8', null, noPage);
  serve('/dashboard', loadFile(new URL('./web/dashboard.html', import.meta.url)), HTML, DASHBOARD_CSP, 'the dashboard is not built into this engine');
  const lib = clientModules();
  if (lib.size === 0) log.warn({}, 'the client library is not built (client/dist): the web page at / cannot run; run npm run build');
  for (const [name, body] of lib) serve(`/client/${name}`, body, JS, null, noPage);

  app.get('/ws', (res) => sendError(res, 'invalid', 'this endpoint speaks WebSocket only'));
  app.any('/*', (res, req) => {
    const known = req.getUrl().startsWith('/api/');
    sendError(res, 'not_found', known ? 'no such route (check the method and path)' : 'no such route');
  });
}

function loadFile(url: URL): string | null {
  try {
    return readFileSync(url, 'utf8');
  } catch {
    return null;
  }
}

/** The client library's ES modules (client/dist/*.js), by file name; empty when it is not built. */
function clientModules(): Map<string, string> {
  const dir = new URL('../client/dist/', import.meta.url);
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const body = /^[a-z-]+\.js$/.test(name) ? loadFile(new URL(name, dir)) : null;
    if (body !== null) out.set(name, body);
  }
  return out;
}

/** Read a JSON body of at most MAX_BODY bytes. */
function readBody(res: HttpResponse, contentType: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (contentType !== '' && !contentType.toLowerCase().startsWith('application/json')) {
      // Drain nothing; answer at once.
      reject(new ChatError('invalid', 'send the body as application/json'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((chunk, isLast) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > MAX_BODY) {
        failed = true;
        reject(new ChatError('too_large', `the body exceeds ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory after this call
      if (isLast) {
        const text = Buffer.concat(chunks).toString('utf8');
        if (text.trim() === '') return resolve(undefined);
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new ChatError('invalid', 'the body is not valid JSON'));
        }
      }
    });
  });
}
