// ChatClient: one WebSocket to the engine, kept open. It reconnects with jittered exponential
// backoff, rejoins every room from the last message seen, and writes again every send and request
// that was not answered, so an app sees each message once and each send is stored once.

import { Backoff, type BackoffOptions } from './backoff.ts';
import { newCid } from './cid.ts';
import { ChatError, isRetryable } from './errors.ts';
import { PendingSet } from './pending.ts';
import { after, globalWebSocket, OPEN, randomBytes, utf8Length, type WebSocketConstructor, type WebSocketLike } from './platform.ts';
import {
  CLOSE, LIMITS, SUBPROTOCOL_JSON,
  type ClientFrame, type ErrorFrame, type HistoryPageFrame, type IncomingMessage, type JoinedFrame, type ReadReplyFrame, type ServerFrame,
} from './protocol.ts';
import { messageOf, RoomSubscription, type JoinOptions, type Subscription, type SubscriptionIo } from './subscription.ts';

export type ClientState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface StateDetail {
  /** 'disconnected': the close code of the connection that ended (1006: it failed or was cut). */
  code?: number;
  reason?: string;
  /** 'disconnected': ms until the next connection attempt. */
  retryIn?: number;
}

export interface ClientEvents {
  state(state: ClientState, detail: StateDetail): void;
  /**
   * Something went wrong that no promise reports: an engine error frame that answers nothing the
   * library sent, a token function that threw, an exception thrown by an app callback.
   */
  error(err: Error): void;
}

export interface ChatClientOptions {
  /** The engine's WebSocket endpoint, e.g. `wss://chat.example.com/ws`. */
  url: string;
  /**
   * Auth mode none: the user id (`[A-Za-z0-9._:@-]{1,64}`). Without `user` and `token` the client
   * makes one up (`anon-` and 12 random hex digits) and keeps it for its lifetime, so its resends
   * are deduplicated as one sender's.
   */
  user?: string;
  /** Auth mode none: the display name. */
  name?: string;
  /** Auth mode jwt: the token, or a function called before every connection attempt. */
  token?: string | (() => string | Promise<string>);
  /** The WebSocket constructor; default `globalThis.WebSocket` (Node 20 has none: pass `ws`'s). */
  WebSocket?: WebSocketConstructor;
  /** Backoff between connection attempts (default 500 ms doubling to 15 s, jittered). */
  reconnect?: BackoffOptions;
  /** Backoff between retries of a frame refused `rate_limited` / `overloaded` (default 250 ms to 10 s). */
  retry?: BackoffOptions;
  /** Most sends waiting for their ack; past it send() rejects `pending_full` (default 1000). */
  maxPending?: number;
  /** How long a send may wait for its ack, reconnects included, before it rejects `timeout` (default 120,000 ms). */
  maxPendingAge?: number;
  /** How long history() and read() may wait, reconnects included (default 30,000 ms). */
  requestTimeout?: number;
  /** The engine's CHAT_MAX_PAYLOAD: a larger send rejects `too_large` without being sent (default 65536). */
  maxPayload?: number;
  /** Ping when the connection was quiet this long, and drop it if no answer comes within `timeout` ms (default 25,000 / 10,000; false: off). */
  heartbeat?: { interval: number; timeout: number } | false;
  /** Source of the backoff jitter, in [0, 1) (default Math.random; tests pass a seeded one). */
  random?: () => number;
}

/** A send's ack: the message is durable. For a repeated cid, the original message's. */
export interface SendAck {
  id: string;
  seq: number;
  at: number;
  room: string;
  cid: string;
  /** delete() and edit(): the message deleted or edited (id, seq, at are the DELETE or EDIT event's). */
  target?: string;
}

export interface SendOptions {
  /** The idempotency key (1..128 characters, unique per user); default: a fresh random one (newCid()). */
  cid?: string;
}

export interface HistoryQuery {
  /** Messages older than this id, or newer than `after` (not both); neither: the latest. */
  before?: string;
  after?: string;
  /** 1..100, default 50. */
  limit?: number;
}

export interface HistoryPage {
  room: string;
  /** Oldest first. */
  messages: IncomingMessage[];
  /** More messages exist beyond this page (in the direction asked). */
  more: boolean;
}

export interface ReadResult {
  room: string;
  upTo: string;
  /** Messages of the room after `upTo`. */
  unread: number;
}

const USER_RE = /^[A-Za-z0-9._:@-]{1,64}$/;
/** The ref of every typing frame (the others are "r" and a counter). */
const TYPING_REF = 't';

type Listeners = { [E in keyof ClientEvents]: Set<ClientEvents[E]> };

export class ChatClient {
  /** The user id the client connects as (undefined with a token: the token's `sub`). */
  readonly user: string | undefined;
  private readonly name: string | undefined;
  private readonly token: ChatClientOptions['token'];
  private readonly url: string;
  private readonly WS: WebSocketConstructor;
  private readonly reconnectBackoff: Backoff;
  private readonly retryBackoff: Backoff;
  private readonly maxPending: number;
  private readonly maxPayload: number;
  private readonly heartbeat: { interval: number; timeout: number } | false;
  private readonly listeners: Listeners = { state: new Set(), error: new Set() };

  private current: ClientState = 'disconnected';
  private ws: WebSocketLike | null = null;
  /** Connection attempts since the engine last answered; the backoff grows with it. */
  private attempt = 0;
  /** Bumped by every attempt and by close(): a token function that returns late is ignored. */
  private attemptId = 0;
  private cancelReconnect: (() => void) | null = null;
  private cancelHeartbeat: (() => void) | null = null;
  private cancelDeadline: (() => void) | null = null;
  private refSeq = 0;

  private readonly subs = new Map<string, RoomSubscription>();
  /** Joins written on the current connection, by ref. */
  private readonly joins = new Map<string, { sub: RoomSubscription; sentSince: boolean }>();
  private readonly sends: PendingSet<SendAck>;
  /** history and read: idempotent, written again after a reconnect. */
  private readonly requests: PendingSet<ServerFrame>;
  /** leave, ping, typing: answered on this connection or not at all (called with null when it drops). */
  private readonly oneShots = new Map<string, (f: ServerFrame | null) => void>();
  private readonly subIo: SubscriptionIo;

  constructor(opts: ChatClientOptions) {
    if (typeof opts.url !== 'string' || !/^wss?:\/\//i.test(opts.url)) throw new ChatError('invalid', 'url must be a ws:// or wss:// URL');
    if (opts.user !== undefined && !USER_RE.test(opts.user)) throw new ChatError('invalid', 'user must match [A-Za-z0-9._:@-]{1,64}');
    const WS = opts.WebSocket ?? globalWebSocket();
    if (WS === undefined) throw new ChatError('invalid', 'this platform has no global WebSocket: pass one as the WebSocket option (in Node: `ws`)');
    this.WS = WS;
    this.url = opts.url;
    this.token = opts.token;
    this.user = opts.user ?? (opts.token === undefined ? 'anon-' + hex(6) : undefined);
    this.name = opts.name;
    const random = opts.random ?? Math.random;
    this.reconnectBackoff = new Backoff(opts.reconnect, { initialDelay: 500, maxDelay: 15_000 }, random);
    this.retryBackoff = new Backoff(opts.retry, { initialDelay: 250, maxDelay: 10_000 }, random);
    this.maxPending = opts.maxPending ?? 1000;
    this.maxPayload = opts.maxPayload ?? LIMITS.defaultMaxPayload;
    this.heartbeat = opts.heartbeat ?? { interval: 25_000, timeout: 10_000 };
    const io = { write: (frame: string) => this.write(frame), retryDelay: (n: number) => this.retryBackoff.delay(n) };
    this.sends = new PendingSet<SendAck>(io, opts.maxPendingAge ?? 120_000, 'send');
    this.requests = new PendingSet<ServerFrame>(io, opts.requestTimeout ?? 30_000, 'request');
    this.subIo = {
      history: (room, before) => this.history(room, { before, limit: LIMITS.maxHistoryLimit }),
      call: (fn) => this.call(fn),
      leave: (sub) => this.leaveRoom(sub),
    };
    // Listeners added right after construction see the first 'connecting'.
    void Promise.resolve().then(() => this.connect());
  }

  get state(): ClientState {
    return this.current;
  }

  /** Listen to 'state' or 'error'; returns the function that stops listening. */
  on<E extends keyof ClientEvents>(event: E, fn: ClientEvents[E]): () => void {
    const set = this.listeners[event] as Set<ClientEvents[E]>;
    set.add(fn);
    return () => set.delete(fn);
  }

  /**
   * Join a room: `onMessage` gets every message of it once, in seq order, across reconnects, until
   * `leave()`. One subscription per room and client.
   */
  join(room: string, opts: JoinOptions): Subscription {
    if (this.current === 'closed') throw new ChatError('closed', 'the client is closed', { room });
    if (this.subs.has(room)) throw new ChatError('invalid', `already joined ${room}: leave it first`, { room });
    const sub = new RoomSubscription(room, opts, this.subIo);
    this.subs.set(room, sub);
    if (this.current === 'connected') this.sendJoin(sub);
    return sub;
  }

  /**
   * Send a message. Resolves once it is durable, with its id and seq; written again with the same
   * cid after every reconnect until acked, so it is stored once whatever happens to the connection.
   */
  send(room: string, text: string, opts: SendOptions = {}): Promise<SendAck> {
    return this.durable(room, opts.cid ?? newCid(), (cid) => ({ op: 'send', room, text, cid }));
  }

  /**
   * Delete a message (the user's own; an admin's connection may delete any). Resolves once the
   * DELETE is durable; deleting it again resolves with the same ack. Written again after every
   * reconnect until acked, like send. Rejects `forbidden` (not the sender) or `not_found`.
   */
  delete(room: string, id: string, opts: SendOptions = {}): Promise<SendAck> {
    return this.durable(room, opts.cid ?? newCid(), (cid) => ({ op: 'delete', room, id, cid }));
  }

  /**
   * Replace the text of the user's own message. Resolves once the EDIT is durable; written again
   * with the same cid after every reconnect until acked, so it is applied once. Rejects
   * `forbidden` (not the sender) or `not_found` (unknown or deleted message).
   */
  edit(room: string, id: string, text: string, opts: SendOptions = {}): Promise<SendAck> {
    return this.durable(room, opts.cid ?? newCid(), (cid) => ({ op: 'edit', room, id, text, cid }));
  }

  /** A frame acked once durable (send, delete, edit), resent with its cid until then. */
  private durable(room: string, cid: string, build: (cid: string) => ClientFrame): Promise<SendAck> {
    if (this.current === 'closed') return Promise.reject(new ChatError('closed', 'the client is closed', { room, cid }));
    if (typeof cid !== 'string' || cid.length < 1 || cid.length > LIMITS.maxCid) return Promise.reject(new ChatError('invalid', `cid must be 1..${LIMITS.maxCid} characters`, { room }));
    if (this.sends.has(cid)) return Promise.reject(new ChatError('invalid', 'a send with this cid is already pending', { room, cid }));
    if (this.sends.size >= this.maxPending) return Promise.reject(new ChatError('pending_full', `${this.maxPending} sends are already waiting for their ack`, { room, cid }));
    const frame = JSON.stringify(build(cid));
    const bytes = utf8Length(frame);
    if (bytes > this.maxPayload) return Promise.reject(new ChatError('too_large', `the send frame is ${bytes} bytes, more than ${this.maxPayload}`, { room, cid }));
    return this.sends.add(cid, frame, bytes, { room, cid });
  }

  /** A page of a room's history (waits for a connection; retried after a reconnect). */
  async history(room: string, q: HistoryQuery = {}): Promise<HistoryPage> {
    const f = (await this.request({ op: 'history', room, ...q }, room)) as HistoryPageFrame;
    return { room: f.room, messages: f.messages, more: f.more };
  }

  /** Move the caller's read marker of a room to `upTo` (never backwards); resolves with what is left unread. */
  async read(room: string, upTo: string): Promise<ReadResult> {
    const f = (await this.request({ op: 'read', room, upTo }, room)) as ReadReplyFrame;
    return { room: f.room, upTo: f.upTo, unread: f.unread };
  }

  /** Tell a joined room's other members the user is typing. False when not connected (nothing sent). */
  typing(room: string): boolean {
    // No reply unless refused (e.g. more than one a second): one fixed ref marks such refusals.
    return this.write(JSON.stringify({ op: 'typing', room, ref: TYPING_REF } satisfies ClientFrame));
  }

  /** Connect now instead of waiting out the backoff (e.g. when the browser says it is online again). */
  reconnect(): void {
    if (this.current !== 'disconnected') return;
    this.attempt = 0;
    this.connect();
  }

  /** Close the connection for good: every pending send, request and join rejects with `closed`. */
  close(): void {
    if (this.current === 'closed') return;
    this.current = 'closed';
    this.attemptId++;
    this.cancelReconnect?.();
    this.cancelReconnect = null;
    const ws = this.ws;
    this.ws = null;
    if (ws !== null) {
      this.detach(ws);
      ws.close(CLOSE.normal, 'client closed');
    }
    const closed = (about: { room?: string; cid?: string }): ChatError => new ChatError('closed', 'the client was closed', about);
    this.sends.rejectAll((about) => closed({ room: about.room, cid: about.cid }));
    this.requests.rejectAll((about) => closed({ room: about.room }));
    const subs = [...this.subs.values()];
    this.subs.clear();
    this.joins.clear();
    for (const sub of subs) sub.end(null, closed({ room: sub.room }));
    const shots = [...this.oneShots.values()];
    this.oneShots.clear();
    for (const shot of shots) shot(null);
    this.emit('state', 'closed', {});
  }

  // ---- connection --------------------------------------------------------------------------------

  private setState(state: ClientState, detail: StateDetail): void {
    this.current = state;
    this.emit('state', state, detail);
  }

  private connect(): void {
    if (this.current === 'closed') return;
    this.cancelReconnect?.();
    this.cancelReconnect = null;
    const id = ++this.attemptId;
    this.setState('connecting', {});
    this.connectUrl().then((url) => {
      if (id !== this.attemptId) return;
      let ws: WebSocketLike;
      try {
        ws = new this.WS(url, SUBPROTOCOL_JSON);
      } catch (err) {
        this.report(err);
        return this.retryLater(CLOSE.abnormal, 'the WebSocket could not be created');
      }
      this.ws = ws;
      ws.onopen = () => { if (ws === this.ws) this.opened(); };
      ws.onmessage = (e) => { if (ws === this.ws) this.received(e.data); };
      ws.onclose = (e) => { if (ws === this.ws) this.dropped(e.code, e.reason); };
      ws.onerror = () => {}; // a close event follows
    }, (err: unknown) => {
      if (id !== this.attemptId) return;
      this.report(new ChatError('unauthorized', `the token function failed: ${err instanceof Error ? err.message : String(err)}`));
      this.retryLater(CLOSE.abnormal, 'no token');
    });
  }

  /** The URL of one attempt: identity in the query (a browser cannot set headers on a WebSocket). */
  private async connectUrl(): Promise<string> {
    const q: string[] = [];
    if (this.user !== undefined) q.push('user=' + encodeURIComponent(this.user));
    if (this.name !== undefined) q.push('name=' + encodeURIComponent(this.name));
    const token = typeof this.token === 'function' ? await this.token() : this.token;
    if (token !== undefined) q.push('token=' + encodeURIComponent(token));
    return q.length === 0 ? this.url : this.url + (this.url.includes('?') ? '&' : '?') + q.join('&');
  }

  private opened(): void {
    this.setState('connected', {});
    // The first answer on a connection shows the engine is really there: the backoff starts over.
    this.oneShot({ op: 'ping' }, (f) => { if (f !== null) this.attempt = 0; });
    for (const sub of this.subs.values()) this.sendJoin(sub);
    this.sends.flush();
    this.requests.flush();
    this.armHeartbeat();
  }

  private dropped(code: number, reason: string): void {
    const ws = this.ws;
    if (ws !== null) this.detach(ws);
    this.ws = null;
    this.joins.clear();
    for (const sub of this.subs.values()) sub.disconnected();
    const largest = this.sends.disconnected();
    this.requests.disconnected();
    // Closed for a frame over twice the engine's limit (smaller than maxPayload): the largest send in
    // flight is the likely one; written again it would close every connection in turn.
    if (code === CLOSE.tooLarge && largest !== undefined) this.sends.reject(largest, new ChatError('too_large', 'the engine closed the connection for a frame too large (1009)', { cid: largest }));
    const shots = [...this.oneShots.values()];
    this.oneShots.clear();
    for (const shot of shots) shot(null);
    this.retryLater(code, reason);
  }

  private retryLater(code: number, reason: string): void {
    if (this.current === 'closed') return;
    const delay = this.reconnectBackoff.delay(this.attempt++);
    this.setState('disconnected', { code, reason, retryIn: delay });
    this.cancelReconnect = after(delay, () => {
      this.cancelReconnect = null;
      this.connect();
    });
  }

  private detach(ws: WebSocketLike): void {
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = () => {}; // `ws` throws an error event nobody listens to
    this.cancelHeartbeat?.();
    this.cancelHeartbeat = null;
    this.cancelDeadline?.();
    this.cancelDeadline = null;
  }

  /** Ping after `interval` ms; a connection that does not answer within `timeout` is given up. */
  private armHeartbeat(): void {
    const hb = this.heartbeat;
    if (hb === false) return;
    this.cancelHeartbeat?.();
    this.cancelHeartbeat = after(hb.interval, () => {
      this.cancelHeartbeat = null;
      if (!this.oneShot({ op: 'ping' }, () => {})) return;
      this.cancelDeadline ??= after(hb.timeout, () => {
        this.cancelDeadline = null;
        const ws = this.ws;
        if (ws === null) return;
        this.detach(ws);
        ws.close();
        this.dropped(CLOSE.abnormal, 'no answer to ping');
      });
      this.armHeartbeat();
    });
  }

  private write(frame: string): boolean {
    const ws = this.ws;
    if (ws === null || this.current !== 'connected' || ws.readyState !== OPEN) return false;
    ws.send(frame);
    return true;
  }

  private nextRef(): string {
    return 'r' + (++this.refSeq).toString(36);
  }

  /** A frame answered on this connection or never (`answer(null)` when the connection drops). */
  private oneShot(frame: ClientFrame, answer: (f: ServerFrame | null) => void): boolean {
    const ref = this.nextRef();
    if (!this.write(JSON.stringify({ ...frame, ref }))) return false;
    this.oneShots.set(ref, answer);
    return true;
  }

  private request(frame: ClientFrame, room: string): Promise<ServerFrame> {
    if (this.current === 'closed') return Promise.reject(new ChatError('closed', 'the client is closed', { room }));
    const ref = this.nextRef();
    const text = JSON.stringify({ ...frame, ref });
    return this.requests.add(ref, text, utf8Length(text), { room });
  }

  private sendJoin(sub: RoomSubscription): void {
    const ref = this.nextRef();
    const f = sub.joinFrame(ref);
    if (this.write(JSON.stringify(f))) this.joins.set(ref, { sub, sentSince: f.since !== undefined });
  }

  private leaveRoom(sub: RoomSubscription): Promise<void> {
    if (this.subs.get(sub.room) !== sub) return Promise.resolve();
    this.subs.delete(sub.room);
    sub.end(null, new ChatError('left', 'the subscription was left before the engine answered its join', { room: sub.room }));
    return new Promise<void>((resolve) => {
      if (!this.oneShot({ op: 'leave', room: sub.room }, () => resolve())) resolve();
    });
  }

  // ---- frames from the engine ---------------------------------------------------------------------

  private received(data: unknown): void {
    if (typeof data !== 'string') return; // chat.v1.json frames are text
    let f: unknown;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (f === null || typeof f !== 'object' || typeof (f as { op?: unknown }).op !== 'string') return;
    // Any frame proves the connection alive.
    this.cancelDeadline?.();
    this.cancelDeadline = null;
    this.frame(f as ServerFrame);
  }

  private frame(f: ServerFrame): void {
    switch (f.op) {
      case 'msg':
        this.subs.get(f.room)?.message(messageOf(f));
        return;
      case 'ack': {
        if (f.cid === undefined) return;
        const ack: SendAck = { id: f.id, seq: f.seq, at: f.at, room: f.room, cid: f.cid };
        if (f.target !== undefined) ack.target = f.target;
        this.sends.resolve(f.cid, ack);
        return;
      }
      case 'receipt':
        this.subs.get(f.room)?.receipt(f.user, f.seq);
        return;
      case 'joined':
        return this.onJoined(f);
      case 'left':
        if (f.ref !== undefined && this.answer(f.ref, f)) return;
        return this.onLeft(f.room, f.reason);
      case 'typing':
        this.subs.get(f.room)?.typing(f.user);
        return;
      case 'error':
        return this.onError(f);
      default:
        if (f.ref !== undefined) this.answer(f.ref, f);
    }
  }

  /** A reply with a ref: to a request or a one-shot frame. */
  private answer(ref: string, f: ServerFrame): boolean {
    if (this.requests.resolve(ref, f)) return true;
    const shot = this.oneShots.get(ref);
    if (shot === undefined) return false;
    this.oneShots.delete(ref);
    shot(f);
    return true;
  }

  private onJoined(f: JoinedFrame): void {
    if (f.ref === undefined) {
      // Unsolicited (a cluster node could not fill a gap): recovered false, the room starts over.
      this.subs.get(f.room)?.joined(f, true);
      return;
    }
    const j = this.joins.get(f.ref);
    if (j === undefined) return;
    this.joins.delete(f.ref);
    if (this.subs.get(j.sub.room) === j.sub) j.sub.joined(f, j.sentSince);
  }

  private onLeft(room: string, reason: 'deleted' | 'removed' | undefined): void {
    const sub = this.subs.get(room);
    if (sub === undefined) return;
    this.subs.delete(room);
    const r = reason ?? 'deleted';
    sub.end({ room, reason: r }, new ChatError(r === 'removed' ? 'forbidden' : 'not_found', `the room was ${r}`, { room }));
  }

  private onError(f: ErrorFrame): void {
    if (f.cid !== undefined && this.sends.refused(f.cid, f.code, f.message)) return;
    if (f.ref === TYPING_REF) return; // a typing event dropped: nothing to retry or report
    if (f.ref !== undefined) {
      const j = this.joins.get(f.ref);
      if (j !== undefined) return this.joinRefused(f.ref, j.sub, f);
      if (this.requests.refused(f.ref, f.code, f.message)) return;
      if (this.answer(f.ref, f)) return;
    }
    this.report(new ChatError(f.code, f.message, { cid: f.cid }));
  }

  /** A join refused: `rate_limited` / `overloaded` are retried with backoff, anything else ends the subscription. */
  private joinRefused(ref: string, sub: RoomSubscription, f: ErrorFrame): void {
    this.joins.delete(ref);
    if (this.subs.get(sub.room) !== sub) return;
    if (isRetryable(f.code)) {
      sub.cancelRetry?.();
      sub.cancelRetry = after(this.retryBackoff.delay(sub.joinRetries++), () => {
        sub.cancelRetry = null;
        if (this.subs.get(sub.room) === sub) this.sendJoin(sub);
      });
      return;
    }
    this.subs.delete(sub.room);
    const err = new ChatError(f.code, f.message, { room: sub.room });
    sub.end({ room: sub.room, reason: 'refused', error: err }, err);
  }

  // ---- events -------------------------------------------------------------------------------------

  private emit<E extends keyof ClientEvents>(event: E, ...args: Parameters<ClientEvents[E]>): void {
    for (const fn of [...this.listeners[event]]) {
      try {
        (fn as (...a: Parameters<ClientEvents[E]>) => void)(...args);
      } catch (err) {
        if (event !== 'error') this.report(err);
      }
    }
  }

  /** Run an app callback: what it throws goes to 'error' listeners, or is rethrown on its own if there are none. */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (this.listeners.error.size > 0) this.report(err);
      else after(0, () => { throw err; });
    }
  }

  private report(err: unknown): void {
    this.emit('error', err instanceof Error ? err : new Error(String(err)));
  }
}

function hex(bytes: number): string {
  return Array.from(randomBytes(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}
