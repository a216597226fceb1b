// SQLite (better-sqlite3): the write side, the persistence actor's one write connection.
// WAL mode: it commits while the readers' read-only connections read a consistent snapshot,
// never blocking each other. Every call is synchronous.

import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Message } from '../../contract.ts';
import { toMessage, toRoomRow, type MessageRow, type RoomDbRow } from '../rows.ts';
import { dialectSql, SQL, SQLITE } from '../sql.ts';
import { cidKey, type CidHit, type DirectoryStore, type MarkerWrite, type MessageStore, type NewMessage, type RoomRow } from '../store.ts';
import { migrate } from './migrations.ts';

const SQLITE_SQL = dialectSql(SQLITE);
/** (sender, cid) pairs per lookup statement, largest first; a remainder below 4 is looked up one by one. */
const CID_CHUNKS = [64, 16, 4];

export class SqliteStore implements MessageStore, DirectoryStore {
  private readonly db: Database.Database;
  private readonly st;
  private readonly commitTx;
  private readonly createTx;
  private readonly deleteTx;
  private readonly membersTx;
  private readonly blockTx;
  /** One lookup statement per size in CID_CHUNKS. */
  private readonly findCidChunk = new Map<number, Database.Statement<string[], CidHit & { from_id: string; cid: string }>>();

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
      getRoom: this.db.prepare<[string], RoomDbRow>(SQL.getRoom),
      findDirect: this.db.prepare<[string], RoomDbRow>(SQL.findDirect),
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
      findByCid: this.db.prepare<[string, string], CidHit>('SELECT room, seq, id, at FROM messages WHERE from_id = ? AND cid = ?'),
      // OR IGNORE: a commit repeated after an unknown outcome skips the rows already there.
      insert: this.db.prepare(SQLITE_SQL.insertMessages),
      setSeq: this.db.prepare('UPDATE rooms SET last_seq = ? WHERE id = ?'),
      latest: this.db.prepare<[string, number, number], MessageRow>(SQL.latest),
      purge: this.db.prepare('DELETE FROM messages WHERE tsid IN (SELECT tsid FROM messages WHERE tsid < ? ORDER BY tsid LIMIT ?)'),
    };
    for (const n of CID_CHUNKS) {
      // a probe of the (from_id, cid) index per pair, as the one-pair statement, in one statement call
      this.findCidChunk.set(n, this.db.prepare<string[], CidHit & { from_id: string; cid: string }>(
        `SELECT v.column1 AS from_id, v.column2 AS cid, m.room, m.seq, m.id, m.at FROM (VALUES ${new Array<string>(n).fill('(?, ?)').join(', ')}) v ` +
          'JOIN messages m ON m.from_id = v.column1 AND m.cid = v.column2',
      ));
    }
    this.commitTx = this.db.transaction((msgs: NewMessage[], lastSeqs: Map<string, number>, marks: MarkerWrite[]) => {
      const ins = this.st.insert;
      for (const m of msgs) ins.run(m.tsid, m.id, m.room, m.seq, m.type, m.fromId, m.fromName, m.text, m.at, m.cid);
      for (const [room, seq] of lastSeqs) this.st.setSeq.run(seq, room);
      for (const k of marks) (k.ifAbsent ? this.st.markIfAbsent : this.st.mark).run(k.room, k.user, k.seq, k.id);
    });
    this.createTx = this.db.transaction((row: RoomRow, members: string[]) => {
      this.st.createRoom.run(row.id, row.kind, row.name, row.subject, row.epoch, row.lastSeq, row.createdAt, row.dmKey, row.createdBy);
      for (const u of members) this.st.addMember.run(row.id, u);
    });
    this.deleteTx = this.db.transaction((id: string): number => {
      this.st.deleteMessages.run(id);
      this.st.deleteMembers.run(id);
      this.st.deleteMarkers.run(id);
      const v = this.st.nextVersion.get()!.v;
      this.st.tombstone.run(v, id);
      return v;
    });
    this.membersTx = this.db.transaction((room: string, users: string[], present: boolean): number => {
      for (const u of users) (present ? this.st.addMember : this.st.removeMember).run(room, u);
      const v = this.st.nextVersion.get()!.v;
      this.st.roomVersion.run(v, room);
      return v;
    });
    this.blockTx = this.db.transaction((blocker: string, blocked: string, on: boolean): number => {
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

  createRoom(row: RoomRow, members: string[]): void {
    this.createTx(row, members);
  }

  deleteRoom(id: string): number {
    return this.deleteTx(id);
  }

  members(room: string): string[] {
    return this.st.members.all(room).map((r) => r.user);
  }

  setMembers(room: string, users: string[], present: boolean): number {
    return this.membersTx(room, users, present);
  }

  setBlock(blocker: string, blocked: string, on: boolean): number {
    return this.blockTx(blocker, blocked, on);
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

  findByCids(keys: [string, string][]): Map<string, CidHit> {
    const out = new Map<string, CidHit>();
    let i = 0;
    for (const n of CID_CHUNKS) {
      const st = this.findCidChunk.get(n)!;
      for (; i + n <= keys.length; i += n) {
        const args: string[] = [];
        for (let j = i; j < i + n; j++) args.push(keys[j][0], keys[j][1]);
        for (const h of st.all(...args)) out.set(cidKey(h.from_id, h.cid), { room: h.room, seq: h.seq, id: h.id, at: h.at });
      }
    }
    for (; i < keys.length; i++) {
      const [fromId, cid] = keys[i];
      const hit = this.st.findByCid.get(fromId, cid);
      if (hit) out.set(cidKey(fromId, cid), hit);
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
