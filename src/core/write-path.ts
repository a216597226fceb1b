// A message from admission to its ack: the write buffer's caps, the hand-over to the persistence
// actor, and, once the actor reports the commit, delivery in seq order and the ack. This is where
// the ack is sent: only once the message's transaction has committed.

import { newMessageJson, type AcceptedEvt, type Assigned, type CommittedEvt, type Delivered, type Message, type SendResult } from '../../workers/contract.ts';
import type { ActorLink } from '../actor-link.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Stats } from '../metrics/stats.ts';
import { ChatError, MSG } from '../protocol/errors.ts';
import { jsonStringBytes } from '../protocol/size.ts';
import type { AckFields } from '../protocol/wire.ts';
import type { Access } from './access.ts';
import type { Fanout } from './fanout.ts';
import { InFlight } from './in-flight.ts';
import type { Replies } from './replies.ts';
import type { RoomGate } from './room-gate.ts';
import type { Room, RoomRegistry } from './rooms.ts';
import type { Session } from './session.ts';
import type { Topology } from './topology.ts';

export interface PendingSend {
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
  /** A DELETE or EDIT: the message it retracts (its ack names it). */
  target: string | null;
  /** What was forwarded (set by forward): the message's JSON is built from these once it has its id and seq. */
  room: string;
  type: Message['type'];
  fromId: string;
  fromName: string;
  text: string;
}

/** A send about to be forwarded (forward() fills in what it forwards); one object shape for every kind. */
function pending(s: Session | null, cid: string | null, ref: string | undefined, bytes: number, target: string | null, origin: Origin): PendingSend {
  return { s, cid, ref, bytes, delivered: origin.delivered, settled: origin.settled, t0: 0, target, room: '', type: 'CHAT', fromId: '', fromName: '', text: '' };
}

const NO_ORIGIN: Origin = { delivered: null, settled: null };

/** Takes `bytes` from the sender's byte budgets; false when over one (the refusal is already sent). */
export type ByteBudget = (s: Session, bytes: number, ref: string | undefined, cid: string | undefined) => boolean;

/** A send that is not a client's CHAT: the engine's own ENTER, QUIT and SYSTEM messages. */
export type Origin = Pick<PendingSend, 'delivered' | 'settled'>;

export class WritePath {
  private readonly pending = new InFlight<PendingSend>();
  private nextToken = 1;
  private bufferedBytes = 0;
  /** The write buffer hit a cap (logged once until it drains below half). */
  private overloaded = false;
  private stopping = false;
  /** Set once the topology exists (it needs the write path for its QUITs). */
  private topology: Topology | null = null;
  /** Takes a message's bytes from its sender's byte budgets; false: refused (and answered). */
  private charge: ByteBudget = () => true;
  /** Rooms whose sends wait for a presence lookup (cluster webhooks): later sends queue behind, in order. */
  private readonly lookups = new Map<string, Promise<void>>();

  constructor(
    private readonly cfg: Config,
    private readonly actor: ActorLink,
    private readonly rooms: RoomRegistry<Session>,
    private readonly gate: RoomGate,
    private readonly access: Access,
    private readonly fanout: Fanout,
    private readonly replies: Replies,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {}

  useTopology(t: Topology): void {
    this.topology = t;
  }

  useByteBudget(charge: ByteBudget): void {
    this.charge = charge;
  }

  /** Sends accepted and not yet committed. */
  get inflight(): number {
    return this.pending.size;
  }

  /** Their bytes (an upper bound). */
  get inflightBytes(): number {
    return this.bufferedBytes;
  }

  /** Whether new work is accepted (false once shutdown began). */
  get accepting(): boolean {
    return !this.stopping;
  }

  /** Refuse new sends from now on (shutdown). */
  stop(): void {
    this.stopping = true;
  }

  /**
   * What a message costs the write buffer and is stored as: its text JSON-encoded, in UTF-8
   * bytes, plus its other fields; an error message if the text is over CHAT_MAX_TEXT_BYTES.
   */
  private measure(text: string, cid: string | null, name: string): number | string {
    const textBytes = jsonStringBytes(text);
    if (textBytes > this.cfg.maxTextBytes) return `the text is ${textBytes} bytes JSON-encoded; at most ${this.cfg.maxTextBytes} (CHAT_MAX_TEXT_BYTES)`;
    return textBytes + (cid === null ? 0 : jsonStringBytes(cid)) + jsonStringBytes(name) + 160;
  }

  /** A CHAT message from a connection (native `send`, or STOMP SEND with an optional cid). */
  post(s: Session, roomId: string, text: string, cid: string | null, ref: string | undefined): void {
    const echo = cid ?? undefined;
    const bytes = this.measure(text, cid, s.userName);
    if (typeof bytes === 'string') return this.replies.error(s, 'too_large', bytes, ref, echo);
    if (!this.charge(s, bytes, ref, echo)) return;
    // A room loaded here (the common case) is checked and posted to at once, with no callbacks.
    const ready = this.rooms.ready(roomId);
    if (ready === undefined) {
      return this.gate.enter(roomId, this.gate.canCreate, s, (room) => this.postIn(room, s, text, cid, ref, bytes), (code, msg) => this.replies.error(s, code, msg, ref, echo));
    }
    const no = this.gate.refusal(ready, s);
    if (no !== null) return this.replies.error(s, 'forbidden', no, ref, echo);
    this.postIn(ready, s, text, cid, ref, bytes);
  }

  /** A CHAT into a room the sender may use. */
  private postIn(room: Room<Session>, s: Session, text: string, cid: string | null, ref: string | undefined, bytes: number): void {
    if (room.kind === 'direct') {
      for (const other of room.members!) {
        if (other !== s.userId && this.access.blocked(other, s.userId)) return this.replies.error(s, 'forbidden', 'you cannot post in this room', ref, cid ?? undefined);
      }
    }
    if (s.closed) return; // never acked, never stored: the client retries with the same cid
    const refusal = this.admit(bytes);
    if (refusal !== null) return this.replies.error(s, 'overloaded', refusal, ref, cid ?? undefined);
    const p = pending(s, cid, ref, bytes, null, NO_ORIGIN);
    const r = this.recipients(room, s.userId);
    if (this.inOrder(room.id, r)) this.forward(p, room.id, 'CHAT', s.userId, s.userName, text, r);
    else this.afterLookup(room.id, r, (x) => this.forward(p, room.id, 'CHAT', s.userId, s.userName, text, x));
  }

  /**
   * A DELETE or EDIT of message `target` from a connection: posted as an event of the room, acked
   * once durable. Whether it is allowed (sender, admin, a message that exists) the actor decides
   * against the store (workers/persistence/retraction.ts): refusals come back as forbidden or
   * not_found. A room never comes into being for one.
   */
  retract(s: Session, roomId: string, type: 'DELETE' | 'EDIT', target: string, text: string, cid: string | null, ref: string | undefined): void {
    const echo = cid ?? undefined;
    const bytes = this.measure(text, cid, s.userName);
    if (typeof bytes === 'string') return this.replies.error(s, 'too_large', bytes, ref, echo);
    if (!this.charge(s, bytes, ref, echo)) return;
    this.gate.enter(roomId, false, s, (room) => {
      if (s.closed) return;
      const refusal = this.admit(bytes);
      if (refusal !== null) return this.replies.error(s, 'overloaded', refusal, ref, echo);
      const p = pending(s, cid, ref, bytes, target, NO_ORIGIN);
      const r = this.retractionEvent(room);
      if (this.inOrder(room.id, r)) this.forward(p, room.id, type, s.userId, s.userName, text, r, s.admin);
      else this.afterLookup(room.id, r, (x) => this.forward(p, room.id, type, s.userId, s.userName, text, x, s.admin));
    }, (code, msg) => this.replies.error(s, code, msg, ref, echo));
  }

  /** A DELETE over HTTP (the sender, or an admin); resolves with its ack once durable. */
  async deleteHttp(roomId: string, target: string, who: { userId: string; userName: string; admin: boolean }): Promise<SendResult> {
    const room = await this.gate.open(roomId, who);
    const bytes = this.measure('', null, who.userName) as number;
    return new Promise<SendResult>((resolve, reject) => {
      const refusal = this.admit(bytes);
      if (refusal !== null) return reject(new ChatError('overloaded', refusal));
      const p = pending(null, null, undefined, bytes, target, {
        delivered: null,
        settled: (r) => (r.error !== null ? reject(new ChatError(r.error, r.message ?? MSG.noSuchRoom)) : resolve(r)),
      });
      const r = this.retractionEvent(room);
      if (this.inOrder(room.id, r)) this.forward(p, room.id, 'DELETE', who.userId, who.userName, '', r, who.admin);
      else this.afterLookup(room.id, r, (x) => this.forward(p, room.id, 'DELETE', who.userId, who.userName, '', x, who.admin));
    });
  }

  /** A SYSTEM message from the host app; resolves with its ack once durable. */
  async postSystem(roomId: string, text: string): Promise<SendResult> {
    const bytes = this.measure(text, null, 'system');
    if (typeof bytes === 'string') throw new ChatError('too_large', bytes);
    const room = await this.gate.open(roomId, { userId: 'system', admin: true });
    return new Promise<SendResult>((resolve, reject) => {
      const refusal = this.admit(bytes);
      if (refusal !== null) return reject(new ChatError('overloaded', refusal));
      const p = pending(null, null, undefined, bytes, null, {
        delivered: null,
        settled: (r) => (r.error !== null ? reject(new ChatError(r.error, MSG.noSuchRoom)) : resolve(r)),
      });
      const r = this.recipients(room, null);
      if (this.inOrder(room.id, r)) this.forward(p, room.id, 'SYSTEM', 'system', 'system', text, r);
      else this.afterLookup(room.id, r, (x) => this.forward(p, room.id, 'SYSTEM', 'system', 'system', text, x));
    });
  }

  /** The engine's own ENTER or QUIT (or another message of no connection); false if the buffer is full. */
  postEvent(roomId: string, type: Message['type'], userId: string, userName: string, text: string, origin: Origin): boolean {
    const bytes = jsonStringBytes(text) + jsonStringBytes(userName) + 160;
    if (this.admit(bytes) !== null) return false;
    const p = pending(null, null, undefined, bytes, null, origin);
    // Behind any send of the room still waiting for its recipients (a QUIT after its user's last CHAT).
    if (this.inOrder(roomId, null)) this.forward(p, roomId, type, userId, userName, text, null);
    else this.afterLookup(roomId, null, (x) => this.forward(p, roomId, type, userId, userName, text, x));
    return true;
  }

  postQuit(roomId: string, userId: string, userName: string): void {
    this.postEvent(roomId, 'QUIT', userId, userName, `${userName} left`, { delivered: null, settled: null });
  }

  /** Whether the write buffer takes `bytes` more; the reason if not. */
  admit(bytes: number): string | null {
    if (this.stopping) return 'the engine is shutting down; retry later';
    if (this.pending.size >= this.cfg.bufferMaxMessages || this.bufferedBytes + bytes > this.cfg.bufferMaxBytes) {
      if (!this.overloaded) {
        // One line when the buffer fills and one when it drains, not one per refused send.
        this.overloaded = true;
        this.log.warn({ buffered: this.pending.size, bytes: this.bufferedBytes }, 'write buffer full: refusing sends with overloaded');
      }
      return 'the store is behind; retry later, nothing was stored';
    }
    return null;
  }

  /**
   * Webhooks (docs/webhooks.md): who gets a message.created event's push, decided at acceptance:
   * the room's members with no connection joined to it, less the sender and those who block the
   * sender; public rooms only with CHAT_WEBHOOK_PUBLIC (no members: nobody to name). null: no
   * event. On a cluster presence is in Redis: the send waits for that lookup, and the room's
   * later sends wait behind it, so the actor still gets them in order.
   */
  private recipients(room: Room<Session>, from: string | null): string[] | null | Promise<string[]> {
    if (this.cfg.webhookUrl === null) return null;
    if (room.members === null) return this.cfg.webhookPublic ? [] : null;
    const candidates = [...room.members].filter((u) => u !== from && (from === null || !this.access.blocked(u, from)));
    return candidates.length === 0 ? candidates : this.topology!.absent(room, candidates);
  }

  /**
   * Webhooks: a DELETE or EDIT gets a message.deleted / message.edited event wherever its message
   * got a message.created one (no push targets: nobody is notified of a retraction); null: none.
   */
  private retractionEvent(room: Room<Session>): string[] | null {
    if (this.cfg.webhookUrl === null) return null;
    return room.members === null && !this.cfg.webhookPublic ? null : [];
  }

  /** The send may go now: its recipients are known and no earlier send of the room waits. */
  private inOrder(room: string, r: string[] | null | Promise<string[]>): r is string[] | null {
    return !(r instanceof Promise) && !this.lookups.has(room);
  }

  /** Forward once the lookup and every earlier waiting send of the room are through. */
  private afterLookup(room: string, r: string[] | null | Promise<string[]>, go: (recipients: string[] | null) => void): void {
    const p = Promise.all([this.lookups.get(room), r]).then(([, recipients]) => go(recipients));
    this.lookups.set(room, p);
    void p.finally(() => { if (this.lookups.get(room) === p) this.lookups.delete(room); });
  }

  /** Hand a message to the actor; the PendingSend decides what happens when it settles. */
  private forward(p: PendingSend, room: string, type: Message['type'], fromId: string, fromName: string, text: string, recipients: string[] | null, admin = false): void {
    const token = this.nextToken++;
    p.t0 = performance.now();
    p.room = room;
    p.type = type;
    p.fromId = fromId;
    p.fromName = fromName;
    p.text = text;
    this.pending.set(token, p);
    this.bufferedBytes += p.bytes;
    this.topology!.touch(room);
    this.stats.accepted++;
    // A retraction never creates its room.
    this.actor.send({ t: 'send', token, room, type, fromId, fromName, text, cid: p.cid, at: Date.now(), create: p.target === null && this.gate.canCreate, target: p.target, admin, recipients });
  }

  /** CHAT_DELIVERY=immediate: messages with id and seq, not yet durable, are published now. */
  onAccepted(e: AcceptedEvt): void {
    for (const a of e.msgs) {
      const p = this.pending.get(a.token);
      if (p === undefined) continue;
      const d = delivered(p, a);
      const room = this.rooms.ready(d.room);
      if (room !== undefined) this.fanout.publish(room, d);
      this.stats.observeDeliver(performance.now() - p.t0);
      p.delivered?.(d);
    }
  }

  /** A group commit's results: deliver (after-commit mode), then ack each send. */
  onCommitted(e: CommittedEvt): void {
    if (e.batch > 0) this.stats.observeCommit(e.batch, e.commitMs);
    if (this.overloaded && this.pending.size - e.results.length < this.cfg.bufferMaxMessages / 2) {
      this.overloaded = false;
      this.log.info({ buffered: this.pending.size - e.results.length }, 'write buffer drained: accepting sends again');
    }
    const now = performance.now();
    const topology = this.topology!;
    for (const r of e.results) {
      const p = this.pending.get(r.token);
      if (p === undefined) continue;
      this.pending.delete(r.token);
      this.bufferedBytes -= p.bytes;
      if (r.error === null && r.deliver) {
        const d = delivered(p, r);
        const cb = p.delivered;
        topology.committed(d, cb === null ? null : () => cb(d));
        this.stats.observeDeliver(now - p.t0);
      }
      if (r.error === null && !r.dup) this.stats.observeCommitted(now - p.t0);
      // After the message's publish: see ack().
      if (p.s !== null && p.settled === null && r.error === null) this.ack(p.s, p, r);
      if (p.settled !== null) p.settled(r);
      else if (p.s !== null && r.error !== null) this.replies.error(p.s, r.error, r.message, p.ref, p.cid ?? undefined);
    }
    topology.endOfCommit();
  }

  /**
   * Where the ack is sent: through the connection's own topic, right after the message's publish,
   * so the sender gets its copy and then the ack in one write (fanout.toConnection).
   */
  private ack(s: Session, p: PendingSend, r: SendResult): void {
    if (r.dup) this.stats.duplicates++;
    this.stats.acked++;
    if (s.closed || s.ws === null) return;
    const a: AckFields = { room: r.room, id: r.id, seq: r.seq, at: r.at };
    if (p.cid !== null) a.cid = p.cid;
    if (p.target !== null) a.target = p.target;
    const out = s.wire.ack(a, p.ref);
    if (out !== null) this.fanout.toConnection(s, out);
  }
}

/** A forwarded send as published, with the id, seq and time the actor gave it. */
function delivered(p: PendingSend, a: Assigned | SendResult): Delivered {
  return { room: p.room, seq: a.seq, id: a.id, at: a.at, from: p.fromId, json: newMessageJson(a.id, p.room, a.seq, p.type, p.fromId, p.fromName, p.text, a.at, p.cid, p.target) };
}
