// The storage contract. The persistence actor is the only caller of a MessageStore's write side;
// history readers use a MessageReader on their own read-only connection.

import type { Message, MessageType } from './contract.ts';

export type RoomKind = 'public' | 'group' | 'direct';

export interface RoomRow {
  id: string;
  kind: RoomKind;
  name: string | null;
  subject: string | null;
  epoch: string;
  lastSeq: number;
  createdAt: number;
}

/** A message with its id and seq assigned, about to be written. */
export interface NewMessage {
  /** The TSID as a 64-bit integer: the row key, so time order is key order. */
  tsid: bigint;
  id: string;
  room: string;
  seq: number;
  type: MessageType;
  fromId: string;
  fromName: string;
  text: string;
  at: number;
  cid: string | null;
}

export interface CidHit {
  room: string;
  seq: number;
  id: string;
  at: number;
}

export interface PageQuery {
  room: string;
  /** Exclusive TSID cursors (message ids as integers). */
  before?: bigint;
  after?: bigint;
  limit: number;
  /** Hide messages older than this (retention), ms since the epoch; 0 = none. */
  notBefore: number;
}

export interface MessageStore {
  getRoom(id: string): RoomRow | null;
  createRoom(row: RoomRow): void;
  /** The stored message a (sender, cid) pair names, if any. */
  findByCid(fromId: string, cid: string): CidHit | null;
  /** Insert the messages and advance each room's last_seq, in one transaction. */
  commit(msgs: NewMessage[], lastSeqs: Map<string, number>): void;
  /** The newest `limit` messages of a room, oldest first. */
  latest(room: string, limit: number, notBefore: number): Message[];
  /** Delete at most `max` messages with a TSID below `cutoff`; returns how many. */
  purgeBefore(cutoff: bigint, max: number): number;
  close(): void;
}

export interface MessageReader {
  /** A page by cursor, oldest first; `limit + 1` rows are asked for so callers can tell `more`. */
  page(q: PageQuery): Message[];
  /** The seq of message `id` in `room`, or null when no such message is stored. */
  seqOf(room: string, id: bigint): number | null;
  close(): void;
}
