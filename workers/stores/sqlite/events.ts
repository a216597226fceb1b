// SQLite's event outbox (workers/stores/events.ts) on the actor's one write connection: rows are
// inserted inside the store's own transactions (insert), and delivery's reads and marks are short
// statements of their own between group commits. Lists of ids or rooms bind as one JSON array.

import type Database from 'better-sqlite3';
import { EVENT_COLS, OVERFLOW_ERROR, STATE_CODE, toStoredEvent, type DueRooms, type EventDbRow, type EventQuery, type EventStore, type NewEvent, type StoredEvent } from '../events.ts';

const IDS = 'SELECT value FROM json_each(?)';

export class SqliteEvents implements EventStore {
  private readonly st;

  constructor(private readonly db: Database.Database) {
    this.st = {
      insert: db.prepare('INSERT INTO webhook_events (room, type, at, message_id, body, state, done_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      // Each room's oldest pending event (the index's first row per room), due or not.
      heads: db.prepare<[], { room: string; next_at: number }>(
        `SELECT e.room, e.next_at FROM webhook_events e
           JOIN (SELECT room, MIN(id) AS id FROM webhook_events WHERE state = 0 GROUP BY room) h ON e.id = h.id
          ORDER BY e.id`),
      pendingOf: db.prepare<[string, number], EventDbRow>(`SELECT ${EVENT_COLS} FROM webhook_events WHERE state = 0 AND room IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?`),
      delivered: db.prepare(`UPDATE webhook_events SET state = 1, done_at = ?, error = NULL WHERE state = 0 AND id IN (${IDS})`),
      failed: db.prepare(`UPDATE webhook_events SET attempts = attempts + 1, next_at = ?, error = ? WHERE state = 0 AND id IN (${IDS})`),
      pastMax: db.prepare(`UPDATE webhook_events SET state = 2, done_at = ? WHERE state = 0 AND attempts >= ? AND id IN (${IDS})`),
      dead: db.prepare(`UPDATE webhook_events SET state = 2, done_at = ?, error = ? WHERE state = 0 AND id IN (${IDS})`),
      count: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM webhook_events WHERE state = 0'),
      list: db.prepare<[number, number], EventDbRow>(`SELECT ${EVENT_COLS} FROM webhook_events WHERE id >= ? ORDER BY id LIMIT ?`),
      listState: db.prepare<[number, number, number], EventDbRow>(`SELECT ${EVENT_COLS} FROM webhook_events WHERE state = ? AND id >= ? ORDER BY id LIMIT ?`),
      replayFrom: db.prepare('UPDATE webhook_events SET state = 0, attempts = 0, next_at = 0, done_at = NULL WHERE state <> 0 AND id >= ?'),
      replayIds: db.prepare(`UPDATE webhook_events SET state = 0, attempts = 0, next_at = 0, done_at = NULL WHERE state <> 0 AND id IN (${IDS})`),
      purge: db.prepare('DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events WHERE state <> 0 AND done_at < ? LIMIT ?)'),
      erase: db.prepare("UPDATE webhook_events SET body = json_set(body, '$.message.text', '') WHERE message_id = ? AND state <> 1"),
    };
  }

  /** Inside the caller's transaction. */
  insert(events: NewEvent[], now: number): void {
    for (const e of events) this.st.insert.run(e.room, e.type, e.at, e.messageId, e.body, e.dead ? STATE_CODE.dead : STATE_CODE.pending, e.dead ? now : null, e.dead ? OVERFLOW_ERROR : null);
  }

  dueRooms(now: number, max: number): DueRooms {
    const rooms: string[] = [];
    let nextAt: number | null = null;
    for (const h of this.st.heads.iterate()) {
      if (h.next_at <= now) {
        if (rooms.length < max) rooms.push(h.room);
      } else if (nextAt === null || h.next_at < nextAt) nextAt = h.next_at;
    }
    return { rooms, nextAt };
  }

  /** One node: every room is this node's. */
  leaseRooms(_node: number, rooms: string[]): string[] {
    return rooms;
  }

  pendingOf(rooms: string[], limit: number): StoredEvent[] {
    return this.st.pendingOf.all(JSON.stringify(rooms), limit).map(toStoredEvent);
  }

  delivered(ids: number[], now: number): void {
    this.st.delivered.run(now, JSON.stringify(ids));
  }

  failed(ids: number[], error: string, nextAt: number, maxAttempts: number, now: number): number {
    const list = JSON.stringify(ids);
    return this.db.transaction(() => {
      this.st.failed.run(nextAt, error, list);
      return this.st.pastMax.run(now, maxAttempts, list).changes;
    })();
  }

  deadLetter(ids: number[], error: string, now: number): void {
    this.st.dead.run(now, error, JSON.stringify(ids));
  }

  pendingCount(): number {
    return this.st.count.get()!.n;
  }

  listEvents(q: EventQuery): StoredEvent[] {
    const rows = q.state === null ? this.st.list.all(q.from, q.limit) : this.st.listState.all(STATE_CODE[q.state], q.from, q.limit);
    return rows.map(toStoredEvent);
  }

  replay(sel: { from: number } | { ids: number[] }): number {
    return ('from' in sel ? this.st.replayFrom.run(sel.from) : this.st.replayIds.run(JSON.stringify(sel.ids))).changes;
  }

  purgeEvents(before: number, max: number): number {
    return this.st.purge.run(before, max).changes;
  }

  eraseText(messageId: string): number {
    return this.st.erase.run(messageId).changes;
  }
}
