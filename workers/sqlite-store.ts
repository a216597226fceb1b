// SQLite (better-sqlite3) implementation of MessageStore and MessageReader.
// WAL mode: the actor's one write connection commits while the readers' read-only connections
// read a consistent snapshot, never blocking each other.

import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Message, MyRoom, RoomInfo } from './contract.ts';
import { MESSAGE_COLS, ROOM_COLS, roomInfo, toMessage, toRoomRow, type MessageRow, type RoomDbRow } from './rows.ts';
import type { CidHit, DirectoryStore, MarkerWrite, MessageReader, MessageStore, NewMessage, PageQuery, RoomRow } from './store.ts';

/** Each entry upgrades the schema from version i to i+1; applied in one transaction each. */
const MIGRATIONS: string[] = [
  `CREATE TABLE rooms (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     name TEXT,
     subject TEXT,
     epoch TEXT NOT NULL,
     last_seq INTEGER NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX rooms_subject ON rooms(subject) WHERE subject IS NOT NULL;
   -- tsid is the message id as an integer and the row key: time order is key order, so retention
   -- deletes a key range, and the (room) index, which carries the key, serves every cursor.
   CREATE TABLE messages (
     tsid INTEGER PRIMARY KEY,
     id TEXT NOT NULL,
     room TEXT NOT NULL,
     seq INTEGER NOT NULL,
     type TEXT NOT NULL,
     from_id TEXT NOT NULL,
     from_name TEXT NOT NULL,
     text TEXT NOT NULL,
     at INTEGER NOT NULL,
     cid TEXT
   );
   CREATE INDEX messages_room ON messages(room);
   CREATE UNIQUE INDEX messages_sender_cid ON messages(from_id, cid) WHERE cid IS NOT NULL;`,
  // 2: the chat domain: room kinds with members, direct-room lookup, read markers, blocks.
  `ALTER TABLE rooms ADD COLUMN dm_key TEXT;
   -- a deleted room keeps its row as a tombstone: its id is never silently reused
   ALTER TABLE rooms ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
   CREATE UNIQUE INDEX rooms_dm ON rooms(dm_key) WHERE dm_key IS NOT NULL;
   CREATE TABLE members (room TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY (room, user)) WITHOUT ROWID;
   CREATE INDEX members_user ON members(user);
   CREATE TABLE read_markers (
     room TEXT NOT NULL, user TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
     PRIMARY KEY (room, user)) WITHOUT ROWID;
   CREATE INDEX read_markers_user ON read_markers(user);
   CREATE TABLE blocks (blocker TEXT NOT NULL, blocked TEXT NOT NULL, PRIMARY KEY (blocker, blocked)) WITHOUT ROWID;`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export class SchemaTooNewError extends Error {
  override name = 'SchemaTooNewError';
}

/** Apply pending migrations; safe to re-run; refuses a database written by newer code. */
export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new SchemaTooNewError(
      `the database is at schema version ${current} but this engine knows only up to ${SCHEMA_VERSION}; ` +
        'run a newer engine or restore a backup',
    );
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

export class SqliteStore implements MessageStore, DirectoryStore {
  private readonly db: Database.Database;
  private readonly st;
  private readonly commitTx;

  constructor(path: string, sync: 'normal' | 'full') {
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
    migrate(this.db);
    this.st = {
      getRoom: this.db.prepare<[string], RoomDbRow>(`SELECT ${ROOM_COLS} FROM rooms WHERE id = ?`),
      findDirect: this.db.prepare<[string], RoomDbRow>(`SELECT ${ROOM_COLS} FROM rooms WHERE dm_key = ?`),
      createRoom: this.db.prepare('INSERT INTO rooms (id, kind, name, subject, epoch, last_seq, created_at, dm_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      members: this.db.prepare<[string], { user: string }>('SELECT user FROM members WHERE room = ? ORDER BY user'),
      addMember: this.db.prepare('INSERT OR IGNORE INTO members (room, user) VALUES (?, ?)'),
      removeMember: this.db.prepare('DELETE FROM members WHERE room = ? AND user = ?'),
      block: this.db.prepare('INSERT OR IGNORE INTO blocks (blocker, blocked) VALUES (?, ?)'),
      unblock: this.db.prepare('DELETE FROM blocks WHERE blocker = ? AND blocked = ?'),
      allBlocks: this.db.prepare<[], { blocker: string; blocked: string }>('SELECT blocker, blocked FROM blocks'),
      mark: this.db.prepare(`INSERT INTO read_markers (room, user, seq, id) VALUES (?, ?, ?, ?)
        ON CONFLICT (room, user) DO UPDATE SET seq = excluded.seq, id = excluded.id WHERE excluded.seq > read_markers.seq`),
      markIfAbsent: this.db.prepare('INSERT OR IGNORE INTO read_markers (room, user, seq, id) VALUES (?, ?, ?, ?)'),
      deleteMessages: this.db.prepare('DELETE FROM messages WHERE room = ?'),
      deleteMembers: this.db.prepare('DELETE FROM members WHERE room = ?'),
      deleteMarkers: this.db.prepare('DELETE FROM read_markers WHERE room = ?'),
      deleteRoom: this.db.prepare('UPDATE rooms SET deleted = 1, dm_key = NULL WHERE id = ?'),
      findByCid: this.db.prepare<[string, string], CidHit>('SELECT room, seq, id, at FROM messages WHERE from_id = ? AND cid = ?'),
      // OR IGNORE: a commit repeated after an unknown outcome skips the rows already there.
      insert: this.db.prepare('INSERT OR IGNORE INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at, cid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      setSeq: this.db.prepare('UPDATE rooms SET last_seq = ? WHERE id = ?'),
      latest: this.db.prepare<[string, number, number], MessageRow>(
        `SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND at >= ? ORDER BY tsid DESC LIMIT ?`),
      purge: this.db.prepare('DELETE FROM messages WHERE tsid IN (SELECT tsid FROM messages WHERE tsid < ? ORDER BY tsid LIMIT ?)'),
    };
    this.commitTx = this.db.transaction((msgs: NewMessage[], lastSeqs: Map<string, number>, marks: MarkerWrite[]) => {
      const ins = this.st.insert;
      for (const m of msgs) ins.run(m.tsid, m.id, m.room, m.seq, m.type, m.fromId, m.fromName, m.text, m.at, m.cid);
      for (const [room, seq] of lastSeqs) this.st.setSeq.run(seq, room);
      for (const k of marks) (k.ifAbsent ? this.st.markIfAbsent : this.st.mark).run(k.room, k.user, k.seq, k.id);
    });
    this.createTx = this.db.transaction((row: RoomRow, members: string[]) => {
      this.st.createRoom.run(row.id, row.kind, row.name, row.subject, row.epoch, row.lastSeq, row.createdAt, row.dmKey);
      for (const u of members) this.st.addMember.run(row.id, u);
    });
    this.deleteTx = this.db.transaction((id: string) => {
      this.st.deleteMessages.run(id);
      this.st.deleteMembers.run(id);
      this.st.deleteMarkers.run(id);
      this.st.deleteRoom.run(id);
    });
    this.membersTx = this.db.transaction((room: string, users: string[], present: boolean) => {
      for (const u of users) (present ? this.st.addMember : this.st.removeMember).run(room, u);
    });
  }

  private readonly createTx;
  private readonly deleteTx;
  private readonly membersTx;

  getRoom(id: string): RoomRow | null {
    const r = this.st.getRoom.get(id);
    return r ? toRoomRow(r) : null;
  }

  findDirect(dmKey: string): RoomRow | null {
    const r = this.st.findDirect.get(dmKey);
    return r ? toRoomRow(r) : null;
  }

  createRoom(row: RoomRow, members: string[]): void {
    this.createTx(row, members);
  }

  deleteRoom(id: string): void {
    this.deleteTx(id);
  }

  members(room: string): string[] {
    return this.st.members.all(room).map((r) => r.user);
  }

  setMembers(room: string, users: string[], present: boolean): void {
    this.membersTx(room, users, present);
  }

  setBlock(blocker: string, blocked: string, on: boolean): void {
    (on ? this.st.block : this.st.unblock).run(blocker, blocked);
  }

  allBlocks(): [string, string][] {
    return this.st.allBlocks.all().map((r) => [r.blocker, r.blocked]);
  }

  findByCids(keys: [string, string][]): Map<string, CidHit> {
    const out = new Map<string, CidHit>();
    for (const [fromId, cid] of keys) {
      const hit = this.st.findByCid.get(fromId, cid);
      if (hit) out.set(fromId + '\0' + cid, hit);
    }
    return out;
  }

  commit(msgs: NewMessage[], lastSeqs: Map<string, number>, marks: MarkerWrite[]): void {
    this.commitTx(msgs, lastSeqs, marks);
  }

  latest(room: string, limit: number, notBefore: number): Message[] {
    // latest: (room, at, limit) — the statement's parameter order.
    return this.st.latest.all(room, notBefore, limit).reverse().map(toMessage);
  }

  purgeBefore(cutoff: bigint, max: number): number {
    return this.st.purge.run(cutoff, max).changes;
  }

  close(): void {
    this.db.close();
  }
}

export class SqliteReader implements MessageReader {
  private readonly db: Database.Database;
  private readonly st;

  constructor(path: string) {
    this.db = new Database(path, { readonly: true, fileMustExist: true });
    this.db.pragma('busy_timeout = 5000');
    this.st = {
      before: this.db.prepare<[string, bigint, number, number], MessageRow>(
        `SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND tsid < ? AND at >= ? ORDER BY tsid DESC LIMIT ?`),
      after: this.db.prepare<[string, bigint, number, number], MessageRow>(
        `SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND tsid > ? AND at >= ? ORDER BY tsid ASC LIMIT ?`),
      latest: this.db.prepare<[string, number, number], MessageRow>(
        `SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND at >= ? ORDER BY tsid DESC LIMIT ?`),
      seqOf: this.db.prepare<[string, bigint], { seq: number }>('SELECT seq FROM messages WHERE room = ? AND tsid = ?'),
      seqAt: this.db.prepare<[string, bigint], { seq: number }>('SELECT seq FROM messages WHERE room = ? AND tsid <= ? ORDER BY tsid DESC LIMIT 1'),
      bySubject: this.db.prepare<[string], RoomDbRow>(`SELECT ${ROOM_COLS} FROM rooms WHERE subject = ? AND deleted = 0 ORDER BY created_at, id`),
      members: this.db.prepare<[string], { user: string }>('SELECT user FROM members WHERE room = ? ORDER BY user'),
      // A user's rooms: group/direct rooms they are a member of, and public rooms they have a
      // read marker in (set when they first join one).
      myRooms: this.db.prepare<{ user: string }, RoomDbRow & { read_seq: number | null }>(
        `SELECT r.id, r.kind, r.name, r.subject, r.epoch, r.last_seq, r.created_at, r.dm_key, r.deleted, k.seq AS read_seq
         FROM rooms r LEFT JOIN read_markers k ON k.room = r.id AND k.user = @user
         WHERE r.deleted = 0 AND r.id IN (SELECT room FROM members WHERE user = @user UNION SELECT room FROM read_markers WHERE user = @user)
         ORDER BY r.id`),
      lastMsg: this.db.prepare<[string, number], MessageRow>(`SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND at >= ? ORDER BY tsid DESC LIMIT 1`),
      range: this.db.prepare<[string, number, number], MessageRow>(`SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND seq BETWEEN ? AND ? ORDER BY seq`),
      lastSeq: this.db.prepare<[string], { last_seq: number }>('SELECT last_seq FROM rooms WHERE id = ?'),
    };
  }

  seqAt(room: string, id: bigint): number {
    return this.st.seqAt.get(room, id)?.seq ?? 0;
  }

  roomsBySubject(subject: string): RoomInfo[] {
    return this.st.bySubject.all(subject).map((r) => roomInfo(toRoomRow(r), this.st.members.all(r.id).map((m) => m.user)));
  }

  myRooms(user: string, notBefore: number): MyRoom[] {
    return this.st.myRooms.all({ user }).map((r) => {
      const last = this.st.lastMsg.get(r.id, notBefore);
      return {
        info: roomInfo(toRoomRow(r), r.kind === 'public' ? [] : this.st.members.all(r.id).map((m) => m.user)),
        lastSeq: r.last_seq,
        readSeq: r.read_seq ?? 0,
        last: last ? toMessage(last) : null,
      };
    });
  }

  page(q: PageQuery): Message[] {
    const n = q.limit + 1;
    if (q.after !== undefined) return this.st.after.all(q.room, q.after, q.notBefore, n).map(toMessage);
    const rows = q.before !== undefined
      ? this.st.before.all(q.room, q.before, q.notBefore, n)
      : this.st.latest.all(q.room, q.notBefore, n);
    return rows.reverse().map(toMessage);
  }

  seqOf(room: string, id: bigint): number | null {
    return this.st.seqOf.get(room, id)?.seq ?? null;
  }

  range(room: string, from: number, to: number): Message[] {
    return this.st.range.all(room, from, to).map(toMessage);
  }

  lastSeqs(rooms: string[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of rooms) {
      const row = this.st.lastSeq.get(r);
      if (row) out.set(r, row.last_seq);
    }
    return out;
  }

  close(): void {
    this.db.close();
  }
}
