// The front thread's hub. Client frames arrive here already validated (codec.ts); sends are
// forwarded to the persistence actor; what the actor reports back is published here (deliver)
// and acked here (onCommitted). Joins and history are served from the hot window, falling back
// to the reader pool for older pages.

import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import type { Piscina } from 'piscina';
import type {
  CommittedEvt, Delivered, FromActor, Message, PageResult, ReadTask, SinceResult,
} from '../workers/contract.ts';
import type { ActorLink } from './actor-link.ts';
import {
  Codec, encodeAck, encodeError, encodeFrame, msgFrameJson, msgFrameMsgpack, toDelivered,
  type ClientFrame, type Out, type PageParams,
} from './codec.ts';
import type { Config } from './config.ts';
import { ChatError, type ErrorCode } from './errors.ts';
import { Room, RoomRegistry } from './rooms.ts';
import type { Logger } from './log.ts';

/** Per-socket state, created complete at upgrade (fixed shape; nothing is added later). */
export interface Session {
  connId: number;
  userId: string;
  userName: string;
  codec: Codec;
  rooms: Set<string>;
  ws: WebSocket<Session> | null;
  closed: boolean;
  /** JWT expiry timer (auth jwt), cleared on close. */
  expiry: NodeJS.Timeout | null;
  /** When the identity's token expires (ms since the epoch); 0 = never. */
  expiresAt: number;
}

interface PendingSend {
  s: Session;
  cid: string;
  ref: string | undefined;
  bytes: number;
}

export interface Page {
  messages: Delivered[];
  more: boolean;
}

/** Counters read by /metrics and /healthz; plain fields, bumped on the hot path for free. */
export class Stats {
  connections = 0;
  connectionsTotal = 0;
  accepted = 0;
  delivered = 0;
  acked = 0;
  duplicates = 0;
  slowConsumerCloses = 0;
  commits = 0;
  committedMessages = 0;
  lastBatch = 0;
  lastCommitMs = 0;
  refused: Partial<Record<ErrorCode, number>> = {};
  refuse(code: ErrorCode): void {
    this.refused[code] = (this.refused[code] ?? 0) + 1;
  }
}

const MAX_IDLE_ROOMS = 10_000;

export class Engine {
  readonly stats = new Stats();
  readonly rooms: RoomRegistry;
  private readonly pending = new Map<number, PendingSend>();
  private nextToken = 1;
  private inflightBytes = 0;
  /** False while the store refuses commits (reported by the actor). */
  storeOk = true;
  storeReason: string | null = null;
  private stopping = false;
  private onActorClosed: (() => void) | null = null;

  constructor(
    private readonly cfg: Config,
    private readonly app: TemplatedApp,
    private readonly actor: ActorLink,
    private readonly readers: Piscina,
    private readonly log: Logger,
  ) {
    this.rooms = new RoomRegistry(cfg.window, MAX_IDLE_ROOMS, (room, create) => actor.send({ t: 'load', room, create }));
    actor.listen((evts) => this.onActorEvents(evts));
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
    this.send(s, encodeError(s.codec, code, message, ref, cid));
  }

  // ---- client frames ---------------------------------------------------------------------------

  onFrame(s: Session, f: ClientFrame): void {
    switch (f.op) {
      case 'send': return this.onSend(s, f);
      case 'join': return this.onJoin(s, f);
      case 'leave': return this.onLeave(s, f);
      case 'history': return this.onHistory(s, f);
      case 'typing': return this.onTyping(s, f);
      case 'ping': return this.send(s, encodeFrame(s.codec, { op: 'pong' }, undefined, f.ref));
      case 'read': return this.error(s, 'unknown_op', 'read markers are not implemented in this version', f.ref);
    }
  }

  private canCreate(): boolean {
    return this.cfg.auth === 'none';
  }

  private onSend(s: Session, f: Extract<ClientFrame, { op: 'send' }>): void {
    const room = this.rooms.ready(f.room);
    if (room !== undefined) return this.forward(s, f);
    this.rooms.activate(f.room, this.canCreate(), (r) => {
      if (r === null) return this.error(s, 'not_found', 'no such room', f.ref, f.cid);
      this.forward(s, f);
    });
  }

  /** Hand a send to the actor, unless the write buffer is full. */
  private forward(s: Session, f: Extract<ClientFrame, { op: 'send' }>): void {
    if (s.closed) return; // never acked, never stored: the client retries with the same cid
    const bytes = f.text.length * 3 + f.cid.length + 64; // upper bound of the UTF-8 size, cheap
    if (this.stopping || this.pending.size >= this.cfg.bufferMaxMessages || this.inflightBytes + bytes > this.cfg.bufferMaxBytes) {
      return this.error(s, 'overloaded', this.stopping ? 'the engine is shutting down; retry on another node or later' : undefined, f.ref, f.cid);
    }
    const token = this.nextToken++;
    this.pending.set(token, { s, cid: f.cid, ref: f.ref, bytes });
    this.inflightBytes += bytes;
    this.stats.accepted++;
    this.actor.send({ t: 'send', token, room: f.room, type: 'CHAT', fromId: s.userId, fromName: s.userName, text: f.text, cid: f.cid, at: Date.now() });
  }

  private onJoin(s: Session, f: Extract<ClientFrame, { op: 'join' }>): void {
    this.rooms.activate(f.room, this.canCreate(), (room) => {
      if (s.closed) return;
      if (room === null) return this.error(s, 'not_found', 'no such room', f.ref);
      if (f.since === undefined) return this.joined(s, room, this.latest(room, f.limit), undefined, f.ref);
      this.recover(s, room, f.since, f.limit, f.ref);
    });
  }

  /** Reply `joined` and subscribe in the same turn: live msgs continue at joined.seq + 1. */
  private joined(s: Session, room: Room, messages: Delivered[], recovered: boolean | undefined, ref: string | undefined): void {
    if (s.closed || s.ws === null) return;
    const fields: Record<string, unknown> = { op: 'joined', room: room.id, epoch: room.epoch, seq: room.lastSeq };
    if (recovered !== undefined) fields.recovered = recovered;
    this.send(s, encodeFrame(s.codec, fields, messages, ref));
    if (!s.rooms.has(room.id)) {
      s.rooms.add(room.id);
      room.members++;
      s.ws.subscribe(s.codec === Codec.Json ? room.jsonTopic : room.msgpackTopic);
    }
  }

  private notBefore(): number {
    return this.cfg.retentionMs > 0 ? Date.now() - this.cfg.retentionMs : 0;
  }

  /** The newest `limit` visible messages; the window always holds the newest `window` >= 100. */
  private latest(room: Room, limit: number): Delivered[] {
    const w = room.window;
    return w.slice(Math.max(w.firstVisible(this.notBefore()), w.size - limit), w.size);
  }

  /** join with `since`: every message after it, or recovered:false when the gap cannot be filled. */
  private recover(s: Session, room: Room, since: string, limit: number, ref: string | undefined): void {
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
  private mergeAfter(room: Room, stored: Message[], fromSeq: number, max: number): Delivered[] | null {
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

  private onLeave(s: Session, f: Extract<ClientFrame, { op: 'leave' }>): void {
    this.unsubscribe(s, f.room);
    this.send(s, encodeFrame(s.codec, { op: 'left', room: f.room }, undefined, f.ref));
  }

  private unsubscribe(s: Session, roomId: string): void {
    if (!s.rooms.delete(roomId)) return;
    const room = this.rooms.ready(roomId);
    if (room !== undefined) {
      room.members--;
      if (!s.closed && s.ws !== null) s.ws.unsubscribe(s.codec === Codec.Json ? room.jsonTopic : room.msgpackTopic);
    }
  }

  private onTyping(s: Session, f: Extract<ClientFrame, { op: 'typing' }>): void {
    const room = this.rooms.ready(f.room);
    if (room === undefined || !s.rooms.has(f.room) || s.ws === null) {
      return this.error(s, 'forbidden', 'join the room before typing in it', f.ref);
    }
    const user = { id: s.userId, name: s.userName };
    // ws.publish skips the sender itself: typing goes to the room's other members only.
    s.ws.publish(room.jsonTopic, JSON.stringify({ op: 'typing', room: room.id, user }), false);
    if (this.app.numSubscribers(room.msgpackTopic) > 0) {
      s.ws.publish(room.msgpackTopic, encodeFrame(Codec.Msgpack, { op: 'typing', room: room.id, user }) as Uint8Array, true);
    }
  }

  private onHistory(s: Session, f: Extract<ClientFrame, { op: 'history' }>): void {
    this.history(f.room, f).then((page) => {
      this.send(s, encodeFrame(s.codec, { op: 'history', room: f.room, more: page.more }, page.messages, f.ref));
    }, (err: unknown) => {
      if (err instanceof ChatError) return this.error(s, err.code, err.message, f.ref);
      this.log.error({ err: String(err), room: f.room }, 'history read failed');
      this.error(s, 'overloaded', 'history is unavailable right now; retry', f.ref);
    });
  }

  /**
   * A history page, oldest first. Served from the hot window when it covers the page, else from
   * the store through a reader, merged with the window by seq so the seam never duplicates or
   * drops a message.
   */
  history(roomId: string, q: PageParams): Promise<Page> {
    return new Promise<Room>((resolve, reject) => {
      this.rooms.activate(roomId, false, (room) => (room === null ? reject(new ChatError('not_found', 'no such room')) : resolve(room)));
    }).then((room) => {
      const local = this.pageFromWindow(room, q);
      if (local !== null) return local;
      const task: ReadTask = { kind: 'page', room: room.id, before: q.before, after: q.after, limit: q.limit, notBefore: this.notBefore() };
      return this.read<PageResult>(task).then((res) => this.mergePage(room, q, res.messages.map(toDelivered)));
    });
  }

  private pageFromWindow(room: Room, q: PageParams): Page | null {
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

  private mergePage(room: Room, q: PageParams, stored: Delivered[]): Page {
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

  /** At close: was this socket's send buffer over the backpressure limit (a cut-off slow consumer)? */
  wasSlow(s: Session): boolean {
    if (s.ws === null) return false;
    try {
      return s.ws.getBufferedAmount() >= this.cfg.maxBackpressure;
    } catch {
      return false;
    }
  }

  onClose(s: Session): void {
    s.closed = true;
    if (s.expiry !== null) clearTimeout(s.expiry);
    for (const roomId of s.rooms) {
      const room = this.rooms.ready(roomId);
      if (room !== undefined) room.members--;
    }
    s.rooms.clear();
    s.ws = null;
  }

  // ---- actor events ----------------------------------------------------------------------------

  private onActorEvents(evts: FromActor[]): void {
    for (const e of evts) {
      switch (e.t) {
        case 'accepted': for (const d of e.msgs) this.deliver(d); break;
        case 'committed': this.onCommitted(e); break;
        case 'room': this.rooms.loaded(e.room, e.state); break;
        case 'health':
          this.storeOk = e.ok;
          this.storeReason = e.reason;
          if (e.ok) this.log.info({}, 'store recovered');
          else this.log.error({ reason: e.reason }, 'store degraded: commits are failing; buffering');
          break;
        case 'closed': this.onActorClosed?.(); break;
        case 'ready': break;
      }
    }
  }

  /** Where a message is published: append to the room's window, then one native publish per codec. */
  private deliver(d: Delivered): void {
    const room = this.rooms.ready(d.room);
    if (room === undefined) return; // no local member: the room will load it from the store
    if (!room.append(d)) {
      this.log.error({ room: d.room, seq: d.seq, last: room.lastSeq }, 'out-of-order delivery; reloading room');
      this.rooms.forget(d.room);
      return;
    }
    this.stats.delivered++;
    this.app.publish(room.jsonTopic, msgFrameJson(d.json), false);
    // Encode for MessagePack subscribers only if there are any (free when none are connected).
    if (this.app.numSubscribers(room.msgpackTopic) > 0) this.app.publish(room.msgpackTopic, msgFrameMsgpack(d.json), true);
  }

  /** Where the ack is sent: only once the message's transaction has committed. */
  private onCommitted(e: CommittedEvt): void {
    if (e.batch > 0) {
      this.stats.commits++;
      this.stats.committedMessages += e.batch;
      this.stats.lastBatch = e.batch;
      this.stats.lastCommitMs = e.commitMs;
    }
    for (const r of e.results) {
      const p = this.pending.get(r.token);
      if (p === undefined) continue;
      this.pending.delete(r.token);
      this.inflightBytes -= p.bytes;
      if (r.error !== null) {
        this.error(p.s, r.error, undefined, p.ref, p.cid);
        continue;
      }
      if (r.json !== null) this.deliver({ room: r.room, seq: r.seq, id: r.id, at: r.at, json: r.json });
      if (r.dup) this.stats.duplicates++;
      this.stats.acked++;
      this.send(p.s, encodeAck(p.s.codec, p.cid, r.room, r.id, r.seq, r.at, p.ref));
    }
  }

  // ---- shutdown --------------------------------------------------------------------------------

  /** Stop taking sends, let the actor commit and ack what it holds, then return. */
  async drain(): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => { this.onActorClosed = resolve; });
    const exited = this.actor.shutdown();
    await closed;
    await exited;
  }
}
