// A cluster node's delivery order. Committed messages of a room reach this node from its own
// commits and from the bus, from several nodes, in any order: each is put in its place in the
// room's seq order. The next seq goes out at once; a later one waits for the gap to close, for
// CHAT_GAP_WAIT at most, then the gap is read from the store, where it is (seq is assigned in the
// commit, so every seq below a committed one is committed too). A sweep compares every served
// room's last seq with the store's, which catches a lost publish at the end of a room.

import type { Delivered, LastSeqsResult, Message, RangeResult } from '../../workers/contract.ts';
import type { Config } from '../config.ts';
import { toDelivered } from '../core/delivered.ts';
import type { Fanout } from '../core/fanout.ts';
import type { History } from '../core/history.ts';
import type { Replies } from '../core/replies.ts';
import type { Room, RoomRegistry } from '../core/rooms.ts';
import type { Session } from '../core/session.ts';
import type { Logger } from '../log.ts';
import type { Stats } from '../metrics/stats.ts';

/** Held messages beyond a gap, at most; past it the gap is filled from the store at once. */
const MAX_HELD = 10_000;

/** A room's ordering state on this node. */
interface RoomOrder {
  /** Committed messages that arrived ahead of a gap (or while the room loads), by seq. */
  held: Map<number, { d: Delivered; cb: (() => void) | null }>;
  gapTimer: NodeJS.Timeout | null;
  /** A gap fill from the store is in flight. */
  filling: boolean;
  /** Last time a local member left or a message was sent or committed here (ms). */
  lastUsed: number;
}

export class Sequencer {
  /** Per room object: a room forgotten and loaded again starts afresh. */
  private readonly order = new WeakMap<Room<Session>, RoomOrder>();
  private sweeping = false;

  constructor(
    private readonly cfg: Config,
    private readonly rooms: RoomRegistry<Session>,
    private readonly fanout: Fanout,
    private readonly history: History,
    private readonly replies: Replies,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {}

  private of(room: Room<Session>): RoomOrder {
    let o = this.order.get(room);
    if (o === undefined) this.order.set(room, (o = { held: new Map(), gapTimer: null, filling: false, lastUsed: Date.now() }));
    return o;
  }

  touch(room: Room<Session>): void {
    this.of(room).lastUsed = Date.now();
  }

  /** Nothing is waiting or being filled for the room, and it has not been used for `idleMs`. */
  idle(room: Room<Session>, now: number, idleMs: number): boolean {
    const o = this.of(room);
    return o.held.size === 0 && !o.filling && now - o.lastUsed >= idleMs;
  }

  /** Put a committed message (from this node or another) in its place in the room's seq order. */
  offer(room: Room<Session>, d: Delivered, cb: (() => void) | null): void {
    if (d.seq <= room.lastSeq) {
      cb?.(); // already out (a gap fill read it from the store first)
      return;
    }
    if (!room.ready || d.seq !== room.lastSeq + 1) {
      const o = this.of(room);
      const had = o.held.get(d.seq);
      if (had === undefined) o.held.set(d.seq, { d, cb });
      else if (cb !== null) had.cb = cb;
      if (room.ready) this.armGap(room);
      return;
    }
    this.fanout.publish(room, d);
    cb?.();
    if (this.order.get(room)?.held.size) this.drainHeld(room);
  }

  /** A room's snapshot is in: what the bus brought while it loaded goes out now. */
  loaded(room: Room<Session>): void {
    this.touch(room);
    if (this.of(room).held.size > 0) this.drainHeld(room);
  }

  private drainHeld(room: Room<Session>): void {
    const o = this.of(room);
    for (let h = o.held.get(room.lastSeq + 1); h !== undefined; h = o.held.get(room.lastSeq + 1)) {
      o.held.delete(h.d.seq);
      this.fanout.publish(room, h.d);
      h.cb?.();
    }
    for (const [seq, h] of o.held) {
      if (seq > room.lastSeq) continue;
      o.held.delete(seq); // the snapshot or a fill already had it
      h.cb?.();
    }
    if (o.held.size === 0) {
      if (o.gapTimer !== null) clearTimeout(o.gapTimer);
      o.gapTimer = null;
    } else this.armGap(room);
  }

  private armGap(room: Room<Session>): void {
    const o = this.of(room);
    if (o.filling) return;
    if (o.held.size > MAX_HELD && o.gapTimer !== null) {
      clearTimeout(o.gapTimer);
      o.gapTimer = null;
    }
    if (o.gapTimer !== null) return;
    o.gapTimer = setTimeout(() => {
      o.gapTimer = null;
      void this.fillGap(room, null);
    }, o.held.size > MAX_HELD ? 0 : this.cfg.gapWaitMs);
  }

  /** Read seqs lastSeq+1 .. `upTo` (default: just below the first held one) from the store. */
  private async fillGap(room: Room<Session>, upTo: number | null): Promise<void> {
    const o = this.of(room);
    if (o.filling || this.rooms.get(room.id) !== room || !room.ready) return;
    let lowestHeld = Infinity;
    for (const seq of o.held.keys()) if (seq < lowestHeld) lowestHeld = seq;
    const from = room.lastSeq + 1;
    const to = upTo ?? lowestHeld - 1;
    if (!Number.isFinite(to) || to < from) return this.drainHeld(room);
    this.stats.gapFills++;
    if (to - from + 1 > this.cfg.recoveryMax) return this.resync(room, to);
    o.filling = true;
    let got: Message[];
    try {
      got = (await this.history.read<RangeResult>({ kind: 'range', room: room.id, from, to })).messages;
    } catch (err) {
      o.filling = false;
      this.log.warn({ err: String(err), room: room.id }, 'gap fill failed; retrying');
      if (o.held.size > 0) this.armGap(room);
      return;
    }
    o.filling = false;
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
      this.replies.reply(s, { op: 'joined', room: room.id, epoch: room.epoch, seq: room.lastSeq, recovered: false }, []);
    }
    this.drainHeld(room);
  }

  /** Compare every served room's last seq with the store's, and fill what is missing. */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
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
        res = await this.history.read<LastSeqsResult>({ kind: 'lastSeqs', rooms: ids.slice(i, i + 1000) });
      } catch {
        return;
      }
      for (const [id, seq] of res.seqs) {
        const room = this.rooms.ready(id);
        if (room !== undefined && seq > room.lastSeq && !this.of(room).filling) void this.fillGap(room, seq);
      }
    }
  }

  /** A deleted room: its gap timer stops, and what waited in it is released (its joins answer not_found). */
  closed(room: Room<Session>): void {
    const o = this.order.get(room);
    if (o === undefined) return;
    if (o.gapTimer !== null) clearTimeout(o.gapTimer);
    o.gapTimer = null;
    const held = [...o.held.values()];
    o.held.clear();
    for (const h of held) h.cb?.();
  }
}
