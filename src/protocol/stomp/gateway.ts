// STOMP over WebSocket, as Spring's simple broker speaks it: a drop-in backend for Spring-STOMP
// chat clients. Frames are parsed by parser.ts; each command maps onto the same engine operations
// as the native protocol, so STOMP and native clients share rooms, ids, seqs and authorization.
//
// Destinations (prefixes configurable: CHAT_STOMP_APP_PREFIX, CHAT_STOMP_BROKER_PREFIX):
//   SEND      {app}/rooms/{room}            body = the message text
//   SEND      {app}/chat/message            body = {"type","roomId","sender","message"} (tutorial shape)
//   SUBSCRIBE {broker}/rooms/{room}         MESSAGE body = the Message JSON
//   SUBSCRIBE {broker}/chat/room/{room}     MESSAGE body = {"type","roomId","sender","message",...}

import type { Authenticator, Identity } from '../../auth.ts';
import type { Config } from '../../config.ts';
import { ChatError, CLOSE, type ErrorCode } from '../errors.ts';
import { STRICT_UTF8, wellFormed } from '../text.ts';
import { cidProblem, isId, ROOM_RE, ROOM_SHAPE } from '../validate.ts';
import type { Sink } from '../wire.ts';
import { encodeStomp, StompError, type StompFrame } from './parser.ts';
import { newSub, type StompState, type StompStyle } from './state.ts';
import { receipt as receiptFrame, stompFail } from './wire.ts';

const SERVER_BEAT_MS = 1_000; // floors: never beat more often than this, whatever the client asks
const CLIENT_BEAT_MS = 1_000;
/** Frames a client may send after CONNECT before its identity is checked (then ERROR). */
const MAX_WAITING = 64;

/** What the gateway needs of a connection. */
export interface StompConnection extends Sink {
  readonly connId: number;
  readonly userId: string;
  readonly closed: boolean;
}

/** The engine operations a STOMP frame maps onto (the same as the native protocol's). */
export interface StompCore<C extends StompConnection> {
  post(c: C, room: string, text: string, cid: string | null, ref: string | undefined): void;
  join(c: C, room: string, since: string | undefined, limit: number, ref: string | undefined): void;
  leave(c: C, room: string, ref: string | undefined): void;
  mayConnect(userId: string): boolean;
  /** CONNECT established who the connection is (it was anonymous since the upgrade). */
  setIdentity(c: C, id: Identity): void;
  /** Count a refused frame. */
  refused(code: ErrorCode): void;
}

export class StompGateway<C extends StompConnection> {
  private readonly app: string;
  private readonly broker: string;
  /** Every open STOMP connection and its state (heart-beats run over them). */
  private readonly sessions = new Map<C, StompState>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly core: StompCore<C>, private readonly auth: Authenticator, private readonly cfg: Config) {
    this.app = cfg.stompAppPrefix;
    this.broker = cfg.stompBrokerPrefix;
    // One timer for every STOMP connection's heart-beats and CONNECT deadline (not one per connection).
    this.timer = setInterval(() => this.beat(), Math.min(1000, Math.max(50, cfg.authTimeoutMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  onOpen(s: C, st: StompState): void {
    this.sessions.set(s, st);
  }

  onClose(s: C): void {
    this.sessions.delete(s);
  }

  private beat(): void {
    const now = Date.now();
    for (const [s, st] of this.sessions) {
      if (s.closed) continue;
      if (!st.connected) {
        // CHAT_AUTH_TIMEOUT: a connection must say who it is (CONNECT, identity checked) in time.
        if (now - st.openedAt > this.cfg.authTimeoutMs) this.fail(s, `no CONNECT within ${this.cfg.authTimeoutMs} ms (CHAT_AUTH_TIMEOUT)`, undefined, CLOSE.policy);
        continue;
      }
      if (st.expectEvery > 0 && now - st.lastIn > st.expectEvery * 2 + 1000) {
        this.fail(s, 'no heart-beat from the client', undefined);
        continue;
      }
      if (st.sendEvery > 0 && now - st.lastBeat >= st.sendEvery) {
        st.lastBeat = now;
        s.send('\n');
      }
    }
  }

  /** A protocol violation or refusal: ERROR, then close (STOMP requires the close). */
  fail(s: C, message: string, ref: string | undefined, code: number = CLOSE.protocolError): void {
    stompFail(s, message, ref, code);
  }

  onData(s: C, data: ArrayBuffer): void {
    const st = this.sessions.get(s);
    if (st === undefined) return;
    st.lastIn = Date.now();
    let parsed: { frames: StompFrame[] };
    try {
      parsed = st.parser.push(Buffer.from(data));
    } catch (err) {
      this.core.refused('bad_frame');
      return this.fail(s, err instanceof StompError ? err.message : 'malformed frame', undefined);
    }
    for (const f of parsed.frames) {
      if (s.closed) return;
      if (st.waiting !== null) {
        if (st.waiting.length >= MAX_WAITING) return this.fail(s, `more than ${MAX_WAITING} frames before CONNECTED`, undefined);
        st.waiting.push(f); // its body is the parser's own copy
        continue;
      }
      this.onFrame(s, st, f);
    }
  }

  private onFrame(s: C, st: StompState, f: StompFrame): void {
    const receipt = f.headers.get('receipt');
    if (!st.connected && f.command !== 'CONNECT' && f.command !== 'STOMP') return this.fail(s, `${f.command} before CONNECT`, receipt);
    switch (f.command) {
      case 'CONNECT':
      case 'STOMP': return this.onConnect(s, st, f);
      case 'SEND': return this.onSend(s, f, receipt);
      case 'SUBSCRIBE': return this.onSubscribe(s, st, f, receipt);
      case 'UNSUBSCRIBE': return this.onUnsubscribe(s, st, f, receipt);
      case 'DISCONNECT':
        if (receipt !== undefined) s.send(receiptFrame(receipt));
        s.end(CLOSE.normal, 'disconnect');
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

  private receipt(s: C, ref: string | undefined): void {
    if (ref !== undefined) s.send(receiptFrame(ref));
  }

  private onConnect(s: C, st: StompState, f: StompFrame): void {
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
      s.send(encodeStomp('CONNECTED', [
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
      if (!this.core.mayConnect(id.id)) return this.fail(s, `at most ${this.cfg.maxConnsPerUser} connections per user`, undefined, CLOSE.policy);
      this.core.setIdentity(s, id);
      st.needsIdentity = false;
      finish();
      const waiting = st.waiting ?? [];
      st.waiting = null;
      for (const w of waiting) {
        if (s.closed) return;
        this.onFrame(s, st, w);
      }
    }, (err: unknown) => {
      st.waiting = null;
      // `unauthorized: <why>`, or `overloaded: ...` when the keys cannot be fetched (retry later).
      this.fail(s, err instanceof ChatError ? `${err.code}: ${err.message}` : 'unauthorized', undefined, CLOSE.policy);
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

  private onSend(s: C, f: StompFrame, receipt: string | undefined): void {
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
        return this.fail(s, `roomId must match ${ROOM_SHAPE}`, receipt);
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
    const bad = cid === null ? null : cidProblem(cid);
    if (bad !== null) return this.fail(s, bad, receipt);
    this.core.post(s, room, text, cid, receipt);
  }

  private onSubscribe(s: C, st: StompState, f: StompFrame, receipt: string | undefined): void {
    const id = f.headers.get('id');
    const dest = f.headers.get('destination') ?? '';
    if (id === undefined || id === '' || id.length > 128) return this.fail(s, 'SUBSCRIBE needs an id header', receipt);
    if (st.subs.has(id)) return this.fail(s, `subscription id "${id}" is already in use`, receipt);
    const r = this.route(this.broker, dest);
    if (r === null || r.room === '') return this.fail(s, `unknown destination "${dest.slice(0, 100)}"; use ${this.broker}/rooms/{room} or ${this.broker}/chat/room/{room}`, receipt);
    if (st.byRoom.has(r.room)) return this.receipt(s, receipt); // already subscribed to this room
    const since = f.headers.get('since');
    if (since !== undefined && !isId(since)) return this.fail(s, 'since must be a message id', receipt);
    const sub = newSub(id, r.room, r.style, dest);
    st.subs.set(id, sub);
    st.byRoom.set(r.room, sub);
    this.core.join(s, r.room, since, 0, receipt);
  }

  private onUnsubscribe(s: C, st: StompState, f: StompFrame, receipt: string | undefined): void {
    const sub = st.subs.get(f.headers.get('id') ?? '');
    if (sub === undefined) return this.fail(s, 'no subscription with that id', receipt);
    this.core.leave(s, sub.room, receipt);
    st.subs.delete(sub.id);
    st.byRoom.delete(sub.room);
  }
}
