// What a team writes without us: the `ws` library plus better-sqlite3, each message committed in its
// own transaction before the ack, broadcast by looping over the room's sockets. Same protocol
// (chat.v1.json), same durability setting as the engine's default (WAL, synchronous=NORMAL).
// Run: CHAT_PORT=0 CHAT_STORE=sqlite:/tmp/x.db node --import tsx bench/peers/ws-sqlite.ts
import http from 'node:http';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { WebSocketServer, type WebSocket } from 'ws';
import { TsidGen } from '../lib/tsid.ts';
import { ROOM_RE, ID_RE } from './memlog.ts';

const host = process.env.CHAT_HOST ?? '127.0.0.1';
const port = Number(process.env.CHAT_PORT ?? 8080);
const store = process.env.CHAT_STORE ?? 'sqlite:./data/ws-sqlite.db';
if (!store.startsWith('sqlite:')) { console.error('ws-sqlite: CHAT_STORE must be sqlite:<path>'); process.exit(1); }
const file = store.slice('sqlite:'.length);
mkdirSync(path.dirname(path.resolve(file)), { recursive: true });

const db = new Database(file);
db.pragma('journal_mode = WAL');
db.pragma(`synchronous = ${process.env.CHAT_SQLITE_SYNC === 'full' ? 'FULL' : 'NORMAL'}`);
db.exec(`CREATE TABLE IF NOT EXISTS messages (
  room TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, from_id TEXT NOT NULL, from_name TEXT NOT NULL,
  text TEXT NOT NULL, at INTEGER NOT NULL, cid TEXT, PRIMARY KEY (room, seq)) WITHOUT ROWID;
  CREATE UNIQUE INDEX IF NOT EXISTS messages_id ON messages (room, id);
  CREATE UNIQUE INDEX IF NOT EXISTS messages_cid ON messages (from_id, cid);`);
const insert = db.prepare('INSERT INTO messages (room, seq, id, from_id, from_name, text, at, cid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
const bySenderCid = db.prepare('SELECT room, seq, id, at FROM messages WHERE from_id = ? AND cid = ?');
const maxSeq = db.prepare('SELECT MAX(seq) AS s FROM messages WHERE room = ?');
const latest = db.prepare('SELECT * FROM (SELECT * FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq');
const before = db.prepare('SELECT * FROM (SELECT * FROM messages WHERE room = ? AND id < ? ORDER BY seq DESC LIMIT ?) ORDER BY seq');
const after = db.prepare('SELECT * FROM messages WHERE room = ? AND id > ? ORDER BY seq LIMIT ?');

interface Row { room: string; seq: number; id: string; from_id: string; from_name: string; text: string; at: number; cid: string | null }
const toMsg = (r: Row): Record<string, unknown> => ({ id: r.id, room: r.room, seq: r.seq, type: 'CHAT', from: { id: r.from_id, name: r.from_name }, text: r.text, at: r.at, ...(r.cid === null ? {} : { cid: r.cid }) });

const ids = new TsidGen();
const epoch = 'ws-sqlite-1';
const roomSeq = new Map<string, number>();
const members = new Map<string, Set<WebSocket>>();
const seqOf = (room: string): number => {
  let s = roomSeq.get(room);
  if (s === undefined) { s = (maxSeq.get(room) as { s: number | null }).s ?? 0; roomSeq.set(room, s); }
  return s;
};

function page(room: string, b: unknown, a: unknown, l: unknown): { messages: Row[]; more: boolean } | string {
  const limit = l === undefined || l === '' || l === null ? 50 : Number(l);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) return 'limit must be 1..100';
  for (const c of [b, a]) if (c !== undefined && c !== null && c !== '' && (typeof c !== 'string' || !ID_RE.test(c))) return 'cursor must be a message id';
  if (typeof a === 'string' && a !== '') { const rows = after.all(room, a, limit + 1) as Row[]; return { messages: rows.slice(0, limit), more: rows.length > limit }; }
  const rows = (typeof b === 'string' && b !== '' ? before.all(room, b, limit + 1) : latest.all(room, limit + 1)) as Row[];
  return { messages: rows.slice(rows.length > limit ? 1 : 0), more: rows.length > limit };
}

const server = http.createServer((req, res) => {
  const u = new URL(req.url ?? '/', 'http://x');
  const send = (status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)); };
  if (u.pathname === '/healthz') return send(200, { ok: true, peer: 'ws-sqlite' });
  const m = /^\/api\/rooms\/([^/]+)\/messages$/.exec(u.pathname);
  if (req.method === 'GET' && m) {
    const room = decodeURIComponent(m[1]);
    if (!ROOM_RE.test(room)) return send(400, { error: { code: 'invalid', message: 'bad room id' } });
    const p = page(room, u.searchParams.get('before') ?? undefined, u.searchParams.get('after') ?? undefined, u.searchParams.get('limit') ?? undefined);
    if (typeof p === 'string') return send(400, { error: { code: 'invalid', message: p } });
    return send(200, { messages: p.messages.map(toMsg), more: p.more });
  }
  send(404, { error: { code: 'not_found', message: 'no such path' } });
});

const wss = new WebSocketServer({
  server, path: '/ws', maxPayload: Number(process.env.CHAT_MAX_PAYLOAD ?? 65536),
  handleProtocols: (offered) => (offered.has('chat.v1.json') ? 'chat.v1.json' : false),
});
let anon = 0;
wss.on('connection', (ws, req) => {
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  const user = q.get('user') || `anon-${++anon}`;
  const name = q.get('name') || user;
  const joined = new Set<string>();
  const reply = (o: Record<string, unknown>, ref: unknown): void => { ws.send(JSON.stringify(typeof ref === 'string' ? { ...o, ref } : o)); };
  ws.on('close', () => { for (const r of joined) members.get(r)?.delete(ws); });
  ws.on('message', (data) => {
    let f: Record<string, unknown>;
    try { f = JSON.parse(String(data)); if (f === null || typeof f !== 'object' || Array.isArray(f)) throw new Error(); }
    catch { reply({ op: 'error', code: 'bad_frame', message: 'not a JSON object' }, undefined); return; }
    const { op, room, ref } = f;
    if (op === 'ping') return reply({ op: 'pong' }, ref);
    if (typeof room !== 'string' || !ROOM_RE.test(room)) return reply({ op: 'error', code: op === undefined || ['send', 'join', 'leave', 'history'].includes(String(op)) ? 'invalid' : 'unknown_op', message: 'bad room', ...(typeof f.cid === 'string' ? { cid: f.cid } : {}) }, ref);
    if (op === 'send') {
      const { text, cid } = f;
      if (typeof text !== 'string' || typeof cid !== 'string' || cid.length < 1 || cid.length > 128) return reply({ op: 'error', code: 'invalid', message: 'send needs text and cid', ...(typeof cid === 'string' ? { cid } : {}) }, ref);
      const dup = bySenderCid.get(user, cid) as { room: string; seq: number; id: string; at: number } | undefined;
      if (dup) return reply({ op: 'ack', cid, room: dup.room, id: dup.id, seq: dup.seq, at: dup.at }, ref);
      const seq = seqOf(room) + 1;
      const id = ids.next(), at = Date.now();
      insert.run(room, seq, id, user, name, text, at, cid); // autocommit: one transaction (and WAL append) per message
      roomSeq.set(room, seq);
      const msg = JSON.stringify({ op: 'msg', id, room, seq, type: 'CHAT', from: { id: user, name }, text, at, cid });
      for (const m of members.get(room) ?? []) m.send(msg); // the usual loop over sockets
      return reply({ op: 'ack', cid, room, id, seq, at }, ref);
    }
    if (op === 'join') {
      const limit = f.limit ?? 50;
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0 || limit > 100) return reply({ op: 'error', code: 'invalid', message: 'limit 0..100' }, ref);
      let messages: Row[] = [];
      let recovered: boolean | undefined;
      if (typeof f.since === 'string') {
        if (!ID_RE.test(f.since)) return reply({ op: 'error', code: 'invalid', message: 'since must be a message id' }, ref);
        messages = after.all(room, f.since, 1_000_000) as Row[]; recovered = true;
      } else if (limit > 0) messages = latest.all(room, limit) as Row[];
      let set = members.get(room);
      if (!set) { set = new Set(); members.set(room, set); }
      set.add(ws); joined.add(room);
      return reply({ op: 'joined', room, epoch, seq: seqOf(room), messages: messages.map(toMsg), ...(recovered === undefined ? {} : { recovered }) }, ref);
    }
    if (op === 'leave') { members.get(room)?.delete(ws); joined.delete(room); return reply({ op: 'left', room }, ref); }
    if (op === 'history') {
      const p = page(room, f.before, f.after, f.limit);
      if (typeof p === 'string') return reply({ op: 'error', code: 'invalid', message: p }, ref);
      return reply({ op: 'history', room, messages: p.messages.map(toMsg), more: p.more }, ref);
    }
    reply({ op: 'error', code: 'unknown_op', message: 'unknown op' }, ref);
  });
});

server.listen(port, host, () => {
  const a = server.address();
  console.log(`listening on ${host}:${typeof a === 'object' && a ? a.port : port}`);
});
const stop = (): void => { wss.close(); server.close(); db.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
