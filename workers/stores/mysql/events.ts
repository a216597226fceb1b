// MySQL's event outbox (workers/stores/events.ts): rows are inserted by statements that ride the
// store's own write transactions (insertEvents); delivery's reads, leases and marks are single
// autocommit statements on the lookup pool, off the write connection the group commit uses. In a
// cluster a node delivers only the rooms it leases (webhook_leases), so each room's events go
// out from one node, in order.

import mysql from 'mysql2/promise';
import { EVENT_COLS, OVERFLOW_ERROR, STATE_CODE, toStoredEvent, type DueRooms, type EventDbRow, type EventQuery, type EventStore, type NewEvent, type StoredEvent } from '../events.ts';
import { eraseTextSql, INSERT_CHUNK } from './statements.ts';

type Rows<T> = (mysql.RowDataPacket & T)[];

/** Multi-row INSERTs of outbox rows, to run inside the caller's transaction. */
export function insertEvents(events: NewEvent[], now: number): string[] {
  const parts: string[] = [];
  for (let i = 0; i < events.length; i += INSERT_CHUNK) {
    const rows = events.slice(i, i + INSERT_CHUNK).map((e) => [e.room, e.type, e.at, e.messageId, e.body, e.dead ? STATE_CODE.dead : STATE_CODE.pending, e.dead ? now : null, e.dead ? OVERFLOW_ERROR : null]);
    parts.push(mysql.format('INSERT INTO webhook_events (room, type, at, message_id, body, state, done_at, error) VALUES ?', [rows]));
  }
  return parts;
}

/**
 * As insertEvents, for a commit that may repeat one whose outcome is unknown: a message event is
 * written only if the same one (message, type, time) is not there yet, so a repeat does not send it
 * twice under two ids.
 */
export function insertEventsOnce(events: NewEvent[], now: number): string[] {
  return events.map((e) => e.messageId === null ? insertEvents([e], now)[0] : mysql.format(
    'INSERT INTO webhook_events (room, type, at, message_id, body, state, done_at, error) SELECT ?, ?, ?, ?, ?, ?, ?, ? FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM webhook_events WHERE message_id = ? AND type = ? AND at = ?)',
    [e.room, e.type, e.at, e.messageId, e.body, e.dead ? STATE_CODE.dead : STATE_CODE.pending, e.dead ? now : null, e.dead ? OVERFLOW_ERROR : null, e.messageId, e.type, e.at]));
}

export class MysqlEvents implements EventStore {
  constructor(private readonly pool: mysql.Pool) {}

  async dueRooms(now: number, max: number): Promise<DueRooms> {
    const [heads] = await this.pool.query<Rows<{ room: string; next_at: number }>>(
      `SELECT e.room, e.next_at FROM webhook_events e
         JOIN (SELECT room, MIN(id) AS id FROM webhook_events WHERE state = 0 GROUP BY room) h ON e.id = h.id
        ORDER BY e.id`);
    const rooms: string[] = [];
    let nextAt: number | null = null;
    for (const h of heads) {
      const at = Number(h.next_at);
      if (at <= now) {
        if (rooms.length < max) rooms.push(h.room);
      } else if (nextAt === null || at < nextAt) nextAt = at;
    }
    return { rooms, nextAt };
  }

  async leaseRooms(node: number, rooms: string[], now: number, until: number): Promise<string[]> {
    if (rooms.length === 0) return [];
    // Renew ours and take expired ones (the row lock makes two nodes' updates of one row take
    // turns; the second finds it no longer expired), then claim rooms nobody has leased yet.
    await this.pool.query('UPDATE webhook_leases SET node = ?, until = ? WHERE room IN (?) AND (node = ? OR until < ?)', [node, until, rooms, node, now]);
    await this.pool.query('INSERT IGNORE INTO webhook_leases (room, node, until) VALUES ?', [rooms.map((r) => [r, node, until])]);
    const [mine] = await this.pool.query<Rows<{ room: string }>>('SELECT room FROM webhook_leases WHERE room IN (?) AND node = ? AND until >= ?', [rooms, node, now]);
    const held = new Set(mine.map((r) => r.room));
    return rooms.filter((r) => held.has(r));
  }

  async pendingOf(rooms: string[], limit: number): Promise<StoredEvent[]> {
    if (rooms.length === 0) return [];
    const [rows] = await this.pool.query<Rows<EventDbRow>>(`SELECT ${EVENT_COLS} FROM webhook_events WHERE state = 0 AND room IN (?) ORDER BY id LIMIT ?`, [rooms, limit]);
    return rows.map(toStoredEvent);
  }

  async delivered(ids: number[], now: number): Promise<void> {
    if (ids.length > 0) await this.pool.query('UPDATE webhook_events SET state = 1, done_at = ?, error = NULL WHERE state = 0 AND id IN (?)', [now, ids]);
  }

  async failed(ids: number[], error: string, nextAt: number, maxAttempts: number, now: number): Promise<number> {
    if (ids.length === 0) return 0;
    // One statement: attempts + 1, and past the maximum straight to the dead-letter list.
    const [r] = await this.pool.query<mysql.ResultSetHeader>(
      'UPDATE webhook_events SET attempts = attempts + 1, next_at = ?, error = ?, done_at = IF(attempts >= ?, ?, NULL), state = IF(attempts >= ?, 2, 0) WHERE state = 0 AND id IN (?)',
      [nextAt, error.slice(0, 500), maxAttempts, now, maxAttempts, ids]);
    if (r.affectedRows === 0) return 0;
    const [dead] = await this.pool.query<Rows<{ n: number }>>('SELECT COUNT(*) AS n FROM webhook_events WHERE state = 2 AND done_at = ? AND id IN (?)', [now, ids]);
    return Number(dead[0].n);
  }

  async deadLetter(ids: number[], error: string, now: number): Promise<void> {
    if (ids.length > 0) await this.pool.query('UPDATE webhook_events SET state = 2, done_at = ?, error = ? WHERE state = 0 AND id IN (?)', [now, error.slice(0, 500), ids]);
  }

  async pendingCount(): Promise<number> {
    const [rows] = await this.pool.query<Rows<{ n: number }>>('SELECT COUNT(*) AS n FROM webhook_events WHERE state = 0');
    return Number(rows[0].n);
  }

  async listEvents(q: EventQuery): Promise<StoredEvent[]> {
    const [rows] = q.state === null
      ? await this.pool.query<Rows<EventDbRow>>(`SELECT ${EVENT_COLS} FROM webhook_events WHERE id >= ? ORDER BY id LIMIT ?`, [q.from, q.limit])
      : await this.pool.query<Rows<EventDbRow>>(`SELECT ${EVENT_COLS} FROM webhook_events WHERE state = ? AND id >= ? ORDER BY id LIMIT ?`, [STATE_CODE[q.state], q.from, q.limit]);
    return rows.map(toStoredEvent);
  }

  async replay(sel: { from: number } | { ids: number[] }): Promise<number> {
    const set = 'UPDATE webhook_events SET state = 0, attempts = 0, next_at = 0, done_at = NULL WHERE state <> 0 AND ';
    if ('ids' in sel && sel.ids.length === 0) return 0;
    const [r] = 'from' in sel
      ? await this.pool.query<mysql.ResultSetHeader>(set + 'id >= ?', [sel.from])
      : await this.pool.query<mysql.ResultSetHeader>(set + 'id IN (?)', [sel.ids]);
    return r.affectedRows;
  }

  async purgeEvents(before: number, max: number): Promise<number> {
    const [r] = await this.pool.query<mysql.ResultSetHeader>('DELETE FROM webhook_events WHERE state <> 0 AND done_at < ? ORDER BY id LIMIT ?', [before, max]);
    // Leases of rooms with nothing left to deliver for a long time.
    await this.pool.query('DELETE FROM webhook_leases WHERE until < ?', [before]);
    return r.affectedRows;
  }

  async eraseText(messageId: string): Promise<number> {
    const [r] = await this.pool.query<mysql.ResultSetHeader>(eraseTextSql(messageId));
    return r.affectedRows;
  }
}
