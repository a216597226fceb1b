// MySQL/MariaDB (mysql2): the read side, a connection pool on the front thread (its reads are
// asynchronous I/O, so they never block the event loop).

import mysql from 'mysql2/promise';
import type { DirChangesResult, Message, MyRoom, RoomInfo } from '../../contract.ts';
import { dirChanges, type DirChangeQueries } from '../dir-changes.ts';
import { countUnread, myRooms, type MyRoomQueries } from '../my-rooms.ts';
import { roomInfo, toMessage, toRoomRow, type MessageRow, type RoomDbRow } from '../rows.ts';
import { SQL } from '../sql.ts';
import type { MessageReader, PageQuery } from '../store.ts';
import { pinnedPool, type SessionSetup } from './connection.ts';
import { MYSQL_SQL } from './statements.ts';

type RoomPacket = RoomDbRow & mysql.RowDataPacket;
type MessagePacket = MessageRow & mysql.RowDataPacket;

export class MysqlReader implements MessageReader {
  private readonly pool: mysql.Pool;

  constructor(url: string, connections: number, setup: SessionSetup = {}) {
    this.pool = pinnedPool(url, connections, setup);
  }

  async page(q: PageQuery): Promise<Message[]> {
    const n = q.limit + 1;
    if (q.after !== undefined) {
      const [rows] = await this.pool.query<MessagePacket[]>(SQL.after, [q.room, q.after, q.notBefore, n]);
      return rows.map(toMessage);
    }
    const [rows] = q.before !== undefined
      ? await this.pool.query<MessagePacket[]>(SQL.before, [q.room, q.before, q.notBefore, n])
      : await this.pool.query<MessagePacket[]>(SQL.latest, [q.room, q.notBefore, n]);
    return rows.reverse().map(toMessage);
  }

  async seqOf(room: string, id: bigint): Promise<number | null> {
    const [rows] = await this.pool.query<(mysql.RowDataPacket & { seq: number })[]>(SQL.seqOf, [room, id]);
    return rows.length > 0 ? Number(rows[0].seq) : null;
  }

  async seqAt(room: string, id: bigint): Promise<number> {
    const [rows] = await this.pool.query<(mysql.RowDataPacket & { seq: number })[]>(SQL.seqAt, [room, id]);
    return rows.length > 0 ? Number(rows[0].seq) : 0;
  }

  async range(room: string, from: number, to: number): Promise<Message[]> {
    const [rows] = await this.pool.query<MessagePacket[]>(SQL.range, [room, from, to]);
    return rows.map(toMessage);
  }

  async lastSeqs(rooms: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (rooms.length === 0) return out;
    const [rows] = await this.pool.query<(mysql.RowDataPacket & { id: string; last_seq: number })[]>(MYSQL_SQL.lastSeqs, [rooms]);
    for (const r of rows) out.set(r.id, Number(r.last_seq));
    return out;
  }

  private async membersOf(room: string): Promise<string[]> {
    const [rows] = await this.pool.query<(mysql.RowDataPacket & { user: string })[]>(SQL.members, [room]);
    return rows.map((r) => r.user);
  }

  async roomsBySubject(subject: string): Promise<RoomInfo[]> {
    const [rows] = await this.pool.query<RoomPacket[]>(MYSQL_SQL.roomsBySubject, [subject]);
    return Promise.all(rows.map(async (r) => roomInfo(toRoomRow(r), await this.membersOf(r.id))));
  }

  private async rows<T extends mysql.RowDataPacket>(sql: string, values: unknown[]): Promise<T[]> {
    const [rows] = await this.pool.query<T[]>(sql, values);
    return rows;
  }

  private readonly mine: MyRoomQueries = {
    rooms: (user) => this.rows<RoomPacket & { read_seq: number | null }>(MYSQL_SQL.myRooms, [user, user, user]),
    members: (room) => this.membersOf(room),
    latest: (room, notBefore, limit) => this.rows<MessagePacket>(SQL.latest, [room, notBefore, limit]),
    before: (room, tsid, notBefore, limit) => this.rows<MessagePacket>(SQL.before, [room, tsid, notBefore, limit]),
    firstLive: async (room, notBefore) => {
      const [r] = await this.rows<mysql.RowDataPacket & { seq: number }>(SQL.firstLive, [room, notBefore]);
      return r === undefined ? null : Number(r.seq);
    },
    sendersAfter: (room, seq, upTo, limit) => this.rows<mysql.RowDataPacket & { from_id: string; at: number }>(SQL.sendersAfter, [room, seq, upTo, limit]),
  };

  private readonly changes: DirChangeQueries = {
    version: async () => Number((await this.rows<mysql.RowDataPacket & { v: number }>(SQL.dirVersion, []))[0].v),
    rooms: (since, limit) => this.rows<RoomPacket & { dir_version: number }>(MYSQL_SQL.roomChanges, [since, limit]),
    members: (room) => this.membersOf(room),
    blocks: (since, limit) => this.rows<mysql.RowDataPacket & { blocker: string; blocked: string; version: number; active: number }>(SQL.blockChanges, [since, limit]),
  };

  myRooms(user: string, notBefore: number, blocked: string[]): Promise<MyRoom[]> {
    return myRooms(this.mine, user, notBefore, blocked);
  }

  unread(room: string, after: number, upTo: number, notBefore: number, blocked: string[]): Promise<number> {
    return countUnread(this.mine, room, upTo, after, notBefore, new Set(blocked));
  }

  dirChanges(since: number, limit: number): Promise<DirChangesResult> {
    return dirChanges(this.changes, since, limit);
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
