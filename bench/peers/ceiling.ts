// The transport ceiling: raw uWebSockets.js speaking PROTOCOL.md's chat.v1.json, no persistence.
// ack is sent as soon as the message is appended to an in-memory array; msg goes out through a
// native uWS topic per room (app.publish), so this is what the transport alone can do.
// Run: CHAT_PORT=0 node --import tsx bench/peers/ceiling.ts
import uws from 'uWebSockets.js';
import { MemRooms, ROOM_RE, ID_RE, historyPage, pageJson } from './memlog.ts';

interface UserData { user: string; name: string; fromJson: string }

const PROTO = 'chat.v1.json';
const host = process.env.CHAT_HOST ?? '127.0.0.1';
const port = Number(process.env.CHAT_PORT ?? 8080);
const maxPayload = Number(process.env.CHAT_MAX_PAYLOAD ?? 65536);
const rooms = new MemRooms();
let anon = 0;
// Fault injection, to prove the harness catches broken servers: CEILING_FAULT=drop|dup|noack:<every N sends>
const [faultKind, faultEvery] = (process.env.CEILING_FAULT ?? '').split(':');
const faultN = Number(faultEvery) || 0;
let sends = 0;

const app = uws.App();

function error(code: string, message: string, ref?: unknown, cid?: unknown): string {
  const o: Record<string, unknown> = { op: 'error', code, message };
  if (typeof ref === 'string') o.ref = ref;
  if (typeof cid === 'string') o.cid = cid;
  return JSON.stringify(o);
}

/** ',"ref":"..."' or '' — appended to replies that echo a ref. */
const refPart = (ref: unknown): string => (typeof ref === 'string' ? ',"ref":' + JSON.stringify(ref) : '');

app.ws<UserData>('/ws', {
  maxPayloadLength: maxPayload,
  idleTimeout: 120,
  maxBackpressure: 4 * 1024 * 1024,
  closeOnBackpressureLimit: 1, // typed as number in this build; truthy = close slow consumers
  upgrade(res, req, context) {
    const offered = req.getHeader('sec-websocket-protocol');
    if (offered !== '' && !offered.split(',').some((p) => p.trim() === PROTO)) {
      res.writeStatus('400 Bad Request').end('unsupported subprotocol');
      return;
    }
    const user = req.getQuery('user') || 'anon-' + (++anon);
    const name = req.getQuery('name') || user;
    res.upgrade<UserData>(
      { user, name, fromJson: JSON.stringify({ id: user, name }) },
      req.getHeader('sec-websocket-key'),
      offered === '' ? '' : PROTO,
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  message(ws, data, isBinary) {
    let f: Record<string, unknown>;
    try {
      f = JSON.parse(Buffer.from(data).toString('utf8')); // Buffer.from(ArrayBuffer) is a view, no copy
      if (f === null || typeof f !== 'object' || Array.isArray(f)) throw new Error('not an object');
    } catch {
      ws.send(error('bad_frame', isBinary ? 'binary frames need chat.v1.msgpack' : 'not a JSON object'));
      return;
    }
    const ref = f.ref;
    const room = f.room;
    switch (f.op) {
      case 'send': {
        const text = f.text, cid = f.cid;
        if (typeof room !== 'string' || !ROOM_RE.test(room) || typeof text !== 'string' ||
            typeof cid !== 'string' || cid.length < 1 || cid.length > 128) {
          ws.send(error('invalid', 'send needs room, text and cid (1..128)', ref, cid));
          return;
        }
        const u = ws.getUserData();
        const r = rooms.get(room);
        const m = r.append(rooms.ids, u.fromJson, text, cid);
        const fault = faultN > 0 && ++sends % faultN === 0 ? faultKind : '';
        if (fault !== 'drop') app.publish(room, '{"op":"msg",' + m.json.slice(1)); // native fan-out: one call, no socket loop
        if (fault === 'dup') app.publish(room, '{"op":"msg",' + m.json.slice(1));
        if (fault !== 'noack') ws.send('{"op":"ack","cid":' + JSON.stringify(cid) + ',"room":"' + room + '","id":"' + m.id +
          '","seq":' + m.seq + ',"at":' + m.at + refPart(ref) + '}');
        return;
      }
      case 'join': {
        const since = f.since, limit = f.limit ?? 50;
        if (typeof room !== 'string' || !ROOM_RE.test(room) || (since !== undefined && (typeof since !== 'string' || !ID_RE.test(since))) ||
            typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0 || limit > 100) {
          ws.send(error('invalid', 'join needs a room, optional since (id) and limit 0..100', ref));
          return;
        }
        const r = rooms.get(room);
        let body: string;
        if (typeof since === 'string') {
          const s = r.since(since);
          body = '"messages":[' + s.json.join(',') + '],"recovered":' + s.recovered;
        } else {
          body = '"messages":[' + (limit === 0 ? '' : r.latest(limit).json.join(',')) + ']';
        }
        // joined then subscribe, synchronously: no msg can slip in between
        ws.send('{"op":"joined","room":"' + room + '","epoch":"' + r.epoch + '","seq":' + r.seq + ',' + body + refPart(ref) + '}');
        ws.subscribe(room);
        return;
      }
      case 'leave': {
        if (typeof room !== 'string' || !ROOM_RE.test(room)) { ws.send(error('invalid', 'leave needs a room', ref)); return; }
        ws.unsubscribe(room);
        ws.send('{"op":"left","room":"' + room + '"' + refPart(ref) + '}');
        return;
      }
      case 'history': {
        if (typeof room !== 'string' || !ROOM_RE.test(room)) { ws.send(error('invalid', 'history needs a room', ref)); return; }
        const p = historyPage(rooms.get(room), f.before, f.after, f.limit);
        if (typeof p === 'string') { ws.send(error('invalid', p, ref)); return; }
        ws.send('{"op":"history","room":"' + room + '","messages":[' + p.json.join(',') + '],"more":' + p.more + refPart(ref) + '}');
        return;
      }
      case 'ping':
        ws.send('{"op":"pong"' + refPart(ref) + '}');
        return;
      case 'typing': {
        if (typeof room !== 'string' || !ROOM_RE.test(room)) { ws.send(error('invalid', 'typing needs a room', ref)); return; }
        const u = ws.getUserData();
        ws.publish(room, '{"op":"typing","room":"' + room + '","user":' + u.fromJson + '}'); // ws.publish skips the sender
        return;
      }
      default:
        ws.send(error('unknown_op', 'unknown op', ref));
    }
  },
});

function sendJson(res: uws.HttpResponse, status: string, body: string): void {
  res.cork(() => { res.writeStatus(status).writeHeader('content-type', 'application/json').end(body); });
}

app.get('/healthz', (res) => sendJson(res, '200 OK', '{"ok":true,"peer":"ceiling"}'));
app.get('/api/rooms/:room/messages', (res, req) => {
  const room = req.getParameter(0) ?? '';
  if (!ROOM_RE.test(room)) { sendJson(res, '400 Bad Request', '{"error":{"code":"invalid","message":"bad room id"}}'); return; }
  const q = new URLSearchParams(req.getQuery() ?? '');
  const p = historyPage(rooms.get(room), q.get('before') ?? undefined, q.get('after') ?? undefined, q.get('limit') ?? undefined);
  if (typeof p === 'string') { sendJson(res, '400 Bad Request', JSON.stringify({ error: { code: 'invalid', message: p } })); return; }
  sendJson(res, '200 OK', pageJson(p));
});
app.any('/*', (res) => sendJson(res, '404 Not Found', '{"error":{"code":"not_found","message":"no such path"}}'));

app.listen(host, port, (ls) => {
  if (!ls) { console.error(`ceiling: cannot listen on ${host}:${port}`); process.exit(1); }
  console.log(`listening on ${host}:${uws.us_socket_local_port(ls)}`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
