// What a Node team picks instead: Socket.IO 4 with its rooms and acknowledgements, nothing on disk.
// Events: join({room, limit}, cb) -> cb({op:'joined', room, epoch, seq, messages});
// send({room, text, cid}, cb) -> cb({op:'ack', cid, room, id, seq, at}) and io.to(room).emit('msg', message).
// Also GET /api/rooms/:room/messages for the HTTP-reading scenarios. Run: CHAT_PORT=0 node --import tsx bench/peers/socketio.ts
import http from 'node:http';
import { Server } from 'socket.io';
import { MemRooms, ROOM_RE, historyPage, pageJson } from './memlog.ts';

const host = process.env.CHAT_HOST ?? '127.0.0.1';
const port = Number(process.env.CHAT_PORT ?? 8080);
const rooms = new MemRooms();

const server = http.createServer((req, res) => {
  const u = new URL(req.url ?? '/', 'http://x');
  const m = /^\/api\/rooms\/([^/]+)\/messages$/.exec(u.pathname);
  if (req.method === 'GET' && m && ROOM_RE.test(decodeURIComponent(m[1]))) {
    const p = historyPage(rooms.get(decodeURIComponent(m[1])), u.searchParams.get('before') ?? undefined, u.searchParams.get('after') ?? undefined, u.searchParams.get('limit') ?? undefined);
    if (typeof p === 'string') { res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'invalid', message: p } })); return; }
    res.writeHead(200, { 'content-type': 'application/json' }).end(pageJson(p));
    return;
  }
  if (u.pathname === '/healthz') { res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true,"peer":"socketio"}'); return; }
  if (u.pathname.startsWith('/socket.io/')) return; // socket.io's own handler answers these
  res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not_found","message":"no such path"}}');
});

const io = new Server(server, { serveClient: false, maxHttpBufferSize: 65536 });
type Cb = (r: Record<string, unknown>) => void;
io.on('connection', (socket) => {
  const q = socket.handshake.query;
  const user = typeof q.user === 'string' && q.user ? q.user : socket.id;
  const name = typeof q.name === 'string' && q.name ? q.name : user;
  const fromJson = JSON.stringify({ id: user, name });
  socket.on('join', (f: { room?: unknown; limit?: unknown }, cb: Cb) => {
    if (typeof cb !== 'function') return;
    const limit = f?.limit ?? 50;
    if (typeof f?.room !== 'string' || !ROOM_RE.test(f.room) || typeof limit !== 'number' || limit < 0 || limit > 100) { cb({ op: 'error', code: 'invalid', message: 'join needs room and limit 0..100' }); return; }
    const r = rooms.get(f.room);
    void socket.join(f.room);
    cb({ op: 'joined', room: f.room, epoch: r.epoch, seq: r.seq, messages: limit === 0 ? [] : r.latest(limit).json.map((j) => JSON.parse(j)) });
  });
  socket.on('send', (f: { room?: unknown; text?: unknown; cid?: unknown }, cb: Cb) => {
    if (typeof cb !== 'function') return;
    if (typeof f?.room !== 'string' || !ROOM_RE.test(f.room) || typeof f.text !== 'string' || typeof f.cid !== 'string' || f.cid.length < 1 || f.cid.length > 128) {
      cb({ op: 'error', code: 'invalid', message: 'send needs room, text and cid', ...(typeof f?.cid === 'string' ? { cid: f.cid } : {}) });
      return;
    }
    const m = rooms.get(f.room).append(rooms.ids, fromJson, f.text, f.cid);
    io.to(f.room).emit('msg', { id: m.id, room: f.room, seq: m.seq, type: 'CHAT', from: { id: user, name }, text: f.text, at: m.at, cid: f.cid });
    cb({ op: 'ack', cid: f.cid, room: f.room, id: m.id, seq: m.seq, at: m.at });
  });
  socket.on('leave', (f: { room?: unknown }, cb: Cb) => { if (typeof f?.room === 'string') void socket.leave(f.room); if (typeof cb === 'function') cb({ op: 'left', room: f?.room }); });
});

server.listen(port, host, () => {
  const a = server.address();
  console.log(`listening on ${host}:${typeof a === 'object' && a ? a.port : port}`);
});
const stop = (): void => { void io.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
