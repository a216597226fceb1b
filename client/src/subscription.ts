// One joined room: what the app has seen of it (epoch, last seq, last id), and the rule that every
// message reaches onMessage exactly once, in seq order, across reconnects. The engine sends a
// connection's messages of a room in seq order, `joined` first; this class drops what was already
// delivered, fills a gap a rejoin without a cursor leaves (from history, holding live messages
// meanwhile) and turns an unrecoverable gap or a new epoch into onReset.

import { ChatError } from './errors.ts';
import type { IncomingMessage, JoinedFrame, JoinFrame, Message, Sender } from './protocol.ts';

export interface JoinOptions {
  /** Resume after this message id (e.g. one the app stored before a page reload). */
  since?: string;
  /** The epoch `since` belongs to; a different epoch on join calls onReset. */
  epoch?: string;
  /** How many of the latest messages a join without `since` (or after a reset) gets: 0..100, default 50. */
  limit?: number;
  /** Every message of the room, of every type, exactly once, in seq order. */
  onMessage(m: IncomingMessage, info: MessageInfo): void;
  /**
   * What the app has of the room is no longer continuous with what follows (the gap since the
   * last message could not be replayed, or the room's epoch changed): drop it. onMessage then
   * continues with the engine's latest page, from its start.
   */
  onReset?(info: ResetInfo): void;
  /** The engine ended the subscription: the room was deleted, the user removed, or a rejoin refused. */
  onLeft?(info: LeftInfo): void;
  /** Another member is typing (never stored; at most about once a second per connection). */
  onTyping?(user: Sender): void;
  /**
   * A member read the room up to `seq` (a receipt; at most one per user per 100 ms). `reads` is
   * the subscription's map of read positions with it applied. Rooms without receipts never call it.
   */
  onReceipt?(user: string, seq: number, reads: ReadonlyMap<string, number>): void;
}

export interface MessageInfo {
  /**
   * True for the messages of a first page: the latest page of a join without `since`, or the page
   * after a reset (what was said before the app joined; an app may not count them as unread).
   * False for live messages and for those replayed after a reconnect (they are new to the app).
   */
  initial: boolean;
}

export interface ResetInfo {
  room: string;
  /** `gap`: the messages since the last one seen cannot be replayed; `epoch`: the room's history was replaced. */
  reason: 'gap' | 'epoch';
  epoch: string;
  /** The room's last seq at the reset. */
  seq: number;
}

export interface LeftInfo {
  room: string;
  reason: 'deleted' | 'removed' | 'refused';
  /** For `refused`: the engine's error. */
  error?: ChatError;
}

/** What `ready` resolves with: the engine's `joined` reply, without its messages. */
export interface Joined {
  room: string;
  epoch: string;
  /** The room's last seq when the join was answered. */
  seq: number;
  /** Set for a join with `since`: whether every message after it was replayed. */
  recovered?: boolean;
  /** Read positions (user -> seq) at the join; see Subscription.reads. */
  reads: Record<string, number>;
}

export interface Subscription {
  readonly room: string;
  /** Resolves when the engine first answered `joined`; rejects if the join is refused. */
  readonly ready: Promise<Joined>;
  /** Id of the last message delivered to onMessage (store it to resume with `since`). */
  readonly lastId: string | undefined;
  /** Seq of the last message delivered (or of the room when it was joined); -1 before the first join. */
  readonly lastSeq: number;
  readonly epoch: string | undefined;
  /**
   * Read positions of the room's members (user -> the seq they read up to), from `joined` and kept
   * current by receipts. The unread count of a message (KakaoTalk style) is unreadBy(message).
   */
  readonly reads: ReadonlyMap<string, number>;
  /** How many users of `reads`, other than its sender, have not read message `m` yet. */
  unreadBy(m: Pick<Message, 'seq' | 'from'>): number;
  /** Stop receiving the room's messages; resolves once the engine confirmed (or the connection is gone). */
  leave(): Promise<void>;
}

/** What a subscription needs from its client. */
export interface SubscriptionIo {
  /** One history page of the room, oldest first. */
  history(room: string, before: string | undefined): Promise<{ messages: IncomingMessage[]; more: boolean }>;
  /** Run an app callback; an exception it throws is reported, never breaks the client. */
  call(fn: () => void): void;
  leave(sub: RoomSubscription): Promise<void>;
}

const LIVE: MessageInfo = Object.freeze({ initial: false });

/** Most history pages (of 100) a gap fill reads before it gives up with onReset. */
const MAX_FILL_PAGES = 200;

export class RoomSubscription implements Subscription {
  readonly ready: Promise<Joined>;
  epoch: string | undefined;
  lastId: string | undefined;
  lastSeq = -1;
  readonly reads = new Map<string, number>();
  /** Retries of a join refused rate_limited / overloaded. */
  joinRetries = 0;
  cancelRetry: (() => void) | null = null;
  /** Joined on the current connection: live messages count. */
  private live = false;
  /** Bumped by every joined and disconnect: a gap fill of an earlier one stops. */
  private generation = 0;
  /** Live messages held while a gap is filled. */
  private held: IncomingMessage[] | null = null;
  private readyOutcome: { resolve(j: Joined): void; reject(e: ChatError): void } | null = null;

  constructor(readonly room: string, private readonly opts: JoinOptions, private readonly io: SubscriptionIo) {
    this.lastId = opts.since;
    this.epoch = opts.epoch;
    this.ready = new Promise<Joined>((resolve, reject) => { this.readyOutcome = { resolve, reject }; });
    this.ready.catch(() => {}); // an app that never looks at `ready` gets no unhandled rejection
  }

  leave(): Promise<void> {
    return this.io.leave(this);
  }

  /** The join to send on a (new) connection: from the last message seen, if any. */
  joinFrame(ref: string): JoinFrame {
    const f: JoinFrame = { op: 'join', room: this.room, ref };
    if (this.lastId !== undefined) f.since = this.lastId;
    if (this.opts.limit !== undefined) f.limit = this.opts.limit;
    return f;
  }

  disconnected(): void {
    this.live = false;
    this.generation++;
    this.held = null;
    this.cancelRetry?.();
    this.cancelRetry = null;
  }

  /** A live `msg` of this room. Before `joined` on this connection, it belongs to an older join: dropped. */
  message(m: IncomingMessage): void {
    if (!this.live) return;
    if (this.held !== null) this.held.push(m);
    else this.deliver(m, LIVE);
  }

  unreadBy(m: Pick<Message, 'seq' | 'from'>): number {
    let n = 0;
    for (const [user, seq] of this.reads) if (user !== m.from.id && seq < m.seq) n++;
    return n;
  }

  /** A receipt of this room: positions only move forward. */
  receipt(user: string, seq: number): void {
    if (seq <= (this.reads.get(user) ?? 0)) return;
    this.reads.set(user, seq);
    const cb = this.opts.onReceipt;
    if (this.live && cb !== undefined) this.io.call(() => cb(user, seq, this.reads));
  }

  typing(user: Sender): void {
    const cb = this.opts.onTyping;
    if (this.live && cb !== undefined) this.io.call(() => cb(user));
  }

  /**
   * The engine's `joined`: the reply to this subscription's join (`sentSince`: it carried `since`),
   * or an unsolicited one (a cluster node that could not fill a gap: recovered false).
   */
  joined(f: JoinedFrame, sentSince: boolean): void {
    const generation = ++this.generation;
    this.live = true;
    this.held = null;
    this.joinRetries = 0;
    const epochChanged = this.epoch !== undefined && f.epoch !== this.epoch;
    this.epoch = f.epoch;
    this.reads.clear();
    for (const [user, seq] of Object.entries(f.reads ?? {})) this.reads.set(user, seq);
    const page = [...f.messages].sort((a, b) => a.seq - b.seq);
    if (epochChanged || f.recovered === false) this.reset(epochChanged ? 'epoch' : 'gap', f);
    const known = this.lastSeq;
    // A rejoin without a cursor (nothing seen yet, or the room was joined with limit 0) returns the
    // latest page only: what came between the last seq seen and that page is read from history.
    if (!sentSince && known >= 0 && f.seq > known && (page.length === 0 || page[0].seq > known + 1)) {
      this.held = [];
      void this.fill(generation, f, page, known);
    } else {
      this.catchUp(f, page);
    }
    const ready = this.readyOutcome;
    this.readyOutcome = null;
    const info: Joined = { room: f.room, epoch: f.epoch, seq: f.seq, reads: { ...f.reads } };
    if (f.recovered !== undefined) info.recovered = f.recovered;
    ready?.resolve(info);
  }

  /** The engine ended the subscription (or the client closed): reject `ready` if it is still open. */
  end(info: LeftInfo | null, err: ChatError): void {
    this.disconnected();
    const ready = this.readyOutcome;
    this.readyOutcome = null;
    ready?.reject(err);
    const cb = this.opts.onLeft;
    if (info !== null && cb !== undefined) this.io.call(() => cb(info));
  }

  private reset(reason: ResetInfo['reason'], f: JoinedFrame): void {
    this.lastSeq = -1;
    if (reason === 'epoch') this.lastId = undefined;
    const cb = this.opts.onReset;
    if (cb !== undefined) this.io.call(() => cb({ room: this.room, reason, epoch: f.epoch, seq: f.seq }));
  }

  /** Deliver the page, then what was held; everything up to joined.seq is now seen (or hidden by a block). */
  private catchUp(f: JoinedFrame, page: IncomingMessage[]): void {
    // Nothing seen before and nothing replayed: the page is what was said before the app joined.
    const initial = { initial: this.lastSeq < 0 && f.recovered !== true };
    for (const m of page) this.deliver(m, initial);
    if (f.seq > this.lastSeq) this.lastSeq = f.seq;
    const held = this.held ?? [];
    this.held = null;
    for (const m of held) this.deliver(m, LIVE);
  }

  private async fill(generation: number, f: JoinedFrame, page: IncomingMessage[], known: number): Promise<void> {
    const below = page.length > 0 ? page[0].seq : f.seq + 1;
    let before = page.length > 0 ? page[0].id : undefined;
    const older: IncomingMessage[][] = [];
    let complete = false;
    try {
      for (let i = 0; i < MAX_FILL_PAGES && !complete; i++) {
        const h = await this.io.history(this.room, before);
        if (generation !== this.generation) return;
        older.unshift(h.messages.filter((m) => m.seq > known && m.seq < below));
        const first = h.messages[0];
        complete = !h.more || first === undefined || first.seq <= known + 1;
        if (first !== undefined) before = first.id;
      }
    } catch {
      if (generation !== this.generation) return;
    }
    if (!complete) this.reset('gap', f);
    this.catchUp(f, complete ? [...older.flat(), ...page] : page);
  }

  private deliver(m: IncomingMessage, info: MessageInfo): void {
    if (m.seq <= this.lastSeq) return;
    this.lastSeq = m.seq;
    this.lastId = m.id;
    this.io.call(() => this.opts.onMessage(m, info));
  }
}

/** A `msg` frame's message: the frame without its `op`. */
export function messageOf(f: { op: 'msg' } & Message): IncomingMessage {
  const { op: _op, ...m } = f;
  return m;
}
