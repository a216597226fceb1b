// MySQL/MariaDB (mysql2): the read side, a connection pool on the front thread (its reads are
// asynchronous I/O, so they never block the event loop).

import mysql from 'mysql2/promise';
import type { Message, MyRoom, RoomInfo } from '../../contract.ts';
import { roomInfo, toMessage, toRoomRow, type MessageRow, type RoomDbRow } from '../rows.ts';
import { SQL } from '../sql.ts';
import type { MessageReader, PageQuery } from '../store.ts';
import { pinnedPool, type SessionSetup } from './connection.ts';

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
    const [rows] = await this.pool.query<(mysql.RowDataPacket & { id: string; last_seq: number })[]>(SQL.lastSeqs, [rooms]);
    for (const r of rows) out.set(r.id, Number(r.last_seq));
    return out;
  }

  private async membersOf(room: string): Promise<string[]> {
    const [rows] = await this.pool.query<(mysql.RowDataPacket & { user: string })[]>(SQL.members, [room]);
    return rows.map((r) => r.user);
  }

  async roomsBySubject(subject: string): Promise<RoomInfo[]> {
    const [rows] = await this.pool.query<RoomPacket[]>(SQL.roomsBySubject, [subject]);
    return Promise.all(rows.map(async (r) => roomInfo(toRoomRow(r), await this.membersOf(r.id))));
  }

  async myRooms(user: string, notBefore: number): Promise<MyRoom[]> {
    const [rows] = await this.pool.query<(RoomPacket & { read_seq: number | null })[]>(SQL.myRooms, [user, user, user]);
    return Promise.all(rows.map(async (r) => {
      const [last] = await this.pool.query<MessagePacket[]>(SQL.latest, [r.id, notBefore, 1]);
      return {
        info: roomInfo(toRoomRow(r), r.kind === 'public' ? [] : await this.membersOf(r.id)),
        lastSeq: Number(r.last_seq),
        readSeq: r.read_seq === null ? 0 : Number(r.read_seq),
        last: last.length > 0 ? toMessage(last[0]) : null,
      };
    }));
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
