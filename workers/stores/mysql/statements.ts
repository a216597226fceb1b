// The MySQL write statements a group commit is built from (values escaped by mysql2's formatter,
// never concatenated): multi-row INSERTs in chunks bounded in rows and bytes, the rooms' advance,
// read-marker moves; and how they are packed into queries under max_allowed_packet.

import mysql from 'mysql2/promise';
import { tsidToBigInt } from '../../ids.ts';
import { dialectSql, MYSQL, RETRACTION } from '../sql.ts';
import type { MarkerWrite, NewMessage } from '../store.ts';

export const MYSQL_SQL = dialectSql(MYSQL);

/** Rows per multi-row statement (INSERT, room advance, marker moves), and pairs per cid lookup. */
export const INSERT_CHUNK = 500;

/**
 * Multi-row INSERTs of messages, in chunks of at most INSERT_CHUNK rows and `maxBytes` bytes.
 * `ignore`: skip messages already stored (a commit repeated after an unknown outcome); otherwise a
 * (sender, cid) already stored fails the statement.
 */
export function insertMessages(msgs: NewMessage[], ignore: boolean, maxBytes: number): string[] {
  const head = `${ignore ? MYSQL_SQL.insertMessages : MYSQL_SQL.insertNewMessages}`.replace(/\?$/, '');
  const parts: string[] = [];
  let rows: string[] = [];
  let bytes = Buffer.byteLength(head);
  for (const m of msgs) {
    const row = mysql.format('(?)', [[m.tsid, m.id, m.room, m.seq, m.type, m.fromId, m.fromName, m.text, m.at, m.cid, m.target]]);
    const size = Buffer.byteLength(row) + 2;
    if (rows.length > 0 && (rows.length === INSERT_CHUNK || bytes + size > maxBytes)) {
      parts.push(head + rows.join(', '));
      rows = [];
      bytes = Buffer.byteLength(head);
    }
    rows.push(row);
    bytes += size;
  }
  if (rows.length > 0) parts.push(head + rows.join(', '));
  return parts;
}

/**
 * Advance the rooms of `lastSeqs` to those seqs, and each room's last_tsid to its newest id in
 * `msgs` (never backwards); one statement per INSERT_CHUNK rooms.
 */
export function advanceRooms(lastSeqs: Map<string, number>, msgs: NewMessage[]): string[] {
  const lastTsid = new Map<string, bigint>();
  for (const m of msgs) lastTsid.set(m.room, m.tsid);
  const rooms = [...lastSeqs];
  const parts: string[] = [];
  for (let i = 0; i < rooms.length; i += INSERT_CHUNK) {
    const chunk = rooms.slice(i, i + INSERT_CHUNK);
    const seqs = chunk.map(([room, seq]) => mysql.format('WHEN ? THEN GREATEST(last_seq, ?)', [room, seq])).join(' ');
    const tsids = chunk.filter(([room]) => lastTsid.has(room)).map(([room]) => mysql.format('WHEN ? THEN GREATEST(last_tsid, ?)', [room, lastTsid.get(room)])).join(' ');
    parts.push(mysql.format(`UPDATE rooms SET last_seq = CASE id ${seqs} ELSE last_seq END${tsids ? `, last_tsid = CASE id ${tsids} ELSE last_tsid END` : ''} WHERE id IN (?)`, [chunk.map(([room]) => room)]));
  }
  return parts;
}

/**
 * Where DELETE and EDIT events take effect, in the commit transaction that stores them (after
 * their INSERT): the target's text is overwritten ('' or the new text), and earlier EDIT events of
 * the target (holding older text) are erased. InnoDB overwrites the row in place; its redo and undo
 * logs keep the old bytes until they are purged (docs/durability.md). Anything else a retraction
 * must change in the same transaction belongs here.
 */
export function retractions(msgs: NewMessage[]): string[] {
  const parts: string[] = [];
  for (const m of msgs) {
    if (m.target === null) continue;
    const target = tsidToBigInt(m.target);
    // Undelivered events that carry the old text lose it too (the commit's own events come later).
    parts.push(eraseTextSql(m.target));
    if (m.type === 'DELETE') {
      parts.push(mysql.format(RETRACTION.erase, [target, m.room]), mysql.format(RETRACTION.eraseEdits, [m.target, 0]));
    } else {
      parts.push(mysql.format(RETRACTION.edit, [m.text, m.at, target, m.room]), mysql.format(RETRACTION.eraseEdits, [m.target, m.tsid]));
    }
  }
  return parts;
}

/** Erase a message's text from its events not yet delivered (pending or dead-lettered). */
export function eraseTextSql(messageId: string): string {
  return mysql.format("UPDATE webhook_events SET body = JSON_SET(body, '$.message.text', '') WHERE message_id = ? AND state <> 1", [messageId]);
}

/** Marker moves as multi-row INSERTs: the forward moves, then the first markers. */
export function moveMarkers(marks: MarkerWrite[]): string[] {
  const parts: string[] = [];
  const upserts = marks.filter((k) => !k.ifAbsent).map((k) => [k.room, k.user, k.seq, k.id]);
  const firsts = marks.filter((k) => k.ifAbsent).map((k) => [k.room, k.user, k.seq, k.id]);
  for (let i = 0; i < upserts.length; i += INSERT_CHUNK) parts.push(mysql.format(MYSQL_SQL.markForward, [upserts.slice(i, i + INSERT_CHUNK)]));
  for (let i = 0; i < firsts.length; i += INSERT_CHUNK) parts.push(mysql.format(MYSQL_SQL.markIfAbsent, [firsts.slice(i, i + INSERT_CHUNK)]));
  return parts;
}

/** One marker move as its own statement (in the order of the batch). */
export function moveMarker(k: MarkerWrite): string {
  return mysql.format(k.ifAbsent ? MYSQL_SQL.markIfAbsent : MYSQL_SQL.markForward, [[[k.room, k.user, k.seq, k.id]]]);
}

/** A statement that alone exceeds max_allowed_packet: the store cannot run it (see maxRowBytes). */
export class PacketTooSmallError extends Error {
  override name = 'PacketTooSmallError';
}

/**
 * The statements of one transaction packed into as few multi-statement queries as fit in
 * `maxBytes` each, in order. Several queries still make one transaction: the caller sends them
 * one after another between START TRANSACTION and COMMIT.
 */
export function packets(statements: string[], maxBytes: number): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  let bytes = 0;
  for (const s of statements) {
    const size = Buffer.byteLength(s) + 2;
    if (size > maxBytes) throw new PacketTooSmallError(`a statement of ${size} bytes exceeds the server's max_allowed_packet (${maxBytes} bytes usable)`);
    if (cur.length > 0 && bytes + size > maxBytes) {
      out.push(cur.join(';\n'));
      cur = [];
      bytes = 0;
    }
    cur.push(s);
    bytes += size;
  }
  if (cur.length > 0) out.push(cur.join(';\n'));
  return out;
}
