// The cluster's group commit on MySQL, two round trips: lock the batch's rooms and read their
// last seq and id; let the actor's assigner give the messages their ids and seqs; then insert,
// advance the rooms, move markers and commit. The lock is held for one round trip, and only by
// commits that touch the same rooms. A batch larger than max_allowed_packet goes as several
// queries inside the same transaction.

import mysql from 'mysql2/promise';
import { DuplicateCidError, type AssignUnderLock, type CidHit, type MarkerWrite, type NewMessage, type RoomHead, type Unstored } from '../store.ts';
import { messageEvents } from '../events.ts';
import { insertEvents } from './events.ts';
import { advanceRooms, INSERT_CHUNK, insertMessages, moveMarker, packets, retractions } from './statements.ts';

/** MySQL error codes the cluster commit handles itself. */
const ER_DUP_ENTRY = 'ER_DUP_ENTRY';

type HeadRow = mysql.RowDataPacket & { id: string; last_seq: number; last_tsid: string | number };

/** Run on the write connection `c`, queries of at most `maxBytes`; see ClusterStore.commitAssign. */
export async function clusterCommit(c: mysql.Connection, msgs: NewMessage[], marks: MarkerWrite[], assign: AssignUnderLock, maxBytes: number): Promise<Unstored> {
  // A repeat after an unknown outcome: that batch's messages kept their ids; those stored are
  // done (answered with the ids they have), the rest, and what was accepted since (seq 0), are
  // committed now in a new transaction, with the marks.
  let todo = msgs;
  const kept = msgs.filter((m) => m.seq > 0);
  if (kept.length > 0) {
    const there = new Set<bigint>();
    for (let i = 0; i < kept.length; i += INSERT_CHUNK) {
      const [rows] = await c.query<(mysql.RowDataPacket & { tsid: string | number })[]>('SELECT tsid FROM messages WHERE tsid IN (?)', [kept.slice(i, i + INSERT_CHUNK).map((m) => m.tsid)]);
      for (const r of rows) there.add(BigInt(r.tsid));
    }
    todo = msgs.filter((m) => m.seq === 0 || !there.has(m.tsid));
    for (const m of todo) m.seq = 0;
  }
  const rooms = [...new Set([...todo.map((m) => m.room), ...marks.filter((k) => k.seq < 0).map((k) => k.room)])].sort();
  let commitSent = false;
  try {
    const heads = new Map<string, RoomHead>();
    // Locks in id order (chunk after chunk), so two nodes never deadlock; the first chunk rides
    // with START TRANSACTION.
    if (rooms.length === 0) await c.query('START TRANSACTION');
    for (let i = 0; i < rooms.length; i += INSERT_CHUNK) {
      const lock = mysql.format('SELECT id, last_seq, last_tsid FROM rooms WHERE id IN (?) AND deleted = 0 ORDER BY id FOR UPDATE', [rooms.slice(i, i + INSERT_CHUNK)]);
      const [res] = await c.query(i === 0 ? `START TRANSACTION;\n${lock}` : lock);
      const locked = (i === 0 ? (res as unknown[])[1] : res) as HeadRow[];
      for (const r of locked) heads.set(r.id, { seq: Number(r.last_seq), id: '', tsid: BigInt(r.last_tsid) });
    }
    const deletedFirst = await deletedBefore(c, todo, heads);
    const placed = assign(deletedFirst.size === 0 ? todo : todo.filter((m) => !deletedFirst.has(m)), marks, heads);
    const stored = placed.stored;
    // No IGNORE: a (sender, cid) another node stored first must fail the batch (DuplicateCidError).
    const parts = insertMessages(stored, false, maxBytes);
    parts.push(...retractions(stored));
    if (stored.length > 0) parts.push(...advanceRooms(new Map(stored.map((m) => [m.room, m.seq])), stored));
    for (const k of placed.marks) parts.push(moveMarker(k));
    // The events of the stored messages, now that they have their ids, under the same room locks.
    parts.push(...insertEvents(messageEvents(stored), Date.now()), 'COMMIT');
    const queries = packets(parts, maxBytes);
    for (let i = 0; i < queries.length; i++) {
      // Only the query that carries the COMMIT can leave the outcome unknown.
      if (i === queries.length - 1) commitSent = true;
      await c.query(queries[i]);
    }
    return { missing: placed.missing, deletedFirst };
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

/**
 * The batch's DELETE events (in rooms that exist) whose target is already deleted, each with the
 * DELETE stored first.
 *
 * Two nodes may accept a delete of the same message at once (each actor checks only the store and
 * its own sends in flight); the room's row lock, taken above, orders their commits, and this read,
 * the transaction's first consistent read, comes after it, so the later commit sees the earlier
 * one's DELETE and stores nothing: its caller gets the first one's ack, as a repeated delete on one
 * node does (workers/persistence/retraction.ts).
 */
async function deletedBefore(c: mysql.Connection, msgs: NewMessage[], heads: Map<string, RoomHead>): Promise<Map<NewMessage, CidHit>> {
  const out = new Map<NewMessage, CidHit>();
  let deletes: NewMessage[] | null = null;
  for (const m of msgs) if (m.type === 'DELETE' && heads.has(m.room)) (deletes ??= []).push(m);
  if (deletes === null) return out; // no round trip for a batch without a DELETE
  const first = new Map<string, CidHit>();
  for (let i = 0; i < deletes.length; i += INSERT_CHUNK) {
    const [rows] = await c.query<(mysql.RowDataPacket & CidHit & { target: string })[]>(
      "SELECT target, room, seq, id, at FROM messages WHERE target IN (?) AND type = 'DELETE' ORDER BY tsid", [deletes.slice(i, i + INSERT_CHUNK).map((m) => m.target)]);
    for (const r of rows) if (!first.has(r.target)) first.set(r.target, { room: r.room, seq: Number(r.seq), id: r.id, at: Number(r.at) });
  }
  for (const m of deletes) {
    const hit = first.get(m.target!);
    if (hit !== undefined && hit.room === m.room) out.set(m, hit);
  }
  return out;
}
