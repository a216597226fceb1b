// SQLite (better-sqlite3): the read side, a read-only connection per reader thread. WAL lets it
// read a consistent snapshot while the actor commits.

import Database from 'better-sqlite3';
import type { DirChangesResult, Message, MyRoom, RoomInfo } from '../../contract.ts';
import { dirChanges, type DirChangeQueries } from '../dir-changes.ts';
import { countUnread, myRooms, type MyRoomQueries } from '../my-rooms.ts';
import { roomInfo, toMessage, toRoomRow, type MessageRow, type RoomDbRow } from '../rows.ts';
import { dialectSql, SQL, SQLITE } from '../sql.ts';
import type { MessageReader, PageQuery } from '../store.ts';

const SQLITE_SQL = dialectSql(SQLITE);

export class SqliteReader implements MessageReader {
  private readonly db: Database.Database;
  private readonly st;

  constructor(path: string) {
    this.db = new Database(path, { readonly: true, fileMustExist: true });
    this.db.pragma('busy_timeout = 5000');
    this.st = {
      before: this.db.prepare<[string, bigint, number, number], MessageRow>(SQL.before),
      after: this.db.prepare<[string, bigint, number, number], MessageRow>(SQL.after),
      latest: this.db.prepare<[string, number, number], MessageRow>(SQL.latest),
      seqOf: this.db.prepare<[string, bigint], { seq: number }>(SQL.seqOf),
      seqAt: this.db.prepare<[string, bigint], { seq: number }>(SQL.seqAt),
      bySubject: this.db.prepare<[string], RoomDbRow>(SQLITE_SQL.roomsBySubject),
      members: this.db.prepare<[string], { user: string }>(SQL.members),
      myRooms: this.db.prepare<[string, string, string], RoomDbRow & { read_seq: number | null }>(SQLITE_SQL.myRooms),
      range: this.db.prepare<[string, number, number], MessageRow>(SQL.range),
      lastSeq: this.db.prepare<[string], { id: string; last_seq: number }>(SQLITE_SQL.lastSeqs),
      firstLive: this.db.prepare<[string, number], { seq: number }>(SQL.firstLive),
      sendersAfter: this.db.prepare<[string, number, number, number], { from_id: string; at: number }>(SQL.sendersAfter),
      dirVersion: this.db.prepare<[], { v: number }>(SQL.dirVersion),
      roomChanges: this.db.prepare<[number, number], RoomDbRow & { dir_version: number }>(SQLITE_SQL.roomChanges),
      blockChanges: this.db.prepare<[number, number], { blocker: string; blocked: string; version: number; active: number }>(SQL.blockChanges),
    };
    const st = this.st;
    this.mine = {
      rooms: (user) => st.myRooms.all(user, user, user),
      members: (room) => this.members(room),
      latest: (room, notBefore, limit) => st.latest.all(room, notBefore, limit),
      before: (room, tsid, notBefore, limit) => st.before.all(room, tsid, notBefore, limit),
      firstLive: (room, notBefore) => st.firstLive.get(room, notBefore)?.seq ?? null,
      sendersAfter: (room, seq, upTo, limit) => st.sendersAfter.all(room, seq, upTo, limit),
    };
    this.changes = {
      version: () => st.dirVersion.get()!.v,
      rooms: (since, limit) => st.roomChanges.all(since, limit),
      members: (room) => this.members(room),
      blocks: (since, limit) => st.blockChanges.all(since, limit),
    };
  }

  private readonly mine: MyRoomQueries;
  private readonly changes: DirChangeQueries;

  seqAt(room: string, id: bigint): number {
    return this.st.seqAt.get(room, id)?.seq ?? 0;
  }

  roomsBySubject(subject: string): RoomInfo[] {
    return this.st.bySubject.all(subject).map((r) => roomInfo(toRoomRow(r), this.members(r.id)));
  }

  myRooms(user: string, notBefore: number, blocked: string[]): Promise<MyRoom[]> {
    return myRooms(this.mine, user, notBefore, blocked);
  }

  unread(room: string, after: number, upTo: number, notBefore: number, blocked: string[]): Promise<number> {
    return countUnread(this.mine, room, upTo, after, notBefore, new Set(blocked));
  }

  dirChanges(since: number, limit: number): Promise<DirChangesResult> {
    return dirChanges(this.changes, since, limit);
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

  private members(room: string): string[] {
    return this.st.members.all(room).map((m) => m.user);
  }

  close(): void {
    this.db.close();
  }
}
