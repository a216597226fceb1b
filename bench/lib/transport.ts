// How the generator talks to a server: the lean raw-WebSocket client for PROTOCOL.md servers, and
// socket.io-client for the Socket.IO peer. Both turn frames into the same Sink calls.
import { io, type Socket } from 'socket.io-client';
import { WsConn, sourceAddress, type WsTarget, type WsHandlers } from './wsclient.ts';
import { OP_ACK, OP_ERROR, OP_JOINED, OP_MSG, STOMP_RECEIPT_ID, STOMP_ROOM, STOMP_SEQ, cidAt, cidField, opChar, roomIndex, uintAt, uintField } from './scan.ts';

/** Receives what the transports decode. c = client index, room = room index (-1 if not ours), k = our send number (-1 if not ours). */
export interface Sink {
  opened(c: number): void;
  closed(c: number, code: number | string): void;
  /** seq = the room's last seq at the join; -1 = live from here on, start unknown (STOMP: the runner asks the HTTP API). */
  joined(c: number, room: number, seq: number): void;
  ack(c: number, room: number, seq: number, k: number, tUs: number, id: string): void;
  msg(c: number, room: number, seq: number, k: number, tUs: number): void;
  refused(c: number, code: string, k: number): void;
}

export interface Transport {
  readonly kind: 'raw' | 'socketio' | 'socketio-lean' | 'stomp';
  connect(c: number, user: string): void;
  join(c: number, room: number, limit: number): void;
  send(c: number, room: number, k: number, tUs: number): void;
  isOpen(c: number): boolean;
  close(c: number): void;
  destroyAll(): void;
}

/**
 * Clients spread over several servers (the nodes of a cluster): one transport per server, all
 * feeding the same sink with the same client numbers, so the run's correctness checks (per member
 * per room) see one population. nodeOf(c) picks client c's server. Only used with 2+ servers: one
 * indirection per call.
 */
export class SpreadTransport implements Transport {
  readonly kind: Transport['kind'];

  constructor(private readonly parts: Transport[], private readonly nodeOf: (c: number) => number) { this.kind = parts[0].kind; }

  connect(c: number, user: string): void { this.parts[this.nodeOf(c)].connect(c, user); }
  join(c: number, room: number, limit: number): void { this.parts[this.nodeOf(c)].join(c, room, limit); }
  send(c: number, room: number, k: number, tUs: number): void { this.parts[this.nodeOf(c)].send(c, room, k, tUs); }
  isOpen(c: number): boolean { return this.parts[this.nodeOf(c)].isOpen(c); }
  close(c: number): void { this.parts[this.nodeOf(c)].close(c); }
  destroyAll(): void { for (const p of this.parts) p.destroyAll(); }
}

/** The 64-byte chat text every scenario sends (ASCII, no escaping needed). */
export const TEXT64 = 'The quick brown fox jumps over the lazy dog; pack my box: 0123456';

/** Room names are `<prefix><index>`, the prefix unique per run so persistent servers start clean. */
export function roomName(prefix: string, i: number): string { return prefix + i; }

interface FastBuffer extends Buffer { latin1Slice(start: number, end: number): string }

export class RawTransport implements Transport {
  readonly kind = 'raw';
  private readonly conns: Array<WsConn | undefined> = [];
  private readonly sendPrefix: string[] = [];
  private readonly cid = new Float64Array(2);
  private readonly handlers: WsHandlers;

  constructor(private readonly target: WsTarget, private readonly prefix: string, private readonly sink: Sink, private readonly text = TEXT64) {
    this.handlers = {
      open: (conn) => this.sink.opened(conn.tag),
      close: (conn, code) => { if (this.conns[conn.tag] === conn) this.sink.closed(conn.tag, code); },
      message: (conn, buf, start, end) => this.message(conn, buf, start, end),
    };
  }

  connect(c: number, user: string): void {
    const q = `user=${encodeURIComponent(user)}&name=${encodeURIComponent(user)}`;
    const path = this.target.path + (this.target.path.includes('?') ? '&' : '?') + q;
    this.conns[c] = new WsConn(this.target, path, sourceAddress(c, this.target.host), this.handlers, c);
  }

  join(c: number, room: number, limit: number): void {
    this.conns[c]?.sendText('{"op":"join","room":"' + roomName(this.prefix, room) + '","limit":' + limit + '}');
  }

  send(c: number, room: number, k: number, tUs: number): void {
    let p = this.sendPrefix[room];
    if (p === undefined) p = this.sendPrefix[room] = '{"op":"send","room":"' + roomName(this.prefix, room) + '","text":"' + this.text + '","cid":"';
    this.conns[c]!.sendText(p + k + '.' + tUs + '"}'); // prebuilt prefix per room: one concat per send
  }

  isOpen(c: number): boolean { return this.conns[c]?.isOpen === true; }
  close(c: number): void { this.conns[c]?.close(); }
  destroyAll(): void { for (const w of this.conns) w?.destroy(); }

  private message(conn: WsConn, buf: Buffer, start: number, end: number): void {
    // latin1Slice: a one-byte string straight from the bytes, no UTF-8 decoding (only ASCII fields are read)
    const c = conn.tag;
    if (this.conns[c] !== conn) return; // a replaced connection still draining after close(): not this client's stream any more
    const s = (buf as FastBuffer).latin1Slice(start, end);
    const op = opChar(s);
    if (op === OP_MSG) {
      const ours = cidField(s, this.cid);
      this.sink.msg(c, roomIndex(s, this.prefix), uintField(s, '"seq":'), ours ? this.cid[0] : -1, ours ? this.cid[1] : 0);
    } else if (op === OP_ACK) {
      const ours = cidField(s, this.cid);
      const i = s.indexOf('"id":"');
      this.sink.ack(c, roomIndex(s, this.prefix), uintField(s, '"seq":'), ours ? this.cid[0] : -1, ours ? this.cid[1] : 0, i < 0 ? '' : s.slice(i + 6, i + 19));
    } else if (op === OP_JOINED) {
      const f = JSON.parse(buf.toString('utf8', start, end)) as { seq?: number; messages?: Array<{ seq?: number }> };
      let seq = typeof f.seq === 'number' ? f.seq : 0;
      for (const m of f.messages ?? []) if (typeof m.seq === 'number' && m.seq > seq) seq = m.seq;
      this.sink.joined(c, roomIndex(s, this.prefix), seq);
    } else if (op === OP_ERROR) {
      const f = JSON.parse(buf.toString('utf8', start, end)) as { code?: string };
      const ours = cidField(s, this.cid);
      this.sink.refused(c, String(f.code ?? 'error'), ours ? this.cid[0] : -1);
    }
  }
}

interface SioMessage { room: string; seq: number; cid?: string }
interface SioReply { op: string; seq?: number; room?: string; id?: string; cid?: string; code?: string }

/**
 * socket.io-client driving the Socket.IO peer (bench/peers/socketio.ts): heavier per frame than the
 * raw client (engine.io + JSON.parse of every packet), so it can saturate the generator's core first.
 */
export class SocketIoTransport implements Transport {
  readonly kind = 'socketio';
  private readonly socks: Array<Socket | undefined> = [];
  private readonly cid = new Float64Array(2);
  private readonly roomRe: RegExp;

  constructor(private readonly host: string, private readonly port: number, private readonly prefix: string, private readonly sink: Sink, private readonly text = TEXT64) {
    this.roomRe = new RegExp('^' + prefix.replace(/[.]/g, '\\.') + '(\\d+)$');
  }

  private room(name: string): number { const m = this.roomRe.exec(name); return m ? Number(m[1]) : -1; }
  private parseCid(cid: string | undefined): boolean {
    if (cid === undefined) return false;
    const dot = cid.indexOf('.');
    if (dot < 0) return false;
    this.cid[0] = Number(cid.slice(0, dot)); this.cid[1] = Number(cid.slice(dot + 1));
    return true;
  }

  connect(c: number, user: string): void {
    const s = io(`http://${this.host}:${this.port}`, {
      transports: ['websocket'], forceNew: true, reconnection: false, timeout: 30_000,
      query: { user, name: user }, localAddress: sourceAddress(c, this.host),
    } as Parameters<typeof io>[1]);
    this.socks[c] = s;
    s.on('connect', () => this.sink.opened(c));
    s.on('connect_error', (e: Error) => this.sink.closed(c, 'connect_error:' + e.message));
    s.on('disconnect', (reason: string) => this.sink.closed(c, reason));
    s.on('msg', (m: SioMessage) => {
      const ours = this.parseCid(m.cid);
      this.sink.msg(c, this.room(m.room), m.seq, ours ? this.cid[0] : -1, ours ? this.cid[1] : 0);
    });
  }

  join(c: number, room: number, limit: number): void {
    this.socks[c]?.emit('join', { room: roomName(this.prefix, room), limit }, (r: SioReply) => {
      if (r.op === 'joined') this.sink.joined(c, room, r.seq ?? 0);
      else this.sink.refused(c, r.code ?? 'error', -1);
    });
  }

  send(c: number, room: number, k: number, tUs: number): void {
    const cid = k + '.' + tUs;
    this.socks[c]!.emit('send', { room: roomName(this.prefix, room), text: this.text, cid }, (r: SioReply) => {
      const ours = this.parseCid(r.cid);
      if (r.op === 'ack') this.sink.ack(c, room, r.seq ?? -1, ours ? this.cid[0] : -1, ours ? this.cid[1] : 0, r.id ?? '');
      else this.sink.refused(c, r.code ?? 'error', ours ? this.cid[0] : -1);
    });
  }

  isOpen(c: number): boolean { return this.socks[c]?.connected === true; }
  close(c: number): void { this.socks[c]?.disconnect(); }
  destroyAll(): void { for (const s of this.socks) s?.disconnect(); }
}

const SIO_JOIN_BASE = 1e12; // ack ids at or above this are join replies; below, they are send numbers k

/**
 * The lean client speaking Socket.IO 4's wire format itself (engine.io v4 packets over WebSocket:
 * `40` connect, `42<id>["event",data]` emit with ack, `43<id>[reply]` ack, `2`/`3` ping/pong), so the
 * Socket.IO server, not socket.io-client's per-packet cost, is what gets measured.
 */
export class SioLeanTransport implements Transport {
  readonly kind = 'socketio-lean';
  private readonly conns: Array<WsConn | undefined> = [];
  private readonly ready = new Uint8Array(1 << 16);
  private readonly sendPrefix: string[] = [];
  private readonly cid = new Float64Array(2);
  private readonly handlers: WsHandlers;
  private readonly target: WsTarget;

  constructor(host: string, port: number, private readonly prefix: string, private readonly sink: Sink, private readonly text = TEXT64) {
    this.target = { host, port, path: '/socket.io/?EIO=4&transport=websocket', protocol: null };
    this.handlers = {
      open: () => {},
      close: (conn, code) => { this.ready[conn.tag] = 0; if (this.conns[conn.tag] === conn) this.sink.closed(conn.tag, code); },
      message: (conn, buf, start, end) => this.message(conn, buf, start, end),
    };
  }

  connect(c: number, user: string): void {
    this.ready[c] = 0;
    const path = `${this.target.path}&user=${encodeURIComponent(user)}&name=${encodeURIComponent(user)}`;
    this.conns[c] = new WsConn(this.target, path, sourceAddress(c, this.target.host), this.handlers, c);
  }

  join(c: number, room: number, limit: number): void {
    this.conns[c]?.sendText('42' + (SIO_JOIN_BASE + room) + '["join",{"room":"' + roomName(this.prefix, room) + '","limit":' + limit + '}]');
  }

  send(c: number, room: number, k: number, tUs: number): void {
    let p = this.sendPrefix[room];
    if (p === undefined) p = this.sendPrefix[room] = '["send",{"room":"' + roomName(this.prefix, room) + '","text":"' + this.text + '","cid":"';
    this.conns[c]!.sendText('42' + k + p + k + '.' + tUs + '"}]'); // the ack id is the send number itself
  }

  isOpen(c: number): boolean { return this.ready[c] === 1 && this.conns[c]?.isOpen === true; }
  close(c: number): void { this.conns[c]?.close(); }
  destroyAll(): void { for (const w of this.conns) w?.destroy(); }

  private message(conn: WsConn, buf: Buffer, start: number, end: number): void {
    const c = conn.tag;
    if (this.conns[c] !== conn) return; // a replaced connection still draining after close()
    const s = (buf as FastBuffer).latin1Slice(start, end);
    const t0 = s.charCodeAt(0), t1 = s.charCodeAt(1);
    if (t0 === 52 && t1 === 50) { // "42": an event; the only one we get is msg
      const ours = cidField(s, this.cid);
      this.sink.msg(c, roomIndex(s, this.prefix), uintField(s, '"seq":'), ours ? this.cid[0] : -1, ours ? this.cid[1] : 0);
    } else if (t0 === 52 && t1 === 51) { // "43<id>[reply]"
      const id = uintAt(s, 2);
      if (id >= SIO_JOIN_BASE) {
        const r = JSON.parse(buf.toString('utf8', start + s.indexOf('['), end))[0] as SioReply;
        if (r.op === 'joined') this.sink.joined(c, id - SIO_JOIN_BASE, r.seq ?? 0);
        else this.sink.refused(c, r.code ?? 'error', -1);
      } else if (opChar(s) === OP_ACK) {
        const ours = cidField(s, this.cid);
        const i = s.indexOf('"id":"');
        this.sink.ack(c, roomIndex(s, this.prefix), uintField(s, '"seq":'), ours ? this.cid[0] : -1, ours ? this.cid[1] : 0, i < 0 ? '' : s.slice(i + 6, i + 19));
      } else {
        const r = JSON.parse(buf.toString('utf8', start + s.indexOf('['), end))[0] as SioReply;
        this.sink.refused(c, r.code ?? 'error', id);
      }
    } else if (t0 === 50) { // "2": engine.io ping
      conn.sendText('3');
    } else if (t0 === 48) { // "0{...}": engine.io open; connect to the default namespace
      conn.sendText('40');
    } else if (t0 === 52 && t1 === 48) { // "40{sid}": namespace connected
      this.ready[c] = 1;
      this.sink.opened(c);
    } else if (t0 === 52 && t1 === 52) { // "44": connect_error
      this.sink.closed(c, 'sio_connect_error');
      conn.destroy();
    }
  }
}

/**
 * The lean client speaking STOMP 1.2 over WebSocket to the engine (subprotocol `v12.stomp`; identity
 * from `?user=&name=`). SUBSCRIBE /topic/rooms/{room} with `receipt:j<room>` (the RECEIPT comes once
 * the subscription is live; STOMP has no joined seq, so it reports joined with seq -1), SEND
 * /app/rooms/{room} with `receipt:<cid>` and `cid:<cid>`: the RECEIPT (sent after the durable commit)
 * is the ack, and its receipt-id is the cid itself. Frames are scanned as latin1 strings like the
 * native ones: headers `receipt-id`, `seq`, `room`, and the body's `"cid"`; no JSON.parse per message.
 */
export class StompTransport implements Transport {
  readonly kind = 'stomp';
  private readonly conns: Array<WsConn | undefined> = [];
  private readonly ready = new Uint8Array(1 << 16);
  private readonly sendPrefix: string[] = [];
  private readonly cid = new Float64Array(2);
  private readonly handlers: WsHandlers;
  private readonly target: WsTarget;
  private readonly body: string;

  constructor(target: WsTarget, private readonly prefix: string, private readonly sink: Sink, text = TEXT64) {
    this.target = { ...target, protocol: 'v12.stomp' };
    this.body = '\n\n' + text + '\0';
    this.handlers = {
      open: (conn) => { conn.sendText('CONNECT\naccept-version:1.2\nhost:' + this.target.host + '\nheart-beat:0,0\n\n\0'); },
      close: (conn, code) => { this.ready[conn.tag] = 0; if (this.conns[conn.tag] === conn) this.sink.closed(conn.tag, code); },
      message: (conn, buf, start, end) => this.message(conn, buf, start, end),
    };
  }

  connect(c: number, user: string): void {
    this.ready[c] = 0;
    const q = `user=${encodeURIComponent(user)}&name=${encodeURIComponent(user)}`;
    const path = this.target.path + (this.target.path.includes('?') ? '&' : '?') + q;
    this.conns[c] = new WsConn(this.target, path, sourceAddress(c, this.target.host), this.handlers, c);
  }

  join(c: number, room: number, _limit: number): void {
    // no `since`: live messages only (the start seq comes from the HTTP API, see roomload)
    this.conns[c]?.sendText('SUBSCRIBE\nid:' + room + '\ndestination:/topic/rooms/' + roomName(this.prefix, room) + '\nreceipt:j' + room + '\n\n\0');
  }

  send(c: number, room: number, k: number, tUs: number): void {
    let p = this.sendPrefix[room];
    if (p === undefined) p = this.sendPrefix[room] = 'SEND\ndestination:/app/rooms/' + roomName(this.prefix, room) + '\nreceipt:';
    const cid = k + '.' + tUs;
    this.conns[c]!.sendText(p + cid + '\ncid:' + cid + this.body);
  }

  isOpen(c: number): boolean { return this.ready[c] === 1 && this.conns[c]?.isOpen === true; }
  close(c: number): void { this.conns[c]?.close(); }
  destroyAll(): void { for (const w of this.conns) w?.destroy(); }

  private message(conn: WsConn, buf: Buffer, start: number, end: number): void {
    const c = conn.tag;
    if (this.conns[c] !== conn) return; // a replaced connection still draining after close()
    const s = (buf as FastBuffer).latin1Slice(start, end);
    // One WebSocket message may hold several frames (NUL-terminated, EOLs = heart-beats between them);
    // the engine sends one per message, so the common case scans s itself without slicing.
    const n = s.length;
    let a = 0;
    while (a < n) {
      let ch = s.charCodeAt(a);
      while (ch === 10 || ch === 13) ch = s.charCodeAt(++a);
      if (a >= n) return;
      let z = s.indexOf('\0', a);
      if (z < 0) z = n; // not NUL-terminated: scan what there is
      this.frame(c, a === 0 && z >= n - 1 ? s : s.slice(a, z));
      a = z + 1;
    }
  }

  private frame(c: number, f: string): void {
    const t0 = f.charCodeAt(0);
    if (t0 === 77) { // MESSAGE
      const ours = cidField(f, this.cid);
      this.sink.msg(c, roomIndex(f, this.prefix, STOMP_ROOM), uintField(f, STOMP_SEQ), ours ? this.cid[0] : -1, ours ? this.cid[1] : 0);
    } else if (t0 === 82) { // RECEIPT: j<room> for a SUBSCRIBE, else the cid of a SEND
      const i = f.indexOf(STOMP_RECEIPT_ID);
      if (i < 0) { this.sink.refused(c, 'stomp_receipt_without_id', -1); return; }
      const j = i + STOMP_RECEIPT_ID.length;
      if (f.charCodeAt(j) === 106) this.sink.joined(c, uintAt(f, j + 1), -1);
      else if (cidAt(f, j, this.cid)) this.sink.ack(c, -1, -1, this.cid[0], this.cid[1], '');
      else this.sink.ack(c, -1, -1, -1, 0, '');
    } else if (t0 === 67) { // CONNECTED
      if (this.ready[c] === 0) { this.ready[c] = 1; this.sink.opened(c); }
    } else if (t0 === 69) { // ERROR: `message:<code>: ...`, receipt-id = the refused frame's receipt; the engine closes next
      const m = /\nmessage:([^:\n]*)/.exec(f);
      const i = f.indexOf(STOMP_RECEIPT_ID);
      const ours = i >= 0 && cidAt(f, i + STOMP_RECEIPT_ID.length, this.cid);
      this.sink.refused(c, 'stomp_' + (m ? m[1] : 'error'), ours ? this.cid[0] : -1);
    }
  }
}
