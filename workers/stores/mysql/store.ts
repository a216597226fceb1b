// MySQL/MariaDB (mysql2): the write side. The actor owns one write connection (every transaction
// goes through it, one at a time) and a small pool for its lookups. Group commit is one
// transaction per batch with multi-row INSERTs, sent as one multi-statement query (several when
// the batch is larger than the server's max_allowed_packet).

import mysql from 'mysql2/promise';
import type { Message } from '../../contract.ts';
import { toMessage, toRoomRow, type MessageRow, type RoomDbRow } from '../rows.ts';
import { tsidToString } from '../../ids.ts';
import { RETRACTION, SQL } from '../sql.ts';
import { cidKey, type AssignUnderLock, type CidHit, type ClusterStore, type DirectoryStore, type MarkerWrite, type MessageStore, type MessageType, type NewMessage, type RoomRow, type TargetRow, type Unstored } from '../store.ts';
import { messageEvents, type NewEvent } from '../events.ts';
import { clusterCommit } from './cluster-commit.ts';
import { insertEvents, insertEventsOnce, MysqlEvents } from './events.ts';
import { pinnedPool, WriteConnection, type SessionSetup } from './connection.ts';
import { migrateMysql } from './migrations.ts';
import { advanceRooms, INSERT_CHUNK, insertMessages, moveMarkers, MYSQL_SQL, packets, retractions } from './statements.ts';

type RoomPacket = RoomDbRow & mysql.RowDataPacket;
type MessagePacket = MessageRow & mysql.RowDataPacket;

/**
 * Take the next directory version inside the transaction on `c`: the counter row stays locked
 * until it commits, so versions commit in the order they are taken.
 */
async function nextVersion(c: mysql.Connection): Promise<number> {
  await c.query('UPDATE directory_version SET v = LAST_INSERT_ID(v + 1)');
  const [rows] = await c.query<(mysql.RowDataPacket & { v: number })[]>('SELECT LAST_INSERT_ID() AS v');
  return Number(rows[0].v);
}

/**
 * A room's events are delivered in id order; a cluster's message commits take the room's row lock
 * before they insert theirs, so a directory change with events takes it too: the ids of one
 * room's rows then commit in the order they were given.
 */
async function lockRoom(c: mysql.Connection, room: string, events: NewEvent[]): Promise<void> {
  if (events.length > 0) await c.query('SELECT id FROM rooms WHERE id = ? FOR UPDATE', [room]);
}

export class MysqlStore implements MessageStore, DirectoryStore, ClusterStore {
  private readonly writer: WriteConnection;
  private readonly lookups: mysql.Pool;
  /** The host app's event outbox: its rows are written by this store's transactions. */
  readonly events: MysqlEvents;
  /** The last group commit failed (its outcome may be unknown): the next may repeat its messages. */
  private repeating = false;

  private constructor(url: string, idleTxTimeoutS: number, setup: SessionSetup) {
    this.writer = new WriteConnection(url, idleTxTimeoutS, setup);
    this.lookups = pinnedPool(url, 2, setup);
    this.events = new MysqlEvents(this.lookups);
  }

  /** Open and migrate; `idleTxTimeoutS` as WriteConnection's (0: off). */
  static async open(url: string, idleTxTimeoutS = 0, setup: SessionSetup = {}): Promise<MysqlStore> {
    const s = new MysqlStore(url, idleTxTimeoutS, setup);
    await s.writer.write((c) => migrateMysql(c));
    return s;
  }

  /** The most bytes one query to this server may carry (max_allowed_packet, less headroom). */
  get packetBytes(): number {
    return this.writer.packetBytes;
  }

  async findByCids(keys: [string, string][]): Promise<Map<string, CidHit>> {
    const out = new Map<string, CidHit>();
    for (let i = 0; i < keys.length; i += INSERT_CHUNK) {
      const chunk = keys.slice(i, i + INSERT_CHUNK);
      const [rows] = await this.lookups.query<(mysql.RowDataPacket & CidHit & { from_id: string; cid: string })[]>(
        'SELECT from_id, cid, room, seq, id, at FROM messages WHERE (from_id, cid) IN (?)', [chunk]);
      for (const r of rows) out.set(cidKey(r.from_id, r.cid), { room: r.room, seq: Number(r.seq), id: r.id, at: Number(r.at) });
    }
    return out;
  }

  /** One round trip per group commit (more past max_allowed_packet); on any error it is rolled back. */
  commit(msgs: NewMessage[], lastSeqs: Map<string, number>, marks: MarkerWrite[]): Promise<void> {
    return this.writer.write(async (c) => {
      const max = this.writer.packetBytes;
      // IGNORE: a commit repeated after an unknown outcome (the connection died after COMMIT was
      // sent) skips rows already there. Conflicting cids never reach here: the actor dedupes first.
      const parts: string[] = ['START TRANSACTION', ...insertMessages(msgs, true, max), ...retractions(msgs)];
      if (lastSeqs.size > 0) parts.push(...advanceRooms(lastSeqs, msgs));
      // After a failed commit the next one may repeat messages already stored: their events are
      // then written only where none is (rare, so one statement per event is fine).
      const events = messageEvents(msgs);
      parts.push(...moveMarkers(marks), ...(this.repeating ? insertEventsOnce(events, Date.now()) : insertEvents(events, Date.now())), 'COMMIT');
      try {
        for (const q of packets(parts, max)) await c.query(q);
      } catch (err) {
        this.repeating = true;
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      this.repeating = false;
    });
  }

  commitAssign(msgs: NewMessage[], marks: MarkerWrite[], assign: AssignUnderLock): Promise<Unstored> {
    return this.writer.write((c) => clusterCommit(c, msgs, marks, assign, this.writer.packetBytes));
  }

  async latest(room: string, limit: number, notBefore: number): Promise<Message[]> {
    const [rows] = await this.lookups.query<MessagePacket[]>(SQL.latest, [room, notBefore, limit]);
    return rows.reverse().map(toMessage);
  }

  purgeBefore(cutoff: bigint, max: number): Promise<number> {
    // Small batches by primary-key range: short locks, off the hot path.
    return this.writer.tx(async (c) => {
      const [r] = await c.query<mysql.ResultSetHeader>('DELETE FROM messages WHERE tsid < ? ORDER BY tsid LIMIT ?', [cutoff, max]);
      await c.query(RETRACTION.eraseExpiredEdits, [tsidToString(cutoff)]);
      return r.affectedRows;
    });
  }

  async retractTarget(room: string, tsid: bigint): Promise<TargetRow | null> {
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & { from_id: string; type: MessageType; deleted: number })[]>(SQL.retractTarget, [tsid, room]);
    return rows.length === 0 ? null : { fromId: rows[0].from_id, type: rows[0].type, deleted: Number(rows[0].deleted) !== 0 };
  }

  async deleteEventOf(target: string): Promise<CidHit | null> {
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & CidHit)[]>(SQL.deleteEvent, [target]);
    return rows.length === 0 ? null : { room: rows[0].room, seq: Number(rows[0].seq), id: rows[0].id, at: Number(rows[0].at) };
  }

  async reads(room: string): Promise<[string, number][]> {
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & { user: string; seq: number })[]>(SQL.reads, [room]);
    return rows.map((r) => [r.user, Number(r.seq)]);
  }

  async getRoom(id: string): Promise<RoomRow | null> {
    const [rows] = await this.lookups.query<RoomPacket[]>(MYSQL_SQL.getRoom, [id]);
    return rows.length > 0 ? toRoomRow(rows[0]) : null;
  }

  async findDirect(dmKey: string): Promise<RoomRow | null> {
    const [rows] = await this.lookups.query<RoomPacket[]>(MYSQL_SQL.findDirect, [dmKey]);
    return rows.length > 0 ? toRoomRow(rows[0]) : null;
  }

  createRoom(row: RoomRow, members: string[], events: NewEvent[] = []): Promise<void> {
    return this.writer.tx(async (c) => {
      await c.query(SQL.createRoom, [row.id, row.kind, row.name, row.subject, row.epoch, row.lastSeq, row.createdAt, row.dmKey, row.createdBy]);
      if (members.length > 0) await c.query(MYSQL_SQL.addMembers, [members.map((u) => [row.id, u])]);
      for (const q of insertEvents(events, Date.now())) await c.query(q);
    });
  }

  deleteRoom(id: string, events: NewEvent[] = []): Promise<number> {
    return this.writer.tx(async (c) => {
      await lockRoom(c, id, events);
      await c.query(SQL.deleteMessages, [id]);
      await c.query(SQL.deleteMembers, [id]);
      await c.query(SQL.deleteMarkers, [id]);
      const v = await nextVersion(c);
      await c.query(SQL.tombstone, [v, id]);
      for (const q of insertEvents(events, Date.now())) await c.query(q);
      return v;
    });
  }

  async members(room: string): Promise<string[]> {
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & { user: string })[]>(SQL.members, [room]);
    return rows.map((r) => r.user);
  }

  setMembers(room: string, users: string[], present: boolean, events: NewEvent[] = []): Promise<number> {
    return this.writer.tx(async (c) => {
      await lockRoom(c, room, events);
      if (users.length > 0) {
        if (present) await c.query(MYSQL_SQL.addMembers, [users.map((u) => [room, u])]);
        else await c.query(SQL.removeMembers, [room, users]);
      }
      const v = await nextVersion(c);
      await c.query(SQL.roomVersion, [v, room]);
      for (const q of insertEvents(events, Date.now())) await c.query(q);
      return v;
    });
  }

  setBlock(blocker: string, blocked: string, on: boolean, events: NewEvent[] = []): Promise<number> {
    return this.writer.tx(async (c) => {
      await c.query(on ? MYSQL_SQL.block : SQL.unblock, [blocker, blocked]);
      const v = await nextVersion(c);
      await c.query(MYSQL_SQL.blockVersion, [blocker, blocked, v]);
      for (const q of insertEvents(events, Date.now())) await c.query(q);
      return v;
    });
  }

  async allBlocks(): Promise<[string, string][]> {
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & { blocker: string; blocked: string })[]>(SQL.allBlocks);
    return rows.map((r) => [r.blocker, r.blocked]);
  }

  async dirVersion(): Promise<number> {
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & { v: number })[]>(SQL.dirVersion);
    return Number(rows[0].v);
  }

  async roomsCreatedBy(user: string): Promise<number> {
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & { n: number })[]>(SQL.roomsCreatedBy, [user]);
    return Number(rows[0].n);
  }

  async blockCount(blocker: string): Promise<number> {
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & { n: number })[]>(SQL.blockCount, [blocker]);
    return Number(rows[0].n);
  }

  async blockersOf(user: string, users: string[]): Promise<string[]> {
    if (users.length === 0) return [];
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & { blocker: string })[]>('SELECT blocker FROM blocks WHERE blocked = ? AND blocker IN (?)', [user, users]);
    return rows.map((r) => r.blocker);
  }

  async close(): Promise<void> {
    await this.writer.close();
    await this.lookups.end().catch(() => undefined);
  }
}
