// The MySQL write statements a group commit is built from (values escaped by mysql2's formatter,
// never concatenated): chunked multi-row INSERTs, the rooms' advance, read-marker moves.

import mysql from 'mysql2/promise';
import { dialectSql, MYSQL } from '../sql.ts';
import type { MarkerWrite, NewMessage } from '../store.ts';

export const MYSQL_SQL = dialectSql(MYSQL);

/** Rows per multi-row INSERT statement, and pairs per cid lookup (bounded packet size). */
export const INSERT_CHUNK = 500;

/**
 * Multi-row INSERTs of messages, in chunks. `ignore`: skip messages already stored (a commit
 * repeated after an unknown outcome); otherwise a (sender, cid) already stored fails the statement.
 */
export function insertMessages(msgs: NewMessage[], ignore: boolean): string[] {
  const parts: string[] = [];
  for (let i = 0; i < msgs.length; i += INSERT_CHUNK) {
    const rows = msgs.slice(i, i + INSERT_CHUNK).map((m) => [m.tsid, m.id, m.room, m.seq, m.type, m.fromId, m.fromName, m.text, m.at, m.cid]);
    parts.push(mysql.format(ignore ? MYSQL_SQL.insertMessages : MYSQL_SQL.insertNewMessages, [rows]));
  }
  return parts;
}

/**
 * Advance the rooms of `lastSeqs` to those seqs, and each room's last_tsid to its newest id in
 * `msgs` (never backwards).
 */
export function advanceRooms(lastSeqs: Map<string, number>, msgs: NewMessage[]): string {
  const lastTsid = new Map<string, bigint>();
  for (const m of msgs) lastTsid.set(m.room, m.tsid);
  const seqs = [...lastSeqs].map(([room, seq]) => mysql.format('WHEN ? THEN GREATEST(last_seq, ?)', [room, seq])).join(' ');
  const tsids = [...lastTsid].map(([room, t]) => mysql.format('WHEN ? THEN GREATEST(last_tsid, ?)', [room, t])).join(' ');
  return mysql.format(`UPDATE rooms SET last_seq = CASE id ${seqs} ELSE last_seq END${tsids ? `, last_tsid = CASE id ${tsids} ELSE last_tsid END` : ''} WHERE id IN (?)`, [[...lastSeqs.keys()]]);
}

/** Marker moves as multi-row INSERTs: the forward moves, then the first markers. */
export function moveMarkers(marks: MarkerWrite[]): string[] {
  const parts: string[] = [];
  const upserts = marks.filter((k) => !k.ifAbsent).map((k) => [k.room, k.user, k.seq, k.id]);
  const firsts = marks.filter((k) => k.ifAbsent).map((k) => [k.room, k.user, k.seq, k.id]);
  if (upserts.length > 0) parts.push(mysql.format(MYSQL_SQL.markForward, [upserts]));
  if (firsts.length > 0) parts.push(mysql.format(MYSQL_SQL.markIfAbsent, [firsts]));
  return parts;
}

/** One marker move as its own statement (in the order of the batch). */
export function moveMarker(k: MarkerWrite): string {
  return mysql.format(k.ifAbsent ? MYSQL_SQL.markIfAbsent : MYSQL_SQL.markForward, [[[k.room, k.user, k.seq, k.id]]]);
}
