// STOMP over WebSocket, as Spring's simple broker speaks it: a drop-in backend for Spring-STOMP
// chat clients. Frames are parsed by stomp.ts; each command maps onto the same engine operations
// as the native protocol, so STOMP and native clients share rooms, ids, seqs and authorization.
//
// Destinations (prefixes configurable: CHAT_STOMP_APP_PREFIX, CHAT_STOMP_BROKER_PREFIX):
//   SEND      {app}/rooms/{room}            body = the message text
//   SEND      {app}/chat/message            body = {"type","roomId","sender","message"} (tutorial shape)
//   SUBSCRIBE {broker}/rooms/{room}         MESSAGE body = the Message JSON
//   SUBSCRIBE {broker}/chat/room/{room}     MESSAGE body = {"type","roomId","sender","message",...}

import type { Delivered, Message } from '../workers/contract.ts';
import type { Authenticator } from './auth.ts';
import { ROOM_RE } from './codec.ts';
import type { Config } from './config.ts';
import type { Engine, Session } from './engine.ts';
import { CLOSE, ChatError } from './errors.ts';
import { encodeStomp, escapeHeader, StompError, StompParser, type StompFrame } from './stomp.ts';
import { STRICT_UTF8, wellFormed } from './text.ts';

export type StompStyle = 'native' | 'tutorial';

export interface StompSub {
  id: string;
  room: string;
  style: StompStyle;
  destination: string;
  /** The uWS topic this subscription is published on: one per (style, subscription id, room). */
  topic: string;
  /** The MESSAGE frame's fixed headers for this subscription, escaped once. */
  head: string;
}

export function newSub(id: string, room: string, style: StompStyle, destination: string): StompSub {
  const head = `MESSAGE\ndestination:${escapeHeader(destination)}\nsubscription:${escapeHeader(id)}\ncontent-type:application/json\nroom:${room}\n`;
  return { id, room, style, destination, topic: `t/${style}/${id}/${room}`, head };
}

const SERVER_BEAT_MS = 1_000; // floors: never beat more often than this, whatever the client asks
const CLIENT_BEAT_MS = 1_000;
/** Frames a client may send after CONNECT before its identity is checked (then ERROR). */
const MAX_WAITING = 64;

/** Per-connection STOMP state, created at upgrade for STOMP connections. */
export class StompState {
  connected = false;
  version = '1.2';
  readonly parser: StompParser;
  /** subscription id -> subscription */
  readonly subs = new Map<string, StompSub>();
  /** room -> subscription (one per room and connection) */
  readonly byRoom = new Map<string, StompSub>();
  /** Identity still to be established by CONNECT (jwt mode, or none mode without ?user=). */
  needsIdentity: boolean;
  /**
   * While a CONNECT's identity is being checked: the frames that came after it (in the same
   * WebSocket message or later), handled in order once CONNECTED is sent. Null otherwise.
   */
  waiting: StompFrame[] | null = null;
  sendEvery = 0;
  expectEvery = 0;
  lastIn = Date.now();
  lastBeat = Date.now();

  constructor(maxFrame: number, needsIdentity: boolean) {
    this.parser = new StompParser({ maxFrame, maxHeaders: 32, maxHeaderLine: 4096 });
    this.needsIdentity = needsIdentity;
  }
}

/**
 * A MESSAGE frame for one subscription: the precomputed head, then the per-message headers. Ids
 * and seqs need no escaping; the sender id is the only user-supplied header value.
 */
export function stompMessage(sub: StompSub, d: Delivered): string {
  let body = d.json;
  if (sub.style === 'tutorial') {
    const m = JSON.parse(d.json) as Message;
    body = JSON.stringify({ type: m.type === 'CHAT' ? 'TALK' : m.type, roomId: m.room, sender: m.from.name, message: m.text, id: m.id, seq: m.seq, at: m.at, senderId: m.from.id });
  }
  return `${sub.head}message-id:${d.id}\nseq:${d.seq}\nsender-id:${escapeHeader(d.from)}\ncontent-length:${Buffer.byteLength(body)}\n\n${body}\0`;
}

export class StompGateway {
  private readonly app: string;
  private readonly broker: string;
  private readonly sessions = new Set<Session>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly engine: Engine, private readonly auth: Authenticator, private readonly cfg: Config) {
    this.app = cfg.stompAppPrefix;
    this.broker = cfg.stompBrokerPrefix;
    // One timer for every STOMP connection's heart-beats (not one per connection).
    this.timer = setInterval(() => this.beat(), 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  onOpen(s: Session): void {
    this.sessions.add(s);
  }

  onClose(s: Session): void {
    this.sessions.delete(s);
  }

  private beat(): void {
    const now = Date.now();
    for (const s of this.sessions) {
      const st = s.stomp!;
      if (!st.connected || s.closed) continue;
      if (st.expectEvery > 0 && now - st.lastIn > st.expectEvery * 2 + 1000) {
        this.fail(s, 'no heart-beat from the client', undefined);
        continue;
      }
      if (st.sendEvery > 0 && now - st.lastBeat >= st.sendEvery) {
        st.lastBeat = now;
        this.engine.send(s, '\n');
      }
    }
  }

  /** A protocol violation or refusal: ERROR, then close (STOMP requires the close). */
  fail(s: Session, message: string, receipt: string | undefined, code: number = CLOSE.protocolError): void {
    this.engine.stompFail(s, message, receipt, code);
  }

  onData(s: Session, data: ArrayBuffer): void {
    const st = s.stomp!;
    st.lastIn = Date.now();
    let parsed: { frames: StompFrame[] };
    try {
      parsed = st.parser.push(Buffer.from(data));
    } catch (err) {
      this.engine.stats.refuse('bad_frame');
      return this.fail(s, err instanceof StompError ? err.message : 'malformed frame', undefined);
    }
    for (const f of parsed.frames) {
      if (s.closed) return;
      if (st.waiting !== null) {
        if (st.waiting.length >= MAX_WAITING) return this.fail(s, `more than ${MAX_WAITING} frames before CONNECTED`, undefined);
        st.waiting.push(f); // its body is the parser's own copy
        continue;
      }
      this.onFrame(s, f);
    }
  }

  private onFrame(s: Session, f: StompFrame): void {
    const st = s.stomp!;
    const receipt = f.headers.get('receipt');
    if (!st.connected && f.command !== 'CONNECT' && f.command !== 'STOMP') return this.fail(s, `${f.command} before CONNECT`, receipt);
    switch (f.command) {
      case 'CONNECT':
      case 'STOMP': return this.onConnect(s, f);
      case 'SEND': return this.onSend(s, f, receipt);
      case 'SUBSCRIBE': return this.onSubscribe(s, f, receipt);
      case 'UNSUBSCRIBE': return this.onUnsubscribe(s, f, receipt);
      case 'DISCONNECT':
        if (receipt !== undefined) this.engine.send(s, encodeStomp('RECEIPT', [['receipt-id', receipt]]));
        s.ws?.end(CLOSE.normal, 'disconnect');
        return;
      case 'ACK':
      case 'NACK':
      case 'BEGIN':
      case 'COMMIT':
      case 'ABORT':
        // Messages are auto-acked and transactions are not supported: a client relying on them
        // would be wrong to think it worked, so refuse instead of silently ignoring.
        if (f.command === 'ACK' || f.command === 'NACK') return this.receipt(s, receipt);
        return this.fail(s, `${f.command}: transactions are not supported by this server`, receipt);
    }
  }

  private receipt(s: Session, receipt: string | undefined): void {
    if (receipt !== undefined) this.engine.send(s, encodeStomp('RECEIPT', [['receipt-id', receipt]]));
  }

  private onConnect(s: Session, f: StompFrame): void {
    const st = s.stomp!;
    if (st.connected) return this.fail(s, 'already connected', undefined);
    const accept = (f.headers.get('accept-version') ?? '1.0').split(',').map((v) => v.trim());
    const version = ['1.2', '1.1', '1.0'].find((v) => accept.includes(v));
    if (version === undefined) return this.fail(s, 'supported versions are 1.0, 1.1, 1.2', undefined);
    const hb = /^(\d{1,9}),(\d{1,9})$/.exec((f.headers.get('heart-beat') ?? '0,0').trim());
    if (hb === null) return this.fail(s, 'heart-beat must be "cx,cy"', undefined);
    const cx = Number(hb[1]);
    const cy = Number(hb[2]);
    const finish = (): void => {
      if (s.closed) return;
      st.version = version;
      st.connected = true;
      st.sendEvery = cy > 0 ? Math.max(SERVER_BEAT_MS, cy) : 0;
      st.expectEvery = cx > 0 ? Math.max(CLIENT_BEAT_MS, cx) : 0;
      st.lastBeat = Date.now();
      this.engine.send(s, encodeStomp('CONNECTED', [
        ['version', version],
        ['heart-beat', `${st.sendEvery},${st.expectEvery}`],
        ['server', 'uchat/1'],
        ['session', String(s.connId)],
        ['user-name', s.userId],
      ], '', true));
    };
    if (!st.needsIdentity) return finish();
    // Identity from CONNECT: Authorization / passcode / login (a JWT in jwt mode; the user id in none).
    const authz = f.headers.get('Authorization') ?? f.headers.get('authorization') ?? '';
    const login = f.headers.get('login') ?? '';
    const passcode = f.headers.get('passcode') ?? '';
    const creds = this.cfg.auth === 'jwt'
      ? { query: '', authorization: authz !== '' ? authz : `Bearer ${passcode !== '' ? passcode : login}` }
      : { query: new URLSearchParams(login !== '' ? { user: login, name: f.headers.get('name') ?? login } : {}).toString(), authorization: authz };
    st.waiting = [];
    this.auth.identify(creds).then((id) => {
      if (s.closed) return;
      if (!this.engine.mayConnect(id.id)) return this.fail(s, `at most ${this.cfg.maxConnsPerUser} connections per user`, undefined, CLOSE.policy);
      this.engine.setIdentity(s, id);
      st.needsIdentity = false;
      finish();
      const waiting = st.waiting ?? [];
      st.waiting = null;
      for (const w of waiting) {
        if (s.closed) return;
        this.onFrame(s, w);
      }
    }, (err: unknown) => {
      st.waiting = null;
      this.fail(s, err instanceof ChatError ? err.message : 'unauthorized', undefined, CLOSE.policy);
    });
  }

  /** Map a destination to (style, room); null if it is not one of ours. */
  private route(prefix: string, dest: string): { style: StompStyle; room: string } | null {
    if (!dest.startsWith(prefix + '/')) return null;
    const rest = dest.slice(prefix.length + 1);
    let m = /^rooms\/(.+)$/.exec(rest);
    if (m && ROOM_RE.test(m[1])) return { style: 'native', room: m[1] };
    m = /^chat\/room\/(.+)$/.exec(rest);
    if (m && ROOM_RE.test(m[1])) return { style: 'tutorial', room: m[1] };
    if (rest === 'chat/message') return { style: 'tutorial', room: '' };
    return null;
  }

  private onSend(s: Session, f: StompFrame, receipt: string | undefined): void {
    const dest = f.headers.get('destination') ?? '';
    const r = this.route(this.app, dest);
    if (r === null) return this.fail(s, `unknown destination "${dest.slice(0, 100)}"; use ${this.app}/rooms/{room} or ${this.app}/chat/message`, receipt);
    let room = r.room;
    let text: string;
    try {
      text = STRICT_UTF8.decode(f.body); // a body with an invalid sequence is refused, a real U+FFFD is text
    } catch {
      return this.fail(s, 'the body is not valid UTF-8', receipt);
    }
    if (room === '') {
      // The tutorial shape: {"type","roomId","sender","message"}; sender is taken from the connection.
      let body: { type?: unknown; roomId?: unknown; message?: unknown };
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        return this.fail(s, 'the body must be JSON {"type","roomId","sender","message"}', receipt);
      }
      if (body === null || typeof body !== 'object' || typeof body.roomId !== 'string' || !ROOM_RE.test(body.roomId)) {
        return this.fail(s, 'roomId must match [A-Za-z0-9._:-]{1,64}', receipt);
      }
      room = body.roomId;
      if (body.type === 'ENTER' || body.type === 'QUIT') {
        // The engine posts ENTER/QUIT itself when a subscription starts or ends.
        return this.receipt(s, receipt);
      }
      if (typeof body.message !== 'string' || !wellFormed(body.message)) return this.fail(s, 'message must be a well-formed string', receipt);
      text = body.message;
    }
    const cid = f.headers.get('cid') ?? null;
    if (cid !== null && (cid.length < 1 || cid.length > 128)) return this.fail(s, 'cid must be 1..128 characters', receipt);
    this.engine.post(s, room, text, cid, receipt);
  }

  private onSubscribe(s: Session, f: StompFrame, receipt: string | undefined): void {
    const st = s.stomp!;
    const id = f.headers.get('id');
    const dest = f.headers.get('destination') ?? '';
    if (id === undefined || id === '' || id.length > 128) return this.fail(s, 'SUBSCRIBE needs an id header', receipt);
    if (st.subs.has(id)) return this.fail(s, `subscription id "${id}" is already in use`, receipt);
    const r = this.route(this.broker, dest);
    if (r === null || r.room === '') return this.fail(s, `unknown destination "${dest.slice(0, 100)}"; use ${this.broker}/rooms/{room} or ${this.broker}/chat/room/{room}`, receipt);
    if (st.byRoom.has(r.room)) return this.receipt(s, receipt); // already subscribed to this room
    const since = f.headers.get('since');
    if (since !== undefined && !/^[0-9A-F][0-9A-HJKMNP-TV-Z]{12}$/.test(since)) return this.fail(s, 'since must be a message id', receipt);
    const sub = newSub(id, r.room, r.style, dest);
    st.subs.set(id, sub);
    st.byRoom.set(r.room, sub);
    this.engine.join(s, r.room, since, 0, receipt);
  }

  private onUnsubscribe(s: Session, f: StompFrame, receipt: string | undefined): void {
    const st = s.stomp!;
    const sub = st.subs.get(f.headers.get('id') ?? '');
    if (sub === undefined) return this.fail(s, 'no subscription with that id', receipt);
    this.engine.leave(s, sub.room, receipt);
    st.subs.delete(sub.id);
    st.byRoom.delete(sub.room);
  }
}
