// The storage contract. The persistence actor is the only caller of a MessageStore's write side;
// history readers use a MessageReader on their own read-only connection.

import type { MarkCmd, Message, MessageType, MyRoom, RoomInfo, RoomKind } from './contract.ts';

export type { RoomKind };

/** SQLite answers synchronously, MySQL with a promise; callers always `await`. */
export type Awaitable<T> = T | Promise<T>;

export interface RoomRow {
  id: string;
  kind: RoomKind;
  name: string | null;
  subject: string | null;
  epoch: string;
  lastSeq: number;
  createdAt: number;
  /** Direct rooms: the sorted member pair and subject, unique, so a pair's room is found again. */
  dmKey: string | null;
  /** A deleted room's tombstone: it refuses joins and its id is not reused. */
  deleted: boolean;
}

/**
 * A read marker move: written with the next group commit; never moves a marker backwards. The
 * command's fields, with seq -1 already resolved by the actor (except in cluster mode, where the
 * commit resolves it under the room's lock); reqId is answered once committed, not stored.
 */
export type MarkerWrite = Omit<MarkCmd, 't'>;

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

/** Messages: the write path of every chat message. */
export interface MessageStore {
  /** The stored messages that (sender, cid) pairs name; keyed by `${fromId}\0${cid}`. */
  findByCids(keys: [fromId: string, cid: string][]): Awaitable<Map<string, CidHit>>;
  /**
   * Insert the messages, advance each room's last_seq and move read markers, in one transaction.
   * Safe to repeat after a failure whose outcome is unknown (rows already there are skipped).
   */
  commit(msgs: NewMessage[], lastSeqs: Map<string, number>, marks: MarkerWrite[]): Awaitable<void>;
  /** The newest `limit` messages of a room, oldest first. */
  latest(room: string, limit: number, notBefore: number): Awaitable<Message[]>;
  /** Delete at most `max` messages with a TSID below `cutoff`; returns how many. */
  purgeBefore(cutoff: bigint, max: number): Awaitable<number>;
  close(): Awaitable<void>;
}

/** Thrown by commitAssign when another node stored the same (sender, cid) first: dedupe, retry. */
export class DuplicateCidError extends Error {
  override name = 'DuplicateCidError';
}

/**
 * The cluster's write path (MySQL only): seq and id are assigned inside the transaction, under a
 * row lock on each room, so seq stays gapless across nodes and ids follow seq within a room.
 */
export interface ClusterStore {
  /**
   * Assign tsid/id/seq to `msgs` in place (in order, per room) and store them with `marks` in one
   * transaction; a mark with seq -1 means "the room's last seq after this batch". Returns the rooms
   * that do not exist (their messages are not stored and keep seq 0). Throws DuplicateCidError if a
   * (sender, cid) is already stored (nothing is stored then). Safe to repeat after an unknown
   * outcome: a batch that did commit is recognized by its ids and not stored twice.
   */
  commitAssign(msgs: NewMessage[], marks: MarkerWrite[], next: (floor: bigint) => { id: string; tsid: bigint }): Promise<Set<string>>;
}

/** Rooms, members and blocks: the directory the authorization decisions read. */
export interface DirectoryStore {
  getRoom(id: string): Awaitable<RoomRow | null>;
  findDirect(dmKey: string): Awaitable<RoomRow | null>;
  /** Create a room and its members in one transaction. */
  createRoom(row: RoomRow, members: string[]): Awaitable<void>;
  /** Delete a room's members, markers and messages and leave a tombstone, in one transaction. */
  deleteRoom(id: string): Awaitable<void>;
  members(room: string): Awaitable<string[]>;
  setMembers(room: string, users: string[], present: boolean): Awaitable<void>;
  setBlock(blocker: string, blocked: string, on: boolean): Awaitable<void>;
  allBlocks(): Awaitable<[string, string][]>;
}

export interface MessageReader {
  /** A page by cursor, oldest first; `limit + 1` rows are asked for so callers can tell `more`. */
  page(q: PageQuery): Awaitable<Message[]>;
  /** The seq of message `id` in `room`, or null when no such message is stored. */
  seqOf(room: string, id: bigint): Awaitable<number | null>;
  /** The seq of the newest message at or before `id`; 0 if none. */
  seqAt(room: string, id: bigint): Awaitable<number>;
  roomsBySubject(subject: string): Awaitable<RoomInfo[]>;
  myRooms(user: string, notBefore: number): Awaitable<MyRoom[]>;
  /** Messages with seq in [from, to] of a room, in seq order (a cluster node filling a gap). */
  range(room: string, from: number, to: number): Awaitable<Message[]>;
  /** Each room's last committed seq (rooms not found are left out). */
  lastSeqs(rooms: string[]): Awaitable<Map<string, number>>;
  close(): Awaitable<void>;
}
