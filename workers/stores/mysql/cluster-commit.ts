// The cluster's group commit on MySQL, two round trips: lock the batch's rooms and read their
// last seq and id; let the actor's assigner give the messages their ids and seqs; then insert,
// advance the rooms, move markers and commit. The lock is held for one round trip, and only by
// commits that touch the same rooms.

import mysql from 'mysql2/promise';
import { DuplicateCidError, type AssignUnderLock, type MarkerWrite, type NewMessage, type RoomHead } from '../store.ts';
import { advanceRooms, insertMessages, moveMarker } from './statements.ts';

/** MySQL error codes the cluster commit handles itself. */
const ER_DUP_ENTRY = 'ER_DUP_ENTRY';

/** Run on the write connection `c`; see ClusterStore.commitAssign. */
export async function clusterCommit(c: mysql.Connection, msgs: NewMessage[], marks: MarkerWrite[], assign: AssignUnderLock): Promise<Set<string>> {
  // A repeat after an unknown outcome: that batch's messages kept their ids; those stored are
  // done (answered with the ids they have), the rest, and what was accepted since (seq 0), are
  // committed now in a new transaction, with the marks.
  let todo = msgs;
  const kept = msgs.filter((m) => m.seq > 0);
  if (kept.length > 0) {
    const [rows] = await c.query<(mysql.RowDataPacket & { tsid: string | number })[]>('SELECT tsid FROM messages WHERE tsid IN (?)', [kept.map((m) => m.tsid)]);
    const there = new Set(rows.map((r) => BigInt(r.tsid)));
    todo = msgs.filter((m) => m.seq === 0 || !there.has(m.tsid));
    for (const m of todo) m.seq = 0;
  }
  const rooms = [...new Set([...todo.map((m) => m.room), ...marks.filter((k) => k.seq < 0).map((k) => k.room)])].sort();
  let commitSent = false;
  try {
    const heads = new Map<string, RoomHead>();
    if (rooms.length > 0) {
      const [res] = await c.query(
        mysql.format('START TRANSACTION; SELECT id, last_seq, last_tsid FROM rooms WHERE id IN (?) AND deleted = 0 ORDER BY id FOR UPDATE', [rooms]));
      const locked = (res as unknown[])[1] as (mysql.RowDataPacket & { id: string; last_seq: number; last_tsid: string | number })[];
      for (const r of locked) heads.set(r.id, { seq: Number(r.last_seq), id: '', tsid: BigInt(r.last_tsid) });
    } else {
      await c.query('START TRANSACTION');
    }
    const placed = assign(todo, marks, heads);
    const stored = placed.stored;
    // No IGNORE: a (sender, cid) another node stored first must fail the batch (DuplicateCidError).
    const parts = insertMessages(stored, false);
    if (stored.length > 0) parts.push(advanceRooms(new Map(stored.map((m) => [m.room, m.seq])), stored));
    for (const k of placed.marks) parts.push(moveMarker(k));
    parts.push('COMMIT');
    commitSent = true;
    await c.query(parts.join(';\n'));
    return placed.missing;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    // The COMMIT went out and the connection broke before its answer: it may have committed.
    // Keep the assignment, so the retry recognizes the batch by its first id instead of storing
    // it again under new seqs. Any other failure rolled back for sure: assign afresh.
    const code = (err as { code?: string }).code;
    const unknownOutcome = commitSent && ((err as { fatal?: boolean }).fatal === true || code === 'ECONNRESET' || code === 'PROTOCOL_CONNECTION_LOST' || code === 'EPIPE');
    if (!unknownOutcome) for (const m of todo) m.seq = 0;
    if (code === ER_DUP_ENTRY && /messages_sender_cid/.test((err as Error).message)) throw new DuplicateCidError((err as Error).message);
    throw err;
  }
}
