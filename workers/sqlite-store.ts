// SQLite (better-sqlite3) implementation of MessageStore and MessageReader.
// WAL mode: the actor's one write connection commits while the readers' read-only connections
// read a consistent snapshot, never blocking each other.

import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Message, MessageType } from './contract.ts';
import type { CidHit, MessageReader, MessageStore, NewMessage, PageQuery, RoomKind, RoomRow } from './store.ts';

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

interface MessageRow {
  id: string;
  room: string;
  seq: number;
  type: MessageType;
  from_id: string;
  from_name: string;
  text: string;
  at: number;
  cid: string | null;
}

function toMessage(r: MessageRow): Message {
  const m: Message = { id: r.id, room: r.room, seq: r.seq, type: r.type, from: { id: r.from_id, name: r.from_name }, text: r.text, at: r.at };
  if (r.cid !== null) m.cid = r.cid;
  return m;
}

const COLS = 'id, room, seq, type, from_id, from_name, text, at, cid';

export class SqliteStore implements MessageStore {
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
    migrate(this.db);
    this.st = {
      getRoom: this.db.prepare<[string], { id: string; kind: RoomKind; name: string | null; subject: string | null; epoch: string; last_seq: number; created_at: number }>(
        'SELECT id, kind, name, subject, epoch, last_seq, created_at FROM rooms WHERE id = ?'),
      createRoom: this.db.prepare('INSERT OR IGNORE INTO rooms (id, kind, name, subject, epoch, last_seq, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      findByCid: this.db.prepare<[string, string], CidHit>('SELECT room, seq, id, at FROM messages WHERE from_id = ? AND cid = ?'),
      insert: this.db.prepare('INSERT INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at, cid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      setSeq: this.db.prepare('UPDATE rooms SET last_seq = ? WHERE id = ?'),
      latest: this.db.prepare<[string, number, number], MessageRow>(
        `SELECT ${COLS} FROM messages WHERE room = ? AND at >= ? ORDER BY tsid DESC LIMIT ?`),
      purge: this.db.prepare('DELETE FROM messages WHERE tsid IN (SELECT tsid FROM messages WHERE tsid < ? ORDER BY tsid LIMIT ?)'),
    };
    this.commitTx = this.db.transaction((msgs: NewMessage[], lastSeqs: Map<string, number>) => {
      const ins = this.st.insert;
      for (const m of msgs) ins.run(m.tsid, m.id, m.room, m.seq, m.type, m.fromId, m.fromName, m.text, m.at, m.cid);
      for (const [room, seq] of lastSeqs) this.st.setSeq.run(seq, room);
    });
  }

  getRoom(id: string): RoomRow | null {
    const r = this.st.getRoom.get(id);
    return r ? { id: r.id, kind: r.kind, name: r.name, subject: r.subject, epoch: r.epoch, lastSeq: r.last_seq, createdAt: r.created_at } : null;
  }

  createRoom(row: RoomRow): void {
    this.st.createRoom.run(row.id, row.kind, row.name, row.subject, row.epoch, row.lastSeq, row.createdAt);
  }

  findByCid(fromId: string, cid: string): CidHit | null {
    return this.st.findByCid.get(fromId, cid) ?? null;
  }

  commit(msgs: NewMessage[], lastSeqs: Map<string, number>): void {
    this.commitTx(msgs, lastSeqs);
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
        `SELECT ${COLS} FROM messages WHERE room = ? AND tsid < ? AND at >= ? ORDER BY tsid DESC LIMIT ?`),
      after: this.db.prepare<[string, bigint, number, number], MessageRow>(
        `SELECT ${COLS} FROM messages WHERE room = ? AND tsid > ? AND at >= ? ORDER BY tsid ASC LIMIT ?`),
      latest: this.db.prepare<[string, number, number], MessageRow>(
        `SELECT ${COLS} FROM messages WHERE room = ? AND at >= ? ORDER BY tsid DESC LIMIT ?`),
      seqOf: this.db.prepare<[string, bigint], { seq: number }>('SELECT seq FROM messages WHERE room = ? AND tsid = ?'),
    };
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

  close(): void {
    this.db.close();
  }
}
