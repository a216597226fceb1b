// The storage contract. The persistence actor is the only caller of a MessageStore's write side;
// history readers use a MessageReader on their own read-only connection.

import type { DirChangesResult, EventType, MarkCmd, Message, MessageType, MyRoom, RoomInfo, RoomKind } from '../contract.ts';

export type { MessageType, RoomKind };

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
  /** The user who created the room (counted against CHAT_MAX_ROOMS_PER_USER); null: the host app. */
  createdBy: string | null;
}

/**
 * A read marker move: written with the next group commit; never moves a marker backwards. The
 * command's fields, with seq -1 already resolved by the actor (except in cluster mode, where the
 * commit resolves it under the room's lock); reqId is answered once committed, not stored.
 */
export type MarkerWrite = Omit<MarkCmd, 't'>;

/** An event about to be written with its cause. */
export interface NewEvent {
  /** The room it belongs to ('' for an event of no room: blocks); delivery keeps order per room. */
  room: string;
  type: EventType;
  at: number;
  /** message.* events: the message id, so erasing its text finds the rows. */
  messageId: string | null;
  /** The event's own fields as one JSON object (id, type, at and room are added on delivery). */
  body: string;
  /** The outbox was full (CHAT_WEBHOOK_MAX_PENDING): written straight to the dead-letter list. */
  dead: boolean;
}

/** What a message's send asks for: a message.created event with these push targets. */
export interface MessageEventSpec {
  recipients: string[];
  /** The outbox is full: the row goes straight to the dead-letter list. */
  dead: boolean;
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
  /** DELETE and EDIT events: the message they retract (its effect is applied in the same commit). */
  target: string | null;
  /** Write a message.created event with it (webhooks on); absent or null: none. */
  event?: MessageEventSpec | null;
}

/** A message a DELETE or EDIT names, as the actor checks it (retraction.ts). */
export interface TargetRow {
  fromId: string;
  type: MessageType;
  deleted: boolean;
}

export interface CidHit {
  room: string;
  seq: number;
  id: string;
  at: number;
}

/** The key of a (sender, cid) pair in findByCids' answer and in the actor's in-flight index. */
export function cidKey(fromId: string, cid: string): string {
  return fromId + '\0' + cid;
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
  /** The stored messages that (sender, cid) pairs name; keyed by cidKey(fromId, cid). */
  findByCids(keys: [fromId: string, cid: string][]): Awaitable<Map<string, CidHit>>;
  /**
   * Insert the messages, advance each room's last seq to `lastSeqs` (SQLite: implied by the
   * room's newest message, nothing written) and move read markers, in one transaction.
   * Safe to repeat after a failure whose outcome is unknown (rows already there are skipped).
   */
  commit(msgs: NewMessage[], lastSeqs: Map<string, number>, marks: MarkerWrite[]): Awaitable<void>;
  /** The newest `limit` messages of a room, oldest first. */
  latest(room: string, limit: number, notBefore: number): Awaitable<Message[]>;
  /**
   * Delete at most `max` messages with a TSID below `cutoff`, and erase the text of EDIT events
   * whose target is below it; returns how many were deleted. SQLite then checkpoints and resets
   * its WAL, so the deleted text leaves the files.
   */
  purgeBefore(cutoff: bigint, max: number): Awaitable<number>;
  /** The message `id` (as a TSID integer) of `room`, for a DELETE or EDIT; null: none. */
  retractTarget(room: string, tsid: bigint): Awaitable<TargetRow | null>;
  /** The DELETE event of message `target`, if one is stored (a repeated delete is answered with it). */
  deleteEventOf(target: string): Awaitable<CidHit | null>;
  /** The room's read markers (user, seq). */
  reads(room: string): Awaitable<[string, number][]>;
  close(): Awaitable<void>;
}

/** Thrown by commitAssign when another node stored the same (sender, cid) first: dedupe, retry. */
export class DuplicateCidError extends Error {
  override name = 'DuplicateCidError';
}

/**
 * A room's newest position: its last seq and the id of the message that has it ('' and 0n while
 * not known). Assigning the next message moves it.
 */
export interface RoomHead {
  seq: number;
  id: string;
  tsid: bigint;
}

/** What a cluster commit stores once its rooms are locked. */
export interface Placed {
  /** The messages with their id and seq, in order; those of rooms not found are left out. */
  stored: NewMessage[];
  /** The marker moves to write, every seq -1 resolved (those with no position to name left out). */
  marks: MarkerWrite[];
  /** The batch's rooms that do not exist (or are deleted): nothing of theirs is stored. */
  missing: Set<string>;
}

/**
 * Gives a cluster batch its ids and seqs, inside the commit transaction: `heads` holds the locked
 * rooms (the ones that exist) as the store has them, and is advanced.
 */
export type AssignUnderLock = (msgs: NewMessage[], marks: MarkerWrite[], heads: Map<string, RoomHead>) => Placed;

/** What a cluster commit did not store (ClusterStore.commitAssign). */
export interface Unstored {
  /** The batch's rooms that do not exist (or are deleted): their messages keep seq 0. */
  missing: Set<string>;
  /**
   * DELETE events of the batch whose target another node deleted first, each with that first
   * DELETE: not stored (they keep seq 0), answered as a repeated delete is.
   */
  deletedFirst: Map<NewMessage, CidHit>;
}

/**
 * The cluster's write path (MySQL only): seq and id are assigned inside the transaction, under a
 * row lock on each room, so seq stays gapless across nodes and ids follow seq within a room.
 */
export interface ClusterStore {
  /**
   * Lock the batch's rooms, let `assign` give `msgs` their tsid/id/seq in place, and store them with
   * the marks it resolved, in one transaction; a mark with seq -1 means "the room's last seq after
   * this batch". Returns what it did not store: the messages of rooms that do not exist, and
   * DELETE events whose target is already deleted (Unstored). Throws DuplicateCidError if a (sender, cid) is already stored (nothing is stored then).
   * Safe to repeat after an unknown outcome: a batch that did commit is recognized by its ids and
   * not stored twice.
   */
  commitAssign(msgs: NewMessage[], marks: MarkerWrite[], assign: AssignUnderLock): Promise<Unstored>;
}

/**
 * Rooms, members and blocks: the directory the authorization decisions read. Every change of a
 * room's members, a room's deletion and every block or unblock takes the next directory version
 * (one counter for the whole store, taken in the change's transaction, so versions commit in
 * order); the room's row and the block's pair keep the version of their latest change, so a
 * cluster node can ask what changed since the version it has seen (MessageReader.dirChanges).
 */
export interface DirectoryStore {
  getRoom(id: string): Awaitable<RoomRow | null>;
  findDirect(dmKey: string): Awaitable<RoomRow | null>;
  /** Create a room and its members in one transaction (with `events`, the outbox rows it causes). */
  createRoom(row: RoomRow, members: string[], events?: NewEvent[]): Awaitable<void>;
  /** Delete a room's members, markers and messages and leave a tombstone, in one transaction; its version. */
  deleteRoom(id: string, events?: NewEvent[]): Awaitable<number>;
  members(room: string): Awaitable<string[]>;
  /** Add or remove members; the change's version. */
  setMembers(room: string, users: string[], present: boolean, events?: NewEvent[]): Awaitable<number>;
  /** Block or unblock; the change's version. */
  setBlock(blocker: string, blocked: string, on: boolean, events?: NewEvent[]): Awaitable<number>;
  allBlocks(): Awaitable<[string, string][]>;
  /** The directory version now: every change up to it is committed. */
  dirVersion(): Awaitable<number>;
  /** Rooms `user` created that are not deleted. */
  roomsCreatedBy(user: string): Awaitable<number>;
  /** Users `blocker` blocks. */
  blockCount(blocker: string): Awaitable<number>;
  /** Those of `users` who block `user`. */
  blockersOf(user: string, users: string[]): Awaitable<string[]>;
}

export interface MessageReader {
  /** A page by cursor, oldest first; `limit + 1` rows are asked for so callers can tell `more`. */
  page(q: PageQuery): Awaitable<Message[]>;
  /** The seq of message `id` in `room`, or null when no such message is stored. */
  seqOf(room: string, id: bigint): Awaitable<number | null>;
  /** The seq of the newest message at or before `id`; 0 if none. */
  seqAt(room: string, id: bigint): Awaitable<number>;
  roomsBySubject(subject: string): Awaitable<RoomInfo[]>;
  /** The user's rooms; `last` and `unread` leave out expired messages and those of `blocked` users. */
  myRooms(user: string, notBefore: number, blocked: string[]): Awaitable<MyRoom[]>;
  /** Messages of `room` with seq in (after, upTo] that count as unread by myRooms' rule. */
  unread(room: string, after: number, upTo: number, notBefore: number, blocked: string[]): Awaitable<number>;
  /** Directory changes after version `since`, at most `limit` rooms and `limit` blocks. */
  dirChanges(since: number, limit: number): Awaitable<DirChangesResult>;
  /** Messages with seq in [from, to] of a room, in seq order (a cluster node filling a gap). */
  range(room: string, from: number, to: number): Awaitable<Message[]>;
  /** Each room's last committed seq (rooms not found are left out). */
  lastSeqs(rooms: string[]): Awaitable<Map<string, number>>;
  close(): Awaitable<void>;
}
