// Row shapes and their mapping to the engine's types, shared by the SQLite and MySQL stores
// (same column names in both schemas).

import type { Message, MessageType, RoomInfo, RoomKind } from '../contract.ts';
import type { RoomRow } from './store.ts';

export interface RoomDbRow {
  id: string;
  kind: RoomKind;
  name: string | null;
  subject: string | null;
  epoch: string;
  last_seq: number;
  created_at: number;
  dm_key: string | null;
  deleted: number;
  created_by: string | null;
}

export interface MessageRow {
  id: string;
  room: string;
  seq: number;
  type: MessageType;
  from_id: string;
  from_name: string;
  text: string;
  at: number;
  cid: string | null;
  target: string | null;
  deleted: number;
  edited_at: number | null;
}

export const ROOM_COLS = 'id, kind, name, subject, epoch, last_seq, created_at, dm_key, deleted, created_by';
export const MESSAGE_COLS = 'id, room, seq, type, from_id, from_name, text, at, cid, target, deleted, edited_at';

// Number(): MySQL's BIGINT columns may come back as strings; SQLite's are numbers already.
export function toRoomRow(r: RoomDbRow): RoomRow {
  return { id: r.id, kind: r.kind, name: r.name, subject: r.subject, epoch: r.epoch, lastSeq: Number(r.last_seq), createdAt: Number(r.created_at), dmKey: r.dm_key, deleted: Number(r.deleted) !== 0, createdBy: r.created_by };
}

export function toMessage(r: MessageRow): Message {
  const deleted = Number(r.deleted) !== 0;
  const m: Message = { id: r.id, room: r.room, seq: Number(r.seq), type: r.type, from: { id: r.from_id, name: r.from_name }, at: Number(r.at) };
  // A deleted message (or superseded EDIT event) and a DELETE event carry no text at all.
  if (!deleted && r.type !== 'DELETE') m.text = r.text;
  if (r.cid !== null) m.cid = r.cid;
  if (r.target !== null) m.target = r.target;
  if (deleted) m.deleted = true;
  if (r.edited_at !== null && !deleted) m.editedAt = Number(r.edited_at);
  return m;
}

export function roomInfo(r: RoomRow, members: string[]): RoomInfo {
  return { id: r.id, kind: r.kind, name: r.name, subject: r.subject, members: r.kind === 'public' ? null : members, epoch: r.epoch, createdAt: r.createdAt };
}
