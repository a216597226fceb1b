// SQLite (better-sqlite3): the write side, the persistence actor's one write connection.
// WAL mode: it commits while the readers' read-only connections read a consistent snapshot,
// never blocking each other. Every call is synchronous.

import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Message } from '../../contract.ts';
import { tsidFloor, tsidToBigInt, tsidToString } from '../../ids.ts';
import { toMessage, toRoomRow, type MessageRow, type RoomDbRow } from '../rows.ts';
import { dialectSql, RETRACTION, SQL, SQLITE } from '../sql.ts';
import { cidKey, type CidHit, type DirectoryStore, type MarkerWrite, type MessageStore, type MessageType, type NewMessage, type RoomRow, type TargetRow } from '../store.ts';
import { messageEvents, type NewEvent } from '../events.ts';
import { DEDUPE_WINDOW_MS, DedupeWindow } from './dedupe-window.ts';
import { SqliteEvents } from './events.ts';
import { migrate } from './migrations.ts';

const SQLITE_SQL = dialectSql(SQLITE);
/** A room's last seq as reads see it, to be kept in rooms.last_seq before its messages go. */
const KEEP_SEQ = SQLITE.lastSeq('rooms').replace(/ AS last_seq$/, '');

/** How often an erasing checkpoint kept from finishing by a reader is tried again, and how long apart. */
const SCRUB_TRIES = 50;
const SCRUB_RETRY_MS = 100;

export class SqliteStore implements MessageStore, DirectoryStore {
  private readonly db: Database.Database;
  private scrubTimer: NodeJS.Timeout | null = null;
  private readonly st;
  private readonly commitTx;
  private readonly createTx;
  private readonly deleteTx;
  private readonly membersTx;
  private readonly blockTx;
  private readonly purgeTx;
  /** The host app's event outbox: its rows are written by this store's transactions. */
  readonly events: SqliteEvents;
  /** Idempotency: the (sender, cid) pairs stored within the window (dedupe-window.ts). */
  private readonly window: DedupeWindow;
  /** Whether each message of the commit running was written (false: a second copy, skipped). */
  private readonly commitStored: boolean[] = [];

  /**
   * `dedupeWindowMs`: how long a stored (sender, cid) is recognized (CHAT_DEDUPE_WINDOW); `now`:
   * the clock it is measured with (tests move it).
   */
  constructor(path: string, sync: 'normal' | 'full', dedupeWindowMs = DEDUPE_WINDOW_MS, now: () => number = Date.now) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // normal: a commit is in the WAL before it returns (survives a process crash); full: fsynced too.
    this.db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
    this.db.pragma('busy_timeout = 5000');
    // Checkpoints copy WAL pages into the database (and fsync); a page rewritten by many commits
    // between two checkpoints is copied once, so a larger interval (10,000 pages, ~40 MB of WAL)
    // saves most of that work for the hot index pages. A 16 MB cache (default 2 MB) keeps them in memory.
    this.db.pragma('wal_autocheckpoint = 10000');
    this.db.pragma('cache_size = -16384');
    this.db.pragma('temp_store = MEMORY');
    // Deleted and overwritten content is zeroed in the page, not left in free space: an erased
    // message's text does not survive in the database file (see scrub() for the WAL).
    this.db.pragma('secure_delete = ON');
    migrate(this.db);
    this.events = new SqliteEvents(this.db);
    this.st = {
      getRoom: this.db.prepare<[string], RoomDbRow>(SQLITE_SQL.getRoom),
      findDirect: this.db.prepare<[string], RoomDbRow>(SQLITE_SQL.findDirect),
      createRoom: this.db.prepare(SQL.createRoom),
      members: this.db.prepare<[string], { user: string }>(SQL.members),
      addMember: this.db.prepare(SQLITE_SQL.addMembers),
      removeMember: this.db.prepare(SQL.removeMembers),
      block: this.db.prepare(SQLITE_SQL.block),
      unblock: this.db.prepare(SQL.unblock),
      allBlocks: this.db.prepare<[], { blocker: string; blocked: string }>(SQL.allBlocks),
      blockCount: this.db.prepare<[string], { n: number }>(SQL.blockCount),
      blocks: this.db.prepare<[string, string], { blocker: string }>('SELECT blocker FROM blocks WHERE blocker = ? AND blocked = ?'),
      roomsCreatedBy: this.db.prepare<[string], { n: number }>(SQL.roomsCreatedBy),
      dirVersion: this.db.prepare<[], { v: number }>(SQL.dirVersion),
      nextVersion: this.db.prepare<[], { v: number }>('UPDATE directory_version SET v = v + 1 RETURNING v'),
      roomVersion: this.db.prepare(SQL.roomVersion),
      blockVersion: this.db.prepare(SQLITE_SQL.blockVersion),
      mark: this.db.prepare(SQLITE_SQL.markForward),
      markIfAbsent: this.db.prepare(SQLITE_SQL.markIfAbsent),
      deleteMessages: this.db.prepare(SQL.deleteMessages),
      deleteMembers: this.db.prepare(SQL.deleteMembers),
      deleteMarkers: this.db.prepare(SQL.deleteMarkers),
      tombstone: this.db.prepare(SQL.tombstone),
      // the window's candidate, by row key: still stored, and the same pair
      cidAt: this.db.prepare<[bigint, string, string], CidHit>('SELECT room, seq, id, at FROM messages WHERE tsid = ? AND from_id = ? AND cid = ?'),
      rowAt: this.db.prepare<[bigint], { one: number }>('SELECT 1 AS one FROM messages WHERE tsid = ?'),
      // OR IGNORE: a commit repeated after an unknown outcome skips the rows already there.
      insert: this.db.prepare(SQLITE_SQL.insertMessages),
      // rooms.last_seq is written only before messages are deleted (a commit leaves it: see SQLITE.lastSeq)
      keepSeq: this.db.prepare(`UPDATE rooms SET last_seq = ${KEEP_SEQ} WHERE id = ?`),
      keepSeqsBefore: this.db.prepare(`UPDATE rooms SET last_seq = ${KEEP_SEQ} WHERE id IN (SELECT room FROM (SELECT room FROM messages WHERE tsid < ? ORDER BY tsid LIMIT ?))`),
      latest: this.db.prepare<[string, number, number], MessageRow>(SQL.latest),
      purge: this.db.prepare('DELETE FROM messages WHERE tsid IN (SELECT tsid FROM messages WHERE tsid < ? ORDER BY tsid LIMIT ?)'),
      retractTarget: this.db.prepare<[bigint, string], { id: string; from_id: string; type: MessageType; deleted: number }>(SQL.retractTarget),
      deleteEvent: this.db.prepare<[string], CidHit>(SQL.deleteEvent),
      reads: this.db.prepare<[string], { user: string; seq: number }>(SQL.reads),
      erase: this.db.prepare(RETRACTION.erase),
      edit: this.db.prepare(RETRACTION.edit),
      eraseEdits: this.db.prepare(RETRACTION.eraseEdits),
      eraseExpiredEdits: this.db.prepare(RETRACTION.eraseExpiredEdits),
    };
    this.purgeTx = this.db.transaction((cutoff: bigint, max: number): number => {
      this.st.keepSeqsBefore.run(cutoff, max);
      const n = this.st.purge.run(cutoff, max).changes;
      this.st.eraseExpiredEdits.run(tsidToString(cutoff));
      return n;
    });
    this.window = new DedupeWindow(dedupeWindowMs, now);
    this.rebuildWindow(now() - dedupeWindowMs);
    this.commitTx = this.db.transaction((msgs: NewMessage[], marks: MarkerWrite[]) => {
      const ins = this.st.insert;
      const stored = this.commitStored;
      stored.length = 0;
      for (const m of msgs) {
        // A second message with a (sender, cid) stored within the window is skipped, as a unique
        // key would (the actor dedupes before, so this only guards a repeated commit).
        if (m.cid !== null) {
          const had = this.window.get(m.fromId, m.cid);
          if (had !== undefined && had !== m.tsid && this.st.cidAt.get(had, m.fromId, m.cid) !== undefined) {
            stored.push(false);
            continue;
          }
        }
        stored.push(true);
        ins.run(m.tsid, m.id, m.room, m.seq, m.type, m.fromId, m.fromName, m.text, m.at, m.cid, m.target);
        if (m.target !== null) this.retract(m);
      }
      for (const k of marks) (k.ifAbsent ? this.st.markIfAbsent : this.st.mark).run(k.room, k.user, k.seq, k.id);
      this.events.insert(messageEvents(msgs), Date.now());
    });
    this.createTx = this.db.transaction((row: RoomRow, members: string[], events: NewEvent[]) => {
      this.st.createRoom.run(row.id, row.kind, row.name, row.subject, row.epoch, row.lastSeq, row.createdAt, row.dmKey, row.createdBy);
      for (const u of members) this.st.addMember.run(row.id, u);
      this.events.insert(events, Date.now());
    });
    this.deleteTx = this.db.transaction((id: string, events: NewEvent[]): number => {
      this.events.insert(events, Date.now());
      this.st.keepSeq.run(id);
      this.st.deleteMessages.run(id);
      this.st.deleteMembers.run(id);
      this.st.deleteMarkers.run(id);
      const v = this.st.nextVersion.get()!.v;
      this.st.tombstone.run(v, id);
      return v;
    });
    this.membersTx = this.db.transaction((room: string, users: string[], present: boolean, events: NewEvent[]): number => {
      this.events.insert(events, Date.now());
      for (const u of users) (present ? this.st.addMember : this.st.removeMember).run(room, u);
      const v = this.st.nextVersion.get()!.v;
      this.st.roomVersion.run(v, room);
      return v;
    });
    this.blockTx = this.db.transaction((blocker: string, blocked: string, on: boolean, events: NewEvent[]): number => {
      this.events.insert(events, Date.now());
      (on ? this.st.block : this.st.unblock).run(blocker, blocked);
      const v = this.st.nextVersion.get()!.v;
      this.st.blockVersion.run(blocker, blocked, v);
      return v;
    });
  }

  getRoom(id: string): RoomRow | null {
    const r = this.st.getRoom.get(id);
    return r ? toRoomRow(r) : null;
  }

  findDirect(dmKey: string): RoomRow | null {
    const r = this.st.findDirect.get(dmKey);
    return r ? toRoomRow(r) : null;
  }

  createRoom(row: RoomRow, members: string[], events: NewEvent[] = []): void {
    this.createTx(row, members, events);
  }

  deleteRoom(id: string, events: NewEvent[] = []): number {
    return this.deleteTx(id, events);
  }

  members(room: string): string[] {
    return this.st.members.all(room).map((r) => r.user);
  }

  setMembers(room: string, users: string[], present: boolean, events: NewEvent[] = []): number {
    return this.membersTx(room, users, present, events);
  }

  setBlock(blocker: string, blocked: string, on: boolean, events: NewEvent[] = []): number {
    return this.blockTx(blocker, blocked, on, events);
  }

  allBlocks(): [string, string][] {
    return this.st.allBlocks.all().map((r) => [r.blocker, r.blocked]);
  }

  dirVersion(): number {
    return this.st.dirVersion.get()!.v;
  }

  roomsCreatedBy(user: string): number {
    return this.st.roomsCreatedBy.get(user)!.n;
  }

  blockCount(blocker: string): number {
    return this.st.blockCount.get(blocker)!.n;
  }

  blockersOf(user: string, users: string[]): string[] {
    return users.filter((u) => this.st.blocks.get(u, user) !== undefined);
  }

  /** The pairs stored within the dedupe window (older ones are not found: a retry of one is stored again). */
  findByCids(keys: [string, string][]): Map<string, CidHit> {
    const out = new Map<string, CidHit>();
    this.window.expire();
    for (const [fromId, cid] of keys) {
      const tsid = this.window.get(fromId, cid);
      if (tsid === undefined) continue; // the common case: a first try, answered from memory
      const hit = this.st.cidAt.get(tsid, fromId, cid);
      if (hit) out.set(cidKey(fromId, cid), hit);
      // Deleted since (room deletion, retention): a new message. A row of another pair under that
      // tsid is a fingerprint collision: that pair stays remembered.
      else if (this.st.rowAt.get(tsid) === undefined) this.window.forget(fromId, cid, tsid);
    }
    return out;
  }

  /** `lastSeqs` is not written: a room's last seq is its newest message's (SQLITE.lastSeq). */
  commit(msgs: NewMessage[], _lastSeqs: Map<string, number>, marks: MarkerWrite[]): void {
    this.commitTx(msgs, marks);
    // Committed: its pairs join the window.
    const stored = this.commitStored;
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      if (m.cid !== null && stored[i]) this.window.add(m.fromId, m.cid, m.tsid, m.at);
    }
    this.window.expire();
    if (msgs.some((m) => m.target !== null)) this.scrub();
  }

  /** The window at start: the pairs of the messages stored since `since` (ms), read in key order. */
  private rebuildWindow(since: number): void {
    const rows = this.db.prepare<[bigint], { tsid: bigint; from_id: string; cid: string; at: bigint }>(
      'SELECT tsid, from_id, cid, at FROM messages WHERE tsid >= ? AND cid IS NOT NULL ORDER BY tsid',
    ).safeIntegers(true);
    for (const r of rows.iterate(tsidFloor(since))) this.window.add(r.from_id, r.cid, r.tsid, Number(r.at));
    this.window.expire();
  }

  /**
   * Where a DELETE or EDIT event takes effect, inside the commit transaction that stores it (`m`,
   * already inserted): the target's text is erased or replaced, and earlier EDIT events of the
   * target (holding older text) are erased. Anything else a retraction must change in the same
   * transaction belongs here.
   */
  private retract(m: NewMessage): void {
    const target = tsidToBigInt(m.target!);
    // Undelivered events that carry the old text lose it too (this commit's own events come later).
    this.events.eraseText(m.target!);
    if (m.type === 'DELETE') {
      this.st.erase.run(target, m.room);
      this.st.eraseEdits.run(m.target, 0n);
    } else {
      this.st.edit.run(m.text, m.at, target, m.room);
      this.st.eraseEdits.run(m.target, m.tsid);
    }
  }

  /**
   * Erased text must leave the files too: the WAL still holds the pages as they were before the
   * erase. A TRUNCATE checkpoint copies the WAL into the database (secure_delete zeroed the old
   * bytes there) and empties it. A reader in the middle of a read keeps it from finishing: it is
   * tried again shortly, as often as needed.
   */
  private scrub(tries = SCRUB_TRIES): void {
    if (this.scrubTimer !== null) return;
    const r = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    if (r[0]?.busy === 0 || tries <= 1) return;
    this.scrubTimer = setTimeout(() => {
      this.scrubTimer = null;
      if (this.db.open) this.scrub(tries - 1);
    }, SCRUB_RETRY_MS);
  }

  retractTarget(room: string, tsid: bigint): TargetRow | null {
    const r = this.st.retractTarget.get(tsid, room);
    return r === undefined ? null : { fromId: r.from_id, type: r.type, deleted: r.deleted !== 0 };
  }

  deleteEventOf(target: string): CidHit | null {
    return this.st.deleteEvent.get(target) ?? null;
  }

  reads(room: string): [string, number][] {
    return this.st.reads.all(room).map((r) => [r.user, r.seq]);
  }

  latest(room: string, limit: number, notBefore: number): Message[] {
    // latest: (room, at, limit) — the statement's parameter order.
    return this.st.latest.all(room, notBefore, limit).reverse().map(toMessage);
  }

  purgeBefore(cutoff: bigint, max: number): number {
    const n = this.purgeTx(cutoff, max);
    if (n > 0) this.scrub();
    return n;
  }

  close(): void {
    if (this.scrubTimer !== null) clearTimeout(this.scrubTimer);
    this.scrubTimer = null;
    // The last word on erasing: nothing of the WAL is left behind.
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.close();
  }
}
