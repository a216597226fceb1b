// The front thread's hub. Client frames arrive here already validated (codec.ts); sends are
// forwarded to the persistence actor; what the actor reports back is published here (deliver)
// and acked here (onCommitted). Joins and history are served from the hot window, falling back
// to the reader pool for older pages. Authorization is decided here, on every path, from the
// room's kind and members that the actor sent when the room was activated.

import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import type {
  AdminOp, CommittedEvt, Delivered, FromActor, LastSeqsResult, Message, MyRoomsResult, PageResult, RangeResult, ReadTask, ReplyEvt,
  RoomInfo, RoomsResult, SendResult, SeqResult, SinceResult,
} from '../workers/contract.ts';
import type { ActorLink } from './actor-link.ts';
import type { Bus, BusHandler, ControlEvt } from './bus.ts';
import type { Identity } from './auth.ts';
import {
  Codec, encodeAck, encodeError, encodeFrame, msgFrameJson, msgFrameMsgpack, toDelivered,
  type ClientFrame, type Out, type PageParams,
} from './codec.ts';
import type { Config } from './config.ts';
import { CLOSE, ChatError, type ErrorCode } from './errors.ts';
import type { Logger } from './log.ts';
import { Stats } from './metrics.ts';
import type { ReadPool } from './readers.ts';
import { Room, RoomRegistry } from './rooms.ts';
import { encodeStomp } from './stomp.ts';
import { stompMessage, type StompState } from './stomp-session.ts';
import type { TestHooks } from './test-hooks.ts';

/** Per-socket state, created complete at upgrade (fixed shape; nothing is added later). */
export interface Session {
  connId: number;
  userId: string;
  userName: string;
  admin: boolean;
  codec: Codec;
  rooms: Set<string>;
  /**
   * Joins in flight, by room, with what arrived for the room meanwhile (a leave, another join): run
   * in order once the join has answered, so join-then-leave sent together ends up left.
   */
  joining: Map<string, JoinInFlight>;
  ws: WebSocket<Session> | null;
  closed: boolean;
  /** JWT expiry timer (auth jwt), cleared on close. */
  expiry: NodeJS.Timeout | null;
  /** When the identity's token expires (ms since the epoch); 0 = never. */
  expiresAt: number;
  /** Send token bucket (CHAT_SEND_RATE / CHAT_SEND_BURST). */
  sendTokens: number;
  sendRefillAt: number;
  /** Typing relay token bucket (1/s, burst 3). */
  typingTokens: number;
  typingRefillAt: number;
  /** STOMP connections only: subscriptions, parser, heart-beats. */
  stomp: StompState | null;
  /** Seen over the backpressure limit: uWS is dropping its frames, so it is cut off and counted. */
  slow: boolean;
  /** Bytes waiting in its send buffer at the last sample. */
  lastBuffered: number;
  /**
   * This connection's own uWS topic (subscribed at open): acks go out through it, so they join the
   * room messages already queued for the same socket in uWS's end-of-turn drain: one write, not two.
   */
  replyTopic: string;
}

/** A join that has not answered yet, and the room frames of its connection that wait for it. */
interface JoinInFlight {
  /** The room object once the join has it (counted in its joinsInFlight). */
  room: Room<Session> | null;
  after: (() => void)[];
}

/** Joins and leaves of one room a connection may queue behind a join in flight. */
const MAX_QUEUED_PER_ROOM = 64;

export function newSession(connId: number, id: Identity, codec: Codec, burst: number, stomp: StompState | null): Session {
  const now = Date.now();
  return {
    connId, userId: id.id, userName: id.name, admin: id.admin, codec, rooms: new Set(), joining: new Map(), ws: null, closed: false,
    expiry: null, expiresAt: id.exp, sendTokens: burst, sendRefillAt: now, typingTokens: TYPING_BURST, typingRefillAt: now, stomp, slow: false, lastBuffered: 0,
    replyTopic: 'r/' + connId,
  };
}

interface PendingSend {
  /** The connection to ack, or null (ENTER/QUIT/SYSTEM have no connection to answer). */
  s: Session | null;
  cid: string | null;
  ref: string | undefined;
  bytes: number;
  /** Runs right after the message is published (before any later message of the room). */
  delivered: ((d: Delivered) => void) | null;
  /** Runs when the send is settled (committed, duplicate or refused) instead of the default ack. */
  settled: ((r: SendResult) => void) | null;
  /** performance.now() at acceptance, for the accept-to-deliver and accept-to-commit histograms. */
  t0: number;
}

export interface Page {
  messages: Delivered[];
  more: boolean;
}

export interface MyRoomView {
  id: string;
  kind: RoomInfo['kind'];
  name: string | null;
  subject: string | null;
  members: string[] | null;
  unread: number;
  last: Message | null;
}

const MAX_IDLE_ROOMS = 10_000;
/** setTimeout's longest delay (a 32-bit signed count of ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Cluster: a room without local members stays subscribed this long, then is dropped. */
const CLUSTER_IDLE_MS = 5_000;
/** Cluster: held messages beyond a gap, at most; past it the gap is filled from the store at once. */
const MAX_HELD = 10_000;
const TYPING_RATE = 1; // per second
const TYPING_BURST = 3;

type Frame<Op extends ClientFrame['op']> = Extract<ClientFrame, { op: Op }>;

export class Engine {
  readonly stats = new Stats();
  readonly rooms: RoomRegistry<Session>;
  private readonly pending = new Map<number, PendingSend>();
  private nextToken = 1;
  private inflightBytes = 0;
  private readonly requests = new Map<number, (r: ReplyEvt) => void>();
  private nextReq = 1;
  /** blocker -> users they block. Small, and consulted on every delivery to a filtered session. */
  private readonly blocks = new Map<string, Set<string>>();
  /** Open connections per user id (limits, and re-attaching when blocks change). */
  private readonly userSessions = new Map<string, Set<Session>>();
  /** False while the store refuses commits (reported by the actor). */
  storeOk = true;
  storeReason: string | null = null;
  /** The write buffer hit a cap (logged once until it drains below half). */
  private overloaded = false;
  private stopping = false;
  private readonly clusterTimers: NodeJS.Timeout[] = [];

  constructor(
    private readonly cfg: Config,
    private readonly app: TemplatedApp,
    private readonly actor: ActorLink,
    private readonly readers: ReadPool,
    private readonly log: Logger,
    initialBlocks: [string, string][],
    /** Cluster mode: the Redis bus to the other nodes (null on a single node). */
    readonly bus: Bus | null = null,
    /** Test hooks (CHAT_TEST_HOOKS): joins wait before `joined` while the join point is held. */
    private readonly hooks: TestHooks | null = null,
  ) {
    // Cluster: subscribe to the room's channel before asking for its state, so nothing committed
    // after the snapshot is missed (the sequencer drops what the snapshot already has).
    const load = bus === null
      ? (room: string, create: boolean): void => actor.send({ t: 'load', room, create })
      : (room: string, create: boolean): void => void bus.subscribe(room).then(() => actor.send({ t: 'load', room, create }));
    this.rooms = new RoomRegistry<Session>(cfg.window, bus === null ? MAX_IDLE_ROOMS : Number.MAX_SAFE_INTEGER, load);
    for (const [a, b] of initialBlocks) this.blockSet(a).add(b);
    actor.listen((evts) => this.onActorEvents(evts));
    if (bus !== null) this.startCluster(bus);
  }

  get inflight(): number {
    return this.pending.size;
  }

  get inflightByteCount(): number {
    return this.inflightBytes;
  }

  /** Whether the engine accepts new work (false once shutdown began). */
  get accepting(): boolean {
    return !this.stopping;
  }

  // ---- connections -----------------------------------------------------------------------------

  /** May this user open one more connection? */
  mayConnect(userId: string): boolean {
    return (this.userSessions.get(userId)?.size ?? 0) < this.cfg.maxConnsPerUser;
  }

  /** The connection's identity is known (at open, or at a STOMP CONNECT). */
  onOpen(s: Session): void {
    let set = this.userSessions.get(s.userId);
    if (set === undefined) this.userSessions.set(s.userId, (set = new Set()));
    set.add(s);
    if (s.expiresAt > 0 && s.expiry === null) this.armExpiry(s);
  }

  /**
   * A token that expires mid-session closes the socket with 1008 (policy violation). setTimeout
   * takes at most 2^31-1 ms (~24.8 days; longer fires at once): a later expiry re-arms in steps.
   */
  private armExpiry(s: Session): void {
    const left = s.expiresAt - Date.now();
    s.expiry = setTimeout(() => {
      s.expiry = null;
      if (s.closed) return;
      if (Date.now() < s.expiresAt) return this.armExpiry(s);
      s.ws?.end(CLOSE.policy, 'token expired');
    }, Math.min(Math.max(0, left), MAX_TIMER_MS));
  }

  onClose(s: Session): void {
    s.closed = true;
    if (s.expiry !== null) clearTimeout(s.expiry);
    for (const j of s.joining.values()) if (j.room !== null) j.room.joinsInFlight--;
    s.joining.clear();
    for (const roomId of [...s.rooms]) {
      const room = this.rooms.ready(roomId);
      if (room !== undefined) this.detach(s, room, true);
    }
    s.rooms.clear();
    s.ws = null;
    const set = this.userSessions.get(s.userId);
    if (set !== undefined) {
      set.delete(s);
      if (set.size === 0) this.userSessions.delete(s.userId);
    }
  }

  /**
   * Slow consumers. uWS drops frames for a socket past maxBackpressure and shuts its reading down,
   * which closes it (1006) within a loop turn; it tells nobody why, and its buffer accounting cannot
   * be read in the close handler. So the buffers are sampled: every socket every 100 ms, and every
   * 10 ms those that had bytes waiting. A 1006 close of a socket that had bytes waiting is a
   * slow-consumer cut-off, counted; a socket found past the limit is closed here at once. Either
   * way it is never silently skipped: it is closed, and rejoins with `since`.
   */
  private readonly pressured = new Set<Session>();
  private sweepTick = 0;

  sweepSlow(sessions: Iterable<Session>): void {
    const all = this.sweepTick++ % 10 === 0;
    for (const s of all ? sessions : this.pressured) this.sample(s);
  }

  private sample(s: Session): void {
    if (s.closed || s.ws === null || s.slow) {
      this.pressured.delete(s);
      return;
    }
    const b = s.ws.getBufferedAmount();
    s.lastBuffered = b;
    if (b === 0) {
      this.pressured.delete(s);
      return;
    }
    this.pressured.add(s);
    if (b > this.cfg.maxBackpressure) {
      s.slow = true;
      s.ws.close();
    }
  }

  /** At close: was this connection cut off as a slow consumer? */
  wasSlow(s: Session, code: number): boolean {
    this.pressured.delete(s);
    return s.slow || (code === 1006 && s.lastBuffered > 0);
  }

  // ---- output ----------------------------------------------------------------------------------

  /** Send a frame to one socket; safe outside uWS handlers (corked) and after close (dropped). */
  send(s: Session, out: Out): void {
    if (s.closed || s.ws === null) return;
    const ws = s.ws;
    ws.cork(() => {
      ws.send(out, typeof out !== 'string');
    });
  }

  error(s: Session, code: ErrorCode, message: string | undefined, ref: string | undefined, cid?: string): void {
    this.stats.refuse(code);
    if (s.codec !== Codec.Stomp) return this.send(s, encodeError(s.codec, code, message, ref, cid));
    // STOMP has no per-frame error: ERROR (with the receipt it refuses), then the connection closes.
    this.stompFail(s, `${code}: ${message ?? code}`, ref, CLOSE.policy);
  }

  /** STOMP's only error: an ERROR frame (naming the receipt it refuses), then close, as STOMP requires. */
  stompFail(s: Session, message: string, receipt: string | undefined, closeCode: number): void {
    if (s.closed || s.ws === null) return;
    const headers: [string, string][] = [['message', message.slice(0, 200)], ['content-type', 'text/plain']];
    if (receipt !== undefined) headers.push(['receipt-id', receipt]);
    this.send(s, encodeStomp('ERROR', headers, message));
    s.ws.end(closeCode, message.slice(0, 100));
  }

  /**
   * A reply frame in the connection's protocol. STOMP has no joined/left/read frames: a join's
   * messages become MESSAGE frames of its subscription, anything else a RECEIPT if one was asked.
   */
  private reply(s: Session, fields: Record<string, unknown> & { op: string }, messages?: Delivered[], ref?: string): void {
    if (s.codec !== Codec.Stomp) return this.send(s, encodeFrame(s.codec, fields, messages, ref));
    if (messages !== undefined && messages.length > 0) {
      const sub = s.stomp!.byRoom.get(fields.room as string);
      if (sub !== undefined) for (const d of messages) this.send(s, stompMessage(sub, d));
    }
    if (ref !== undefined) this.send(s, encodeStomp('RECEIPT', [['receipt-id', ref]]));
  }

  /** A STOMP CONNECT established who this connection is (it was anonymous since the upgrade). */
  setIdentity(s: Session, id: Identity): void {
    const set = this.userSessions.get(s.userId);
    set?.delete(s);
    if (set?.size === 0) this.userSessions.delete(s.userId);
    s.userId = id.id;
    s.userName = id.name;
    s.admin = id.admin;
    s.expiresAt = id.exp;
    this.onOpen(s);
  }

  // ---- authorization ---------------------------------------------------------------------------

  private canCreate(): boolean {
    return this.cfg.auth === 'none';
  }

  /** Public rooms are open to anyone; group and direct rooms to their members (and admins). */
  mayAccess(room: Room<Session>, userId: string, admin: boolean): boolean {
    return room.members === null || admin || room.members.has(userId);
  }

  private blockSet(user: string): Set<string> {
    let set = this.blocks.get(user);
    if (set === undefined) this.blocks.set(user, (set = new Set()));
    return set;
  }

  /** Does `viewer` block `sender`? */
  blocked(viewer: string, sender: string): boolean {
    const set = this.blocks.get(viewer);
    return set !== undefined && set.has(sender);
  }

  private hidesAnyone(userId: string): boolean {
    const set = this.blocks.get(userId);
    return set !== undefined && set.size > 0;
  }

  private visibleTo(userId: string, list: Delivered[]): Delivered[] {
    return this.hidesAnyone(userId) ? list.filter((d) => !this.blocked(userId, d.from)) : list;
  }

  /** Activate a room and check access; `cb` gets the room, or the error has been handled. */
  private withRoom(roomId: string, create: boolean, who: { userId: string; admin: boolean }, cb: (room: Room<Session>) => void, fail: (code: ErrorCode, msg: string) => void): void {
    const ready = this.rooms.ready(roomId);
    const go = (room: Room<Session> | null): void => {
      if (room === null) return fail('not_found', 'no such room');
      if (!this.mayAccess(room, who.userId, who.admin)) return fail('forbidden', 'you are not a member of this room');
      cb(room);
    };
    if (ready !== undefined) go(ready);
    else this.rooms.activate(roomId, create, go);
  }

  // ---- client frames ---------------------------------------------------------------------------

  onFrame(s: Session, f: ClientFrame): void {
    switch (f.op) {
      case 'send': return this.onSend(s, f);
      case 'join': return this.onJoin(s, f);
      case 'leave': return this.onLeave(s, f);
      case 'history': return this.onHistory(s, f);
      case 'read': return this.onRead(s, f);
      case 'typing': return this.onTyping(s, f);
      case 'ping': return this.reply(s, { op: 'pong' }, undefined, f.ref);
    }
  }

  private takeSendToken(s: Session): boolean {
    if (this.cfg.sendRate === 0) return true;
    const now = Date.now();
    s.sendTokens = Math.min(this.cfg.sendBurst, s.sendTokens + ((now - s.sendRefillAt) * this.cfg.sendRate) / 1000);
    s.sendRefillAt = now;
    if (s.sendTokens < 1) return false;
    s.sendTokens -= 1;
    return true;
  }

  private onSend(s: Session, f: Frame<'send'>): void {
    this.post(s, f.room, f.text, f.cid, f.ref);
  }

  /** A CHAT message from a connection (native `send`, or STOMP SEND with an optional cid). */
  post(s: Session, roomId: string, text: string, cid: string | null, ref: string | undefined): void {
    const echo = cid ?? undefined;
    if (!this.takeSendToken(s)) return this.error(s, 'rate_limited', `more than ${this.cfg.sendRate} sends per second`, ref, echo);
    this.withRoom(roomId, this.canCreate(), s, (room) => {
      if (room.kind === 'direct') {
        for (const other of room.members!) {
          if (other !== s.userId && this.blocked(other, s.userId)) return this.error(s, 'forbidden', 'you cannot post in this room', ref, echo);
        }
      }
      if (s.closed) return; // never acked, never stored: the client retries with the same cid
      const bytes = text.length * 3 + (cid?.length ?? 0) + 64; // upper bound of the UTF-8 size, cheap
      const refusal = this.admit(bytes);
      if (refusal !== null) return this.error(s, 'overloaded', refusal, ref, echo);
      this.forward({ s, cid, ref, bytes, delivered: null, settled: null, t0: 0 }, room.id, 'CHAT', s.userId, s.userName, text);
    }, (code, msg) => this.error(s, code, msg, ref, echo));
  }

  /** Whether the write buffer takes `bytes` more; the reason if not. */
  private admit(bytes: number): string | null {
    if (this.stopping) return 'the engine is shutting down; retry later';
    if (this.pending.size >= this.cfg.bufferMaxMessages || this.inflightBytes + bytes > this.cfg.bufferMaxBytes) {
      if (!this.overloaded) {
        // One line when the buffer fills and one when it drains, not one per refused send.
        this.overloaded = true;
        this.log.warn({ buffered: this.pending.size, bytes: this.inflightBytes, storeOk: this.storeOk }, 'write buffer full: refusing sends with overloaded');
      }
      return 'the store is behind; retry later, nothing was stored';
    }
    return null;
  }

  /** Hand a message to the actor; the PendingSend decides what happens when it settles. */
  private forward(p: PendingSend, room: string, type: Message['type'], fromId: string, fromName: string, text: string): void {
    const token = this.nextToken++;
    p.t0 = performance.now();
    this.pending.set(token, p);
    this.inflightBytes += p.bytes;
    if (this.bus !== null) {
      const r = this.rooms.ready(room);
      if (r !== undefined) r.lastUsed = Date.now(); // not dropped as idle while its send is in flight
    }
    this.stats.accepted++;
    this.actor.send({ t: 'send', token, room, type, fromId, fromName, text, cid: p.cid, at: Date.now(), create: this.canCreate() });
  }

  private onJoin(s: Session, f: Frame<'join'>): void {
    this.join(s, f.room, f.since, f.limit, f.ref);
  }

  /** Join a room (native `join`, STOMP SUBSCRIBE): authorize, ENTER if first, reply, subscribe. */
  join(s: Session, roomId: string, since: string | undefined, limit: number, ref: string | undefined): void {
    const f = { room: roomId, since, limit, ref };
    const inFlight = s.joining.get(roomId);
    if (inFlight !== undefined) return this.queueBehindJoin(s, inFlight, () => this.join(s, roomId, since, limit, ref), ref);
    // Joins still in flight count: a client may not pass the cap by not waiting for replies.
    if (!s.rooms.has(f.room) && this.roomsHeld(s) >= this.cfg.maxRoomsPerConn) {
      return this.error(s, 'forbidden', `a connection may join at most ${this.cfg.maxRoomsPerConn} rooms`, f.ref);
    }
    const entry: JoinInFlight = { room: null, after: [] };
    s.joining.set(roomId, entry);
    this.withRoom(f.room, this.canCreate(), s, (room) => {
      if (s.closed) return;
      entry.room = room;
      room.joinsInFlight++;
      room.lastUsed = Date.now(); // (cluster) not dropped as idle while this join completes
      const replyNow = (enter?: Delivered): void => {
        if (f.since !== undefined) return this.recover(s, room, f.since, f.limit, f.ref);
        const page = this.latest(room, f.limit);
        // With limit 0 the page is empty, but a member's own ENTER is always in joined.messages (the
        // last of them, unless other nodes' messages came right after it in a cluster).
        if (enter !== undefined && (page.length === 0 || page[page.length - 1].seq < enter.seq)) page.push(enter);
        this.joined(s, room, page, undefined, f.ref);
      };
      // Test hook: a held join waits here, before its page is read and its reply sent.
      const reply = (enter?: Delivered): void => {
        const held = this.hooks?.gate('join');
        if (held) void held.then(() => replyNow(enter));
        else replyNow(enter);
      };
      const first = !s.rooms.has(room.id) && !room.presence.has(s.userId) && !room.entering.has(s.userId);
      if (first && this.bus !== null) return this.clusterEnter(s, room, reply, f.ref);
      if (!first || !this.announces(room)) return reply();
      // First connection of this user in the room: ENTER. The joined reply waits until the ENTER
      // is published, so the member's own ENTER is the last of joined.messages.
      room.entering.add(s.userId);
      this.postEnter(s, room, reply, f.ref, () => room.entering.delete(s.userId));
    }, (code, msg) => this.joinFailed(s, roomId, code, msg, f.ref));
  }

  /** A join answered with an error instead of `joined`. */
  private joinFailed(s: Session, roomId: string, code: ErrorCode, msg: string, ref: string | undefined): void {
    this.error(s, code, msg, ref);
    this.settleJoin(s, roomId);
  }

  /** Rooms a connection is in or is joining. */
  private roomsHeld(s: Session): number {
    let n = s.rooms.size;
    for (const id of s.joining.keys()) if (!s.rooms.has(id)) n++;
    return n;
  }

  private queueBehindJoin(s: Session, inFlight: JoinInFlight, run: () => void, ref: string | undefined): void {
    if (inFlight.after.length >= MAX_QUEUED_PER_ROOM) {
      return this.error(s, 'rate_limited', `at most ${MAX_QUEUED_PER_ROOM} joins and leaves of a room may wait for its join`, ref);
    }
    inFlight.after.push(run);
  }

  /** The join of `roomId` has answered: run what waited for it, in order (stopping at another join). */
  private settleJoin(s: Session, roomId: string): void {
    const entry = s.joining.get(roomId);
    if (entry === undefined) return;
    s.joining.delete(roomId);
    if (entry.room !== null) entry.room.joinsInFlight--;
    const after = entry.after;
    for (let i = 0; i < after.length; i++) {
      if (s.closed) return;
      after[i]();
      const next = s.joining.get(roomId);
      if (next !== undefined) {
        next.after = next.after.concat(after.slice(i + 1));
        return;
      }
    }
  }

  /**
   * Post the user's ENTER (the user is in room.entering); `reply` (the joined reply) runs once it is
   * published, or at once without it if the buffer is full. `gone` runs instead when the ENTER is
   * refused, or (cluster) when the connection closed before it could attach.
   */
  private postEnter(s: Session, room: Room<Session>, reply: (enter?: Delivered) => void, ref: string | undefined, gone: () => void): void {
    const bytes = s.userName.length * 3 + 64;
    if (this.admit(bytes) !== null) {
      // no room in the buffer for the ENTER: join without it
      room.entering.delete(s.userId);
      return reply();
    }
    this.forward({
      s: null, cid: null, ref: undefined, bytes, t0: 0,
      delivered: (d) => {
        if (s.closed) {
          // The ENTER is stored, the connection gone before it could attach: QUIT, unless the
          // user is in the room on another connection (cluster: release() decides, cluster-wide).
          gone();
          if (this.bus === null && this.announces(room) && !room.presence.has(s.userId) && !room.entering.has(s.userId)) this.postQuit(room.id, s.userId, s.userName);
          return;
        }
        room.entering.delete(s.userId);
        reply(d);
      },
      settled: (r) => {
        if (r.error === null) return;
        gone();
        this.joinFailed(s, room.id, r.error, 'no such room', ref);
      },
    }, room.id, 'ENTER', s.userId, s.userName, `${s.userName} entered`);
    // Public rooms become "mine" (GET /api/me/rooms) from here, in the ENTER's own commit; what
    // came before (the ENTER included) is not unread. seq -1: the latest seq of the room.
    if (room.kind === 'public') this.actor.send({ t: 'mark', room: room.id, user: s.userId, seq: -1, id: '', ifAbsent: true });
  }

  private announces(room: Room<Session>): boolean {
    return this.cfg.enterQuit === 'all' || (this.cfg.enterQuit === 'public' && room.kind === 'public');
  }

  private markPresence(room: Room<Session>, userId: string, delta: number): number {
    const n = (room.presence.get(userId) ?? 0) + delta;
    if (n <= 0) room.presence.delete(userId);
    else room.presence.set(userId, n);
    return n;
  }

  /** Reply `joined` and subscribe in the same turn: live msgs continue at joined.seq + 1. */
  private joined(s: Session, room: Room<Session>, messages: Delivered[], recovered: boolean | undefined, ref: string | undefined): void {
    if (s.closed || s.ws === null) return;
    // Deleted, or the user removed from its members, while this join waited (a store read, Redis,
    // its ENTER): nothing to attach to, and (cluster) the presence it registered goes, no QUIT.
    const refused = room.deleted ? 'not_found' : !s.rooms.has(room.id) && !this.mayAccess(room, s.userId, s.admin) ? 'forbidden' : null;
    if (refused !== null) {
      if (this.bus !== null && !room.presence.has(s.userId) && !room.entering.has(s.userId)) void this.bus.presenceLeave(room.id, s.userId);
      return this.joinFailed(s, room.id, refused, refused === 'not_found' ? 'no such room' : 'you are not a member of this room', ref);
    }
    const fields: Record<string, unknown> = { op: 'joined', room: room.id, epoch: room.epoch, seq: room.lastSeq };
    if (recovered !== undefined) fields.recovered = recovered;
    this.reply(s, fields as typeof fields & { op: string }, this.visibleTo(s.userId, messages), ref);
    if (!s.rooms.has(room.id)) this.attach(s, room);
    this.settleJoin(s, room.id);
  }

  /** Subscribe a connection: the room's native topic, or one-by-one sends if its user blocks anyone. */
  private attach(s: Session, room: Room<Session>): void {
    s.rooms.add(room.id);
    if (!room.sessions.has(s)) {
      room.sessions.add(s);
      this.markPresence(room, s.userId, +1);
    }
    if (this.hidesAnyone(s.userId)) room.filtered.add(s);
    else this.subscribe(s, room);
  }

  /** The native topic this connection listens on for a room. */
  private topicOf(s: Session, room: Room<Session>): string {
    if (s.codec === Codec.Json) return room.jsonTopic;
    if (s.codec === Codec.Msgpack) return room.msgpackTopic;
    return s.stomp!.byRoom.get(room.id)!.topic;
  }

  private subscribe(s: Session, room: Room<Session>): void {
    if (s.codec === Codec.Stomp) {
      const sub = s.stomp!.byRoom.get(room.id);
      if (sub === undefined) return;
      const t = room.stompTopics.get(sub.topic);
      if (t === undefined) room.stompTopics.set(sub.topic, { sub, count: 1 });
      else t.count++;
    }
    s.ws!.subscribe(this.topicOf(s, room));
  }

  private unsubscribe(s: Session, room: Room<Session>): void {
    if (s.codec === Codec.Stomp) {
      const sub = s.stomp!.byRoom.get(room.id);
      const t = sub === undefined ? undefined : room.stompTopics.get(sub.topic);
      if (t !== undefined && --t.count === 0) room.stompTopics.delete(sub!.topic);
      if (sub === undefined) return;
    }
    if (s.ws !== null && !s.closed) s.ws.unsubscribe(this.topicOf(s, room));
  }

  /** Unsubscribe; the user's last connection leaving the room posts QUIT. */
  private detach(s: Session, room: Room<Session>, closing: boolean): void {
    s.rooms.delete(room.id);
    if (!room.sessions.delete(s)) return;
    if (room.filtered.delete(s) === false) {
      if (closing && s.codec === Codec.Stomp) this.unsubscribe(s, room); // uWS drops the topic itself; the count is ours
      else if (!closing) this.unsubscribe(s, room);
    }
    room.lastUsed = Date.now();
    if (this.markPresence(room, s.userId, -1) !== 0) return;
    // Another connection of the user is joining (its ENTER on the way): still present, no QUIT.
    if (room.entering.has(s.userId)) return;
    if (this.bus !== null) {
      // Cluster: QUIT only if the user is now online on no node. A node that is stopping hands its
      // presence over to a survivor instead (which posts the QUITs).
      if (!this.stopping) this.clusterLeave(room, s.userId, s.userName);
      return;
    }
    if (this.announces(room)) this.postQuit(room.id, s.userId, s.userName);
  }

  /** Cluster: the user's last connection here left; QUIT if they are now online on no node. */
  private clusterLeave(room: Room<Session>, userId: string, userName: string): void {
    void this.bus!.presenceLeave(room.id, userId).then((last) => {
      if (last && this.announces(room)) this.postQuit(room.id, userId, userName);
    });
  }

  private postQuit(roomId: string, userId: string, userName: string): void {
    if (this.admit(64) !== null) return;
    this.forward({ s: null, cid: null, ref: undefined, bytes: 64, delivered: null, settled: null, t0: 0 }, roomId, 'QUIT', userId, userName, `${userName} left`);
  }

  /**
   * Cluster join of a user's first connection on this node: register the presence in Redis, and
   * post ENTER only if no other node has the user in the room. The joined reply waits, as on a
   * single node, so the member's own ENTER is the last of joined.messages.
   */
  private clusterEnter(s: Session, room: Room<Session>, reply: (enter?: Delivered) => void, ref: string | undefined): void {
    room.entering.add(s.userId);
    const announce = this.announces(room);
    // The presence is held from here; if the connection is gone before it attaches, give it back.
    const release = (): void => {
      room.entering.delete(s.userId);
      if (!room.presence.has(s.userId) && !room.entering.has(s.userId)) this.clusterLeave(room, s.userId, s.userName);
    };
    void this.bus!.presenceJoin(room.id, s.userId, s.userName, announce).then((firstAnywhere) => {
      if (s.closed) return release();
      if (firstAnywhere && announce) return this.postEnter(s, room, reply, ref, release);
      room.entering.delete(s.userId);
      reply();
    });
  }

  private notBefore(): number {
    return this.cfg.retentionMs > 0 ? Date.now() - this.cfg.retentionMs : 0;
  }

  /** The newest `limit` visible messages; the window always holds the newest `window` >= 100. */
  private latest(room: Room<Session>, limit: number): Delivered[] {
    const w = room.window;
    return w.slice(Math.max(w.firstVisible(this.notBefore()), w.size - limit), w.size);
  }

  /** join with `since`: every message after it, or recovered:false when the gap cannot be filled. */
  private recover(s: Session, room: Room<Session>, since: string, limit: number, ref: string | undefined): void {
    const w = room.window;
    const i = w.indexOf(since);
    if (i >= 0 && w.at(i).at >= this.notBefore()) return this.joined(s, room, w.slice(i + 1, w.size), true, ref);
    if (room.complete || (w.size > 0 && since > w.at(w.size - 1).id)) {
      // The window holds everything the room has (or since is newer than all of it): unknown id.
      return this.joined(s, room, this.latest(room, limit), false, ref);
    }
    const task: ReadTask = { kind: 'since', room: room.id, since, max: this.cfg.recoveryMax, notBefore: this.notBefore() };
    this.read<SinceResult>(task).then((res) => {
      if (s.closed) return;
      const merged = res.sinceSeq === null ? null : this.mergeAfter(room, res.messages, res.sinceSeq, this.cfg.recoveryMax);
      if (merged === null) return this.joined(s, room, this.latest(room, limit), false, ref);
      this.joined(s, room, merged, true, ref);
    }, (err: unknown) => {
      this.log.error({ err: String(err), room: room.id }, 'recovery read failed');
      this.joined(s, room, this.latest(room, limit), false, ref);
    });
  }

  /**
   * Stored messages after seq `fromSeq` joined to the window, as one gapless run ending at the
   * room's last seq; null if it would exceed `max` or has a hole (expired or not yet stored).
   */
  private mergeAfter(room: Room<Session>, stored: Message[], fromSeq: number, max: number): Delivered[] | null {
    const w = room.window;
    const firstWin = w.size > 0 ? w.firstSeq : room.lastSeq + 1;
    const out: Delivered[] = [];
    let expect = fromSeq + 1;
    for (const m of stored) {
      if (m.seq >= firstWin) break;
      if (m.seq !== expect) return null;
      out.push(toDelivered(m));
      expect++;
    }
    if (expect < firstWin) return null; // the store ended before the window starts: a hole
    for (let i = Math.max(0, expect - firstWin); i < w.size; i++) out.push(w.at(i));
    if (out.length > max) return null;
    return out;
  }

  private onLeave(s: Session, f: Frame<'leave'>): void {
    this.leave(s, f.room, f.ref);
  }

  leave(s: Session, roomId: string, ref: string | undefined): void {
    // After a join in flight has answered: `joined`, then `left`.
    const inFlight = s.joining.get(roomId);
    if (inFlight !== undefined) return this.queueBehindJoin(s, inFlight, () => this.leave(s, roomId, ref), ref);
    const room = this.rooms.ready(roomId);
    if (room !== undefined && s.rooms.has(roomId)) this.detach(s, room, false);
    this.reply(s, { op: 'left', room: roomId }, undefined, ref);
  }

  private takeTypingToken(s: Session): boolean {
    const now = Date.now();
    s.typingTokens = Math.min(TYPING_BURST, s.typingTokens + ((now - s.typingRefillAt) * TYPING_RATE) / 1000);
    s.typingRefillAt = now;
    if (s.typingTokens < 1) return false;
    s.typingTokens -= 1;
    return true;
  }

  private onTyping(s: Session, f: Frame<'typing'>): void {
    const room = this.rooms.ready(f.room);
    if (room === undefined || !s.rooms.has(f.room) || s.ws === null) {
      return this.error(s, 'forbidden', 'join the room before typing in it', f.ref);
    }
    if (!this.takeTypingToken(s)) return this.error(s, 'rate_limited', 'at most one typing event per second', f.ref);
    this.relayTyping(room, s.userId, s.userName, s);
    this.bus?.control({ t: 'typing', room: room.id, user: s.userId, name: s.userName });
  }

  /** Typing to the room's members except `from` (the typing connection; null when from another node). */
  private relayTyping(room: Room<Session>, userId: string, userName: string, from: Session | null): void {
    const frame = { op: 'typing', room: room.id, user: { id: userId, name: userName } };
    const json = JSON.stringify(frame);
    // ws.publish skips the sender itself: typing goes to the room's other members only.
    if (from !== null && from.ws !== null) from.ws.publish(room.jsonTopic, json, false);
    else this.app.publish(room.jsonTopic, json, false);
    if (this.app.numSubscribers(room.msgpackTopic) > 0) {
      const mp = encodeFrame(Codec.Msgpack, frame) as Uint8Array;
      if (from !== null && from.ws !== null) from.ws.publish(room.msgpackTopic, mp, true);
      else this.app.publish(room.msgpackTopic, mp, true);
    }
    for (const o of room.filtered) {
      if (o !== from && o.codec !== Codec.Stomp && !this.blocked(o.userId, userId)) this.send(o, o.codec === Codec.Json ? json : encodeFrame(Codec.Msgpack, frame));
    }
  }

  private onHistory(s: Session, f: Frame<'history'>): void {
    this.history(f.room, f, s).then((page) => {
      this.reply(s, { op: 'history', room: f.room, more: page.more }, page.messages, f.ref);
    }, (err: unknown) => {
      if (err instanceof ChatError) return this.error(s, err.code, err.message, f.ref);
      this.log.error({ err: String(err), room: f.room }, 'history read failed');
      this.error(s, 'overloaded', 'history is unavailable right now; retry', f.ref);
    });
  }

  /** Activate + authorize as a promise (HTTP and async paths). */
  private room(roomId: string, who: { userId: string; admin: boolean }): Promise<Room<Session>> {
    return new Promise((resolve, reject) => {
      this.withRoom(roomId, false, who, resolve, (code, msg) => reject(new ChatError(code, msg)));
    });
  }

  /**
   * A history page, oldest first. Served from the hot window when it covers the page, else from
   * the store through a reader, merged with the window by seq so the seam never duplicates or
   * drops a message.
   */
  async history(roomId: string, q: PageParams, who: { userId: string; admin: boolean }): Promise<Page> {
    const room = await this.room(roomId, who);
    let page = this.pageFromWindow(room, q);
    if (page === null) {
      const task: ReadTask = { kind: 'page', room: room.id, before: q.before, after: q.after, limit: q.limit, notBefore: this.notBefore() };
      const res = await this.read<PageResult>(task);
      page = this.mergePage(room, q, res.messages.map(toDelivered));
    }
    return { messages: this.visibleTo(who.userId, page.messages), more: page.more };
  }

  private pageFromWindow(room: Room<Session>, q: PageParams): Page | null {
    const w = room.window;
    const lo = w.firstVisible(this.notBefore());
    const hidden = lo > 0; // older entries expired: the window reaches past the visible start
    if (q.after !== undefined) {
      const i = Math.max(lo, w.search(q.after, false));
      if (i > lo || hidden || room.complete || (w.size > 0 && q.after >= w.at(0).id)) {
        return { messages: w.slice(i, i + q.limit), more: i + q.limit < w.size };
      }
      return null;
    }
    const end = q.before === undefined ? w.size : w.search(q.before, true);
    const n = end - lo;
    if (n > q.limit) return { messages: w.slice(end - q.limit, end), more: true };
    if (room.complete || hidden) return { messages: w.slice(lo, end), more: false };
    return null;
  }

  private mergePage(room: Room<Session>, q: PageParams, stored: Delivered[]): Page {
    const w = room.window;
    const firstWin = w.size > 0 ? w.firstSeq : room.lastSeq + 1;
    const all: Delivered[] = [];
    for (const d of stored) if (d.seq < firstWin && d.seq <= room.lastSeq) all.push(d);
    const lo = w.firstVisible(this.notBefore());
    if (q.after !== undefined) {
      for (let i = Math.max(lo, w.search(q.after, false)); i < w.size; i++) all.push(w.at(i));
      return { messages: all.slice(0, q.limit), more: all.length > q.limit };
    }
    const end = q.before === undefined ? w.size : w.search(q.before, true);
    for (let i = lo; i < end; i++) all.push(w.at(i));
    return { messages: all.slice(Math.max(0, all.length - q.limit)), more: all.length > q.limit };
  }

  private read<T>(task: ReadTask): Promise<T> {
    return this.readers.run(task) as Promise<T>;
  }

  /** `read`: move the caller's marker to `upTo` and answer with what is left unread. */
  private onRead(s: Session, f: Frame<'read'>): void {
    this.room(f.room, s).then(async (room) => {
      const seq = await this.seqAt(room, f.upTo);
      // The reply names the stored marker: it goes out once the marker is committed.
      await this.awaitReply((reqId) => this.actor.send({ t: 'mark', room: room.id, user: s.userId, seq, id: f.upTo, ifAbsent: false, reqId }));
      this.reply(s, { op: 'read', room: room.id, upTo: f.upTo, unread: Math.max(0, room.lastSeq - seq) }, undefined, f.ref);
    }).catch((err: unknown) => {
      if (err instanceof ChatError) return this.error(s, err.code, err.message, f.ref);
      this.log.error({ err: String(err), room: f.room }, 'read marker failed');
      this.error(s, 'overloaded', 'read markers are unavailable right now; retry', f.ref);
    });
  }

  /** The seq of the newest message at or before id `upTo` (a position in id order). */
  private async seqAt(room: Room<Session>, upTo: string): Promise<number> {
    const w = room.window;
    if (w.size > 0 && upTo >= w.at(0).id) {
      const i = w.search(upTo, false); // first entry with id > upTo
      return i === 0 ? w.firstSeq - 1 : w.at(i - 1).seq;
    }
    if (room.complete) return 0;
    return (await this.read<SeqResult>({ kind: 'seqAt', room: room.id, id: upTo })).seq;
  }

  // ---- host-app and HTTP operations ------------------------------------------------------------

  private request(body: AdminOp): Promise<ReplyEvt> {
    return this.awaitReply((reqId) => this.actor.send({ t: 'req', reqId, body }));
  }

  /** Send a command carrying a fresh reqId; resolves with the actor's reply to it. */
  private awaitReply(send: (reqId: number) => void): Promise<ReplyEvt> {
    const reqId = this.nextReq++;
    return new Promise((resolve) => {
      this.requests.set(reqId, resolve);
      send(reqId);
    });
  }

  private static replyError(r: ReplyEvt): ChatError {
    return new ChatError(r.error === 'conflict' ? 'invalid' : r.error!, r.message ?? undefined);
  }

  async createRoom(who: Identity, spec: { id: string | null; kind: RoomInfo['kind']; name: string | null; subject: string | null; members: string[] }): Promise<{ room: RoomInfo; created: boolean }> {
    if (this.stopping) throw new ChatError('overloaded', 'the engine is shutting down');
    let members = spec.members;
    if (!who.admin) {
      if (spec.kind === 'public' && this.cfg.auth !== 'none') throw new ChatError('forbidden', 'only the host app (admin) creates public rooms');
      if (spec.kind !== 'public' && !members.includes(who.id)) members = [...members, who.id];
    }
    if (spec.kind === 'direct' && new Set(members).size !== 2) throw new ChatError('invalid', 'a direct room has exactly two members');
    const r = await this.request({ op: 'createRoom', id: spec.id, kind: spec.kind, name: spec.name, subject: spec.subject, members });
    if (r.error !== null) throw Engine.replyError(r);
    return { room: r.room!, created: r.created };
  }

  async deleteRoom(roomId: string): Promise<void> {
    const r = await this.request({ op: 'deleteRoom', room: roomId });
    if (r.error !== null) throw Engine.replyError(r);
    this.closeRoom(roomId);
    this.bus?.control({ t: 'deleted', room: roomId });
  }

  /** A deleted room: every joined connection is detached and told, and the room forgotten. */
  private closeRoom(roomId: string): void {
    const any = this.rooms.get(roomId);
    if (any !== undefined) any.deleted = true;
    const room = this.rooms.ready(roomId);
    if (room !== undefined) {
      // Its presence goes with it (no QUIT: the room is gone).
      if (this.bus !== null) for (const user of room.presence.keys()) void this.bus.presenceLeave(roomId, user);
      room.presence.clear();
      for (const s of [...room.sessions]) {
        if (!room.filtered.delete(s)) this.unsubscribe(s, room);
        s.rooms.delete(roomId);
        this.reply(s, { op: 'left', room: roomId, reason: 'deleted' });
      }
      room.sessions.clear();
      if (room.gapTimer !== null) clearTimeout(room.gapTimer);
    }
    // Joins waiting for the room to load are answered not_found; an ENTER held for its seq order
    // (cluster) is released, so its join answers not_found too.
    this.rooms.forget(roomId);
    if (any !== undefined) {
      const held = [...any.held.values()];
      any.held.clear();
      for (const h of held) h.cb?.();
    }
    this.bus?.unsubscribe(roomId);
  }

  async setMembers(roomId: string, users: string[], present: boolean): Promise<RoomInfo> {
    const r = await this.request({ op: present ? 'addMembers' : 'removeMembers', room: roomId, users });
    if (r.error !== null) throw Engine.replyError(r);
    this.applyMembers(roomId, r.room!);
    this.bus?.control({ t: 'members', room: roomId, info: r.room! });
    return r.room!;
  }

  /** A room's member list changed: update it and detach the connections no longer allowed in. */
  private applyMembers(roomId: string, info: RoomInfo): void {
    const room = this.rooms.ready(roomId);
    if (room === undefined) return;
    room.setInfo(info);
    for (const s of [...room.sessions]) {
      if (!this.mayAccess(room, s.userId, s.admin)) {
        this.detach(s, room, false);
        this.reply(s, { op: 'left', room: roomId, reason: 'removed' });
      }
    }
  }

  /** A SYSTEM message from the host app; resolves with its ack once durable. */
  postSystem(roomId: string, text: string): Promise<SendResult> {
    return this.room(roomId, { userId: 'system', admin: true }).then((room) => new Promise<SendResult>((resolve, reject) => {
      const bytes = text.length * 3 + 64;
      const refusal = this.admit(bytes);
      if (refusal !== null) return reject(new ChatError('overloaded', refusal));
      this.forward({
        s: null, cid: null, ref: undefined, bytes, delivered: null, t0: 0,
        settled: (r) => (r.error !== null ? reject(new ChatError(r.error, 'no such room')) : resolve(r)),
      }, room.id, 'SYSTEM', 'system', 'system', text);
    }));
  }

  async setBlock(blocker: string, blocked: string, on: boolean): Promise<void> {
    const r = await this.request({ op: 'block', blocker, blocked, on });
    if (r.error !== null) throw Engine.replyError(r);
    this.applyBlock(blocker, blocked, on);
    this.bus?.control({ t: 'block', blocker, blocked, on });
  }

  /** Block or unblock, and move the blocker's connections between the topic and the filtered list. */
  private applyBlock(blocker: string, blocked: string, on: boolean): void {
    const set = this.blockSet(blocker);
    if (on) set.add(blocked);
    else set.delete(blocked);
    if (set.size === 0) this.blocks.delete(blocker);
    // Move the blocker's connections between the native topic and the filtered list.
    for (const s of this.userSessions.get(blocker) ?? []) {
      for (const roomId of s.rooms) {
        const room = this.rooms.ready(roomId);
        if (room === undefined || s.ws === null) continue;
        if (this.hidesAnyone(blocker) && !room.filtered.has(s)) {
          this.unsubscribe(s, room);
          room.filtered.add(s);
        } else if (!this.hidesAnyone(blocker) && room.filtered.delete(s)) {
          this.subscribe(s, room);
        }
      }
    }
  }

  blockList(user: string): string[] {
    return [...(this.blocks.get(user) ?? [])].sort();
  }

  async roomsBySubject(who: Identity, subject: string): Promise<RoomInfo[]> {
    const res = await this.read<RoomsResult>({ kind: 'subject', subject });
    return res.rooms.filter((r) => r.members === null || who.admin || r.members.includes(who.id));
  }

  async myRooms(who: Identity): Promise<MyRoomView[]> {
    const res = await this.read<MyRoomsResult>({ kind: 'myRooms', user: who.id, notBefore: this.notBefore() });
    return res.rooms.map((r) => {
      const live = this.rooms.ready(r.info.id);
      const lastSeq = live !== undefined ? live.lastSeq : r.lastSeq;
      const lastD = live !== undefined && live.window.size > 0 ? live.window.at(live.window.size - 1) : null;
      const last = lastD !== null ? (JSON.parse(lastD.json) as Message) : r.last;
      return { id: r.info.id, kind: r.info.kind, name: r.info.name, subject: r.info.subject, members: r.info.members, unread: Math.max(0, lastSeq - r.readSeq), last };
    });
  }

  // ---- actor events ----------------------------------------------------------------------------

  private onActorEvents(evts: FromActor[]): void {
    for (const e of evts) {
      switch (e.t) {
        case 'accepted':
          for (const d of e.msgs) {
            this.deliver(d);
            const p = this.pending.get(d.token);
            if (p !== undefined) {
              this.stats.observeDeliver(performance.now() - p.t0);
              p.delivered?.(d);
            }
          }
          break;
        case 'committed': this.onCommitted(e); break;
        case 'room': {
          this.rooms.loaded(e.room, e.state);
          // No such room: nothing to listen to on the bus either.
          if (this.bus !== null && this.rooms.get(e.room) === undefined) this.bus.unsubscribe(e.room);
          // Cluster: bus messages that came while the room loaded, after its snapshot, go out now.
          const room = this.bus === null ? undefined : this.rooms.ready(e.room);
          if (room !== undefined && room.held.size > 0) this.drainHeld(room);
          break;
        }
        case 'reply': {
          const cb = this.requests.get(e.reqId);
          this.requests.delete(e.reqId);
          cb?.(e);
          break;
        }
        case 'health':
          this.storeOk = e.ok;
          this.storeReason = e.reason;
          if (e.ok) this.log.info({}, 'store recovered');
          else this.log.error({ reason: e.reason }, 'store degraded: commits are failing; buffering');
          break;
        case 'stats': this.stats.actorLagMs = e.loopLagMs; break;
        case 'held': this.hooks?.onCommitHeld(e.waiting); break;
        case 'ready': break;
      }
    }
  }

  /** Where a message is published: append to the room's window, then one native publish per codec. */
  private deliver(d: Delivered): void {
    const room = this.rooms.ready(d.room);
    if (room === undefined) return; // no local member: the room will load it from the store
    this.publishMessage(room, d);
  }

  private publishMessage(room: Room<Session>, d: Delivered): void {
    if (!room.append(d)) {
      this.log.error({ room: d.room, seq: d.seq, last: room.lastSeq }, 'out-of-order delivery');
      return;
    }
    this.stats.delivered++;
    const frame = msgFrameJson(d.json);
    this.app.publish(room.jsonTopic, frame, false);
    // Encode for MessagePack subscribers only if there are any (free when none are connected).
    let mp: Uint8Array | null = null;
    if (this.app.numSubscribers(room.msgpackTopic) > 0) this.app.publish(room.msgpackTopic, (mp = msgFrameMsgpack(d.json)), true);
    // STOMP: MESSAGE frames name the subscription, so one topic per (subscription id, style).
    if (room.stompTopics.size > 0) for (const [topic, t] of room.stompTopics) this.app.publish(topic, stompMessage(t.sub, d), false);
    // Connections whose user blocks someone are not on the topic; each gets the message unless
    // it comes from someone they block. Rare, so this loop is short.
    if (room.filtered.size > 0) {
      for (const s of room.filtered) {
        if (this.blocked(s.userId, d.from)) continue;
        if (s.codec === Codec.Stomp) {
          const sub = s.stomp!.byRoom.get(room.id);
          if (sub !== undefined) this.send(s, stompMessage(sub, d));
        } else this.send(s, s.codec === Codec.Json ? frame : (mp ??= msgFrameMsgpack(d.json)));
      }
    }
  }

  /** Where the ack is sent: only once the message's transaction has committed. */
  private onCommitted(e: CommittedEvt): void {
    if (e.batch > 0) this.stats.observeCommit(e.batch, e.commitMs);
    if (this.overloaded && this.pending.size - e.results.length < this.cfg.bufferMaxMessages / 2) {
      this.overloaded = false;
      this.log.info({ buffered: this.pending.size - e.results.length }, 'write buffer drained: accepting sends again');
    }
    const now = performance.now();
    const byRoom = this.bus === null ? null : new Map<string, Delivered[]>();
    for (const r of e.results) {
      const p = this.pending.get(r.token);
      if (p === undefined) continue;
      this.pending.delete(r.token);
      this.inflightBytes -= p.bytes;
      if (r.error === null && r.json !== null) {
        const d: Delivered = { room: r.room, seq: r.seq, id: r.id, at: r.at, from: r.from, json: r.json };
        if (byRoom !== null) {
          // Cluster: to the other nodes, and here in seq order with theirs.
          let list = byRoom.get(r.room);
          if (list === undefined) byRoom.set(r.room, (list = []));
          list.push(d);
          const room = this.rooms.get(r.room);
          const cb = p.delivered;
          if (room !== undefined) {
            room.lastUsed = Date.now();
            this.offer(room, d, cb === null ? null : () => cb(d));
          } else cb?.(d);
        } else {
          this.deliver(d);
          p.delivered?.(d);
        }
        this.stats.observeDeliver(now - p.t0);
      }
      if (r.error === null && !r.dup) this.stats.observeCommitted(now - p.t0);
      // After the message's publish: see ack().
      if (p.s !== null && p.settled === null && r.error === null) this.ack(p.s, p, r);
      if (p.settled !== null) p.settled(r);
      else if (p.s !== null && r.error !== null) this.error(p.s, r.error, undefined, p.ref, p.cid ?? undefined);
    }
    if (byRoom !== null && byRoom.size > 0) this.bus!.publish(byRoom);
  }

  /**
   * Ack a committed send through the connection's own topic (`r/<conn>`): uWS drains every socket
   * once at the end of the turn, so the sender gets its copy of the message, published just before,
   * and then the ack in one write, as members get theirs (a plain ws.send of the ack was a second
   * write per message: ~8% more sendto calls in `chat`). STOMP: the RECEIPT for a SEND goes out
   * only now, after the durable commit.
   */
  private ack(s: Session, p: PendingSend, r: SendResult): void {
    if (r.dup) this.stats.duplicates++;
    this.stats.acked++;
    if (s.closed || s.ws === null) return;
    const out = s.codec !== Codec.Stomp ? encodeAck(s.codec, p.cid!, r.room, r.id, r.seq, r.at, p.ref)
      : p.ref !== undefined ? encodeStomp('RECEIPT', [['receipt-id', p.ref]]) : null;
    if (out !== null) this.app.publish(s.replyTopic, out, typeof out !== 'string');
  }

  // ---- cluster ---------------------------------------------------------------------------------

  private startCluster(bus: Bus): void {
    const handler: BusHandler = {
      onMessages: (roomId, msgs) => {
        const room = this.rooms.get(roomId); // ready, or loading (held until its snapshot is in)
        if (room === undefined) return;
        for (const d of msgs) this.offer(room, d, null);
      },
      onControl: (evt) => this.onControl(evt),
      onReconnect: () => {
        // Subscriptions are being restored; whatever was committed meanwhile is in the store.
        setTimeout(() => void this.sweepGaps(), 200).unref();
        setTimeout(() => void this.sweepGaps(), 2000).unref();
      },
      onReaped: (quits) => {
        for (const q of quits) {
          // Never a QUIT for someone online here (a leave and a rejoin raced a presence resync).
          const room = this.rooms.get(q.room);
          if (room !== undefined && (room.presence.has(q.user) || room.entering.has(q.user))) continue;
          if (q.announce) this.postQuit(q.room, q.user, q.name);
        }
      },
    };
    bus.listen(handler);
    // A gap at the end of a room (its last messages' publish lost, nothing after them yet) shows
    // only when asked: every 10 s each served room's last seq is compared with the store's.
    // While the bus is down, every second: a node that only receives would otherwise see nothing
    // of what the other nodes commit until Redis is back.
    let tick = 0;
    this.clusterTimers.push(setInterval(() => {
      this.dropIdleRooms();
      if (!bus.up || ++tick % 10 === 0) void this.sweepGaps();
    }, 1000));
    for (const t of this.clusterTimers) t.unref();
  }

  private onControl(evt: ControlEvt): void {
    switch (evt.t) {
      case 'deleted': return this.closeRoom(evt.room);
      case 'members': return this.applyMembers(evt.room, evt.info);
      case 'block': return this.applyBlock(evt.blocker, evt.blocked, evt.on);
      case 'typing': {
        const room = this.rooms.ready(evt.room);
        if (room !== undefined) this.relayTyping(room, evt.user, evt.name, null);
      }
    }
  }

  /**
   * Cluster: put a committed message (from this node or another) in its place in the room's seq
   * order. The next seq goes out at once; a later one waits in `held` for the gap to close, for
   * CHAT_GAP_WAIT at most, then the gap is read from the store (where it is: seq is assigned in
   * the commit, so every seq below a committed one is committed too).
   */
  private offer(room: Room<Session>, d: Delivered, cb: (() => void) | null): void {
    if (d.seq <= room.lastSeq) {
      cb?.(); // already out (a gap fill read it from the store first)
      return;
    }
    if (!room.ready || d.seq !== room.lastSeq + 1) {
      const had = room.held.get(d.seq);
      if (had === undefined) room.held.set(d.seq, { d, cb });
      else if (cb !== null) had.cb = cb;
      if (room.ready) this.armGap(room);
      return;
    }
    this.publishMessage(room, d);
    cb?.();
    if (room.held.size > 0) this.drainHeld(room);
  }

  private drainHeld(room: Room<Session>): void {
    for (let h = room.held.get(room.lastSeq + 1); h !== undefined; h = room.held.get(room.lastSeq + 1)) {
      room.held.delete(h.d.seq);
      this.publishMessage(room, h.d);
      h.cb?.();
    }
    for (const [seq, h] of room.held) {
      if (seq > room.lastSeq) continue;
      room.held.delete(seq); // the snapshot or a fill already had it
      h.cb?.();
    }
    if (room.held.size === 0) {
      if (room.gapTimer !== null) clearTimeout(room.gapTimer);
      room.gapTimer = null;
    } else this.armGap(room);
  }

  private armGap(room: Room<Session>): void {
    if (room.filling) return;
    if (room.held.size > MAX_HELD && room.gapTimer !== null) {
      clearTimeout(room.gapTimer);
      room.gapTimer = null;
    }
    if (room.gapTimer !== null) return;
    room.gapTimer = setTimeout(() => {
      room.gapTimer = null;
      void this.fillGap(room, null);
    }, room.held.size > MAX_HELD ? 0 : this.cfg.gapWaitMs);
  }

  /** Read seqs lastSeq+1 .. `upTo` (default: just below the first held one) from the store. */
  private async fillGap(room: Room<Session>, upTo: number | null): Promise<void> {
    if (room.filling || this.rooms.get(room.id) !== room || !room.ready) return;
    let lowestHeld = Infinity;
    for (const seq of room.held.keys()) if (seq < lowestHeld) lowestHeld = seq;
    const from = room.lastSeq + 1;
    const to = upTo ?? lowestHeld - 1;
    if (!Number.isFinite(to) || to < from) return this.drainHeld(room);
    this.stats.gapFills++;
    if (to - from + 1 > this.cfg.recoveryMax) return this.resync(room, to);
    room.filling = true;
    let got: Message[];
    try {
      got = (await this.read<RangeResult>({ kind: 'range', room: room.id, from, to })).messages;
    } catch (err) {
      room.filling = false;
      this.log.warn({ err: String(err), room: room.id }, 'gap fill failed; retrying');
      if (room.held.size > 0) this.armGap(room);
      return;
    }
    room.filling = false;
    if (this.rooms.get(room.id) !== room) return;
    for (const m of got) this.offer(room, toDelivered(m), null);
    if (room.lastSeq < to) return this.resync(room, to);
    this.drainHeld(room);
  }

  /**
   * A gap the store cannot fill (deleted or expired meanwhile): the room jumps to `to`, and its
   * members here are told to reload with an unsolicited `joined` with `recovered: false`.
   */
  private resync(room: Room<Session>, to: number): void {
    this.log.warn({ room: room.id, from: room.lastSeq + 1, to }, 'gap cannot be filled from the store: members must reload');
    room.window.clear();
    room.complete = false;
    room.lastSeq = to;
    for (const s of room.sessions) {
      this.reply(s, { op: 'joined', room: room.id, epoch: room.epoch, seq: room.lastSeq, recovered: false }, []);
    }
    this.drainHeld(room);
  }

  /** Compare every served room's last seq with the store's, and fill what is missing. */
  private sweeping = false;

  private async sweepGaps(): Promise<void> {
    if (this.bus === null || this.stopping || this.sweeping) return;
    this.sweeping = true;
    try {
      await this.sweepOnce();
    } finally {
      this.sweeping = false;
    }
  }

  private async sweepOnce(): Promise<void> {
    const ids: string[] = [];
    for (const r of this.rooms.values()) if (r.ready) ids.push(r.id);
    for (let i = 0; i < ids.length; i += 1000) {
      let res: LastSeqsResult;
      try {
        res = await this.read<LastSeqsResult>({ kind: 'lastSeqs', rooms: ids.slice(i, i + 1000) });
      } catch {
        return;
      }
      for (const [id, seq] of res.seqs) {
        const room = this.rooms.ready(id);
        if (room !== undefined && seq > room.lastSeq && !room.filling) void this.fillGap(room, seq);
      }
    }
  }

  /** Rooms no local connection is in stop being served here after CLUSTER_IDLE_MS. */
  private dropIdleRooms(): void {
    const now = Date.now();
    for (const r of [...this.rooms.values()]) {
      if (!r.ready || r.sessions.size > 0 || r.held.size > 0 || r.filling || r.entering.size > 0 || r.joinsInFlight > 0) continue;
      if (now - r.lastUsed < CLUSTER_IDLE_MS) continue;
      this.rooms.forget(r.id);
      this.bus!.unsubscribe(r.id);
    }
  }

  /** Who is online in a room: user ids, sorted (cluster-wide in a cluster). */
  async online(roomId: string, who: { userId: string; admin: boolean }): Promise<string[]> {
    const room = await this.room(roomId, who);
    if (this.bus === null) return [...room.presence.keys()].sort();
    try {
      return await this.bus.online(room.id);
    } catch {
      throw new ChatError('overloaded', 'presence is unavailable while the bus is down; retry');
    }
  }

  // ---- shutdown --------------------------------------------------------------------------------

  /** Stop taking sends, let the actor commit and ack what it holds, then return. */
  async drain(): Promise<void> {
    this.stopping = true;
    // The actor's final commit results (and so their acks) arrive before it exits; if it had to be
    // terminated because the store is down, what it held was never acked.
    await this.actor.shutdown();
    for (const t of this.clusterTimers) clearInterval(t);
  }
}
