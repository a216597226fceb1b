// Reading a room's past: the latest page, history pages by cursor, recovery of everything after a
// `since`, and read markers. Served from the hot window when it covers the request; else from the
// store through a reader, merged with the window by seq so the seam never drops or repeats a message.

import type { Delivered, Message, PageResult, ReadTask, SeqResult, SinceResult, UnreadResult } from '../../workers/contract.ts';
import { MY_ROOMS_SCAN } from '../../workers/stores/my-rooms.ts';
import type { ActorLink } from '../actor-link.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { toDelivered } from './delivered.ts';
import { ChatError } from '../protocol/errors.ts';
import type { Frame, PageParams } from '../protocol/frames.ts';
import type { ReadPool } from '../readers.ts';
import type { Access, Who } from './access.ts';
import type { Receipts } from './receipts.ts';
import type { Replies } from './replies.ts';
import type { RoomGate } from './room-gate.ts';
import type { Room } from './rooms.ts';
import type { Session } from './session.ts';

export interface Page {
  messages: Delivered[];
  more: boolean;
}

export class History {
  constructor(
    private readonly cfg: Config,
    private readonly gate: RoomGate,
    private readonly access: Access,
    private readonly readers: ReadPool,
    private readonly actor: ActorLink,
    private readonly replies: Replies,
    private readonly receipts: Receipts,
    private readonly log: Logger,
  ) {}

  /** Messages older than this are expired (retention); 0 = none are. */
  notBefore(): number {
    return this.cfg.retentionMs > 0 ? Date.now() - this.cfg.retentionMs : 0;
  }

  read<T>(task: ReadTask): Promise<T> {
    return this.readers.run(task) as Promise<T>;
  }

  /**
   * Whether a message counts for `user` in `unread` and `last` (the `read` reply, GET
   * /api/me/rooms): neither expired nor from a user `user` blocks. The store counts what is older
   * than a room's window by the same rule (workers/stores/my-rooms.ts).
   */
  countsFor(user: string, d: Delivered, notBefore: number): boolean {
    return d.at >= notBefore && !this.access.blocked(user, d.from);
  }

  /**
   * Messages of `room` after seq `after` that count as unread for `user` (countsFor); when `user`
   * blocks someone, among the newest MY_ROOMS_SCAN at most, as in GET /api/me/rooms. The window
   * counts its own; the store, what is older.
   */
  async unreadAfter(room: Room<Session>, user: string, after: number): Promise<number> {
    const total = room.lastSeq - after;
    if (total <= 0) return 0;
    const notBefore = this.notBefore();
    const hides = this.access.hidesAnyone(user);
    if (!hides && notBefore === 0) return total; // nothing to leave out
    const from = hides ? Math.max(after, room.lastSeq - MY_ROOMS_SCAN) : after;
    const w = room.window;
    let n = 0;
    let i = w.size - 1;
    for (; i >= 0 && w.seqAt(i) > from; i--) if (this.countsFor(user, w.at(i), notBefore)) n++;
    const firstWin = i + 1 < w.size ? w.seqAt(i + 1) : room.lastSeq + 1;
    if (firstWin - 1 > from && !room.complete) {
      n += (await this.read<UnreadResult>({ kind: 'unread', room: room.id, after: from, upTo: firstWin - 1, notBefore, blocked: this.access.blockList(user) })).unread;
    }
    return n;
  }

  /** The newest `limit` visible messages the window holds. */
  private latest(room: Room<Session>, limit: number): Delivered[] {
    const w = room.window;
    return w.slice(Math.max(w.firstVisible(this.notBefore()), w.size - limit), w.size);
  }

  /**
   * The newest `limit` visible messages: from the window when it holds them (at once), else from
   * the store merged with the window (its byte budget may keep fewer than a page of big messages).
   */
  latestPage(room: Room<Session>, limit: number, done: (page: Delivered[]) => void): void {
    const w = room.window;
    const lo = w.firstVisible(this.notBefore());
    // Enough in the window, or nothing older to read (all of the room, or older ones expired).
    if (w.size - lo >= limit || room.complete || lo > 0) return done(this.latest(room, limit));
    const q: PageParams = { before: undefined, after: undefined, limit };
    this.read<PageResult>({ kind: 'page', room: room.id, ...q, notBefore: this.notBefore() }).then((res) => {
      done(this.mergePage(room, q, res.messages.map(toDelivered)).messages);
    }, (err: unknown) => {
      this.log.warn({ err: String(err), room: room.id }, 'latest page read failed; answering from the window');
      done(this.latest(room, limit));
    });
  }

  /**
   * A join with `since`: `done` gets every message after it (recovered), or the latest page when
   * the gap cannot be filled (not recovered). `done` may run at once, or after a store read.
   */
  recover(s: Session, room: Room<Session>, since: string, limit: number, done: (messages: Delivered[], recovered: boolean) => void): void {
    const w = room.window;
    const i = w.indexOf(since);
    if (i >= 0 && w.timeAt(i) >= this.notBefore()) return done(w.slice(i + 1, w.size), true);
    const notRecovered = (): void => this.latestPage(room, limit, (page) => done(page, false));
    if (room.complete || (w.size > 0 && since > w.idAt(w.size - 1))) {
      // The window holds everything the room has (or since is newer than all of it): unknown id.
      return notRecovered();
    }
    const task: ReadTask = { kind: 'since', room: room.id, since, max: this.cfg.recoveryMax, notBefore: this.notBefore(), lastSeq: room.lastSeq };
    this.read<SinceResult>(task).then((res) => {
      if (s.closed) return;
      const merged = res.sinceSeq === null ? null : this.mergeAfter(room, res.messages, res.sinceSeq, this.cfg.recoveryMax);
      if (merged === null) return notRecovered();
      done(merged, true);
    }, (err: unknown) => {
      this.log.error({ err: String(err), room: room.id }, 'recovery read failed');
      notRecovered();
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

  /** `history`: a page, or the error it was refused with. */
  onHistory(s: Session, f: Frame<'history'>): void {
    this.page(f.room, f, s).then((page) => {
      this.replies.reply(s, { op: 'history', room: f.room, more: page.more }, page.messages, f.ref);
    }, (err: unknown) => {
      if (err instanceof ChatError) return this.replies.error(s, err.code, err.message, f.ref);
      this.log.error({ err: String(err), room: f.room }, 'history read failed');
      this.replies.error(s, 'overloaded', 'history is unavailable right now; retry', f.ref);
    });
  }

  /** A history page, oldest first, without the messages of senders `who` blocks. */
  async page(roomId: string, q: PageParams, who: Who): Promise<Page> {
    const room = await this.gate.open(roomId, who);
    let page = this.pageFromWindow(room, q);
    if (page === null) {
      const task: ReadTask = { kind: 'page', room: room.id, before: q.before, after: q.after, limit: q.limit, notBefore: this.notBefore() };
      const res = await this.read<PageResult>(task);
      page = this.mergePage(room, q, res.messages.map(toDelivered));
    }
    return { messages: this.access.visibleTo(who.userId, page.messages), more: page.more };
  }

  private pageFromWindow(room: Room<Session>, q: PageParams): Page | null {
    const w = room.window;
    const lo = w.firstVisible(this.notBefore());
    const hidden = lo > 0; // older entries expired: the window reaches past the visible start
    if (q.after !== undefined) {
      const i = Math.max(lo, w.search(q.after, false));
      if (i > lo || hidden || room.complete || (w.size > 0 && q.after >= w.idAt(0))) {
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

  /** `read`: move the caller's marker to `upTo` and answer with what is left unread. */
  onRead(s: Session, f: Frame<'read'>): void {
    this.gate.open(f.room, s).then(async (room) => {
      const seq = await this.seqAt(room, f.upTo);
      // The reply names the stored marker: it goes out once the marker is committed.
      await this.actor.awaitReply((reqId) => this.actor.send({ t: 'mark', room: room.id, user: s.userId, seq, id: f.upTo, ifAbsent: false, reqId }));
      const unread = await this.unreadAfter(room, s.userId, seq);
      this.replies.reply(s, { op: 'read', room: room.id, upTo: f.upTo, unread }, undefined, f.ref);
      // The room's other members learn it now that it is committed.
      this.receipts.read(room, s, seq);
    }).catch((err: unknown) => {
      if (err instanceof ChatError) return this.replies.error(s, err.code, err.message, f.ref);
      this.log.error({ err: String(err), room: f.room }, 'read marker failed');
      this.replies.error(s, 'overloaded', 'read markers are unavailable right now; retry', f.ref);
    });
  }

  /** The seq of the newest message at or before id `upTo` (a position in id order). */
  private async seqAt(room: Room<Session>, upTo: string): Promise<number> {
    const w = room.window;
    if (w.size > 0 && upTo >= w.idAt(0)) {
      const i = w.search(upTo, false); // first entry with id > upTo
      return i === 0 ? w.firstSeq - 1 : w.seqAt(i - 1);
    }
    if (room.complete) return 0;
    return (await this.read<SeqResult>({ kind: 'seqAt', room: room.id, id: upTo })).seq;
  }
}
