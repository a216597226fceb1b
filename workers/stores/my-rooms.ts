// "My rooms" (GET /api/me/rooms) for either store: each room with its read marker, its newest
// message and the number of unread messages, leaving out expired messages and those of users the
// caller blocks. The store supplies the queries; the rules are here, once.

import type { Message, MyRoom } from '../contract.ts';
import { tsidToBigInt } from '../ids.ts';
import { roomInfo, toMessage, toRoomRow, type MessageRow, type RoomDbRow } from './rows.ts';
import type { Awaitable } from './store.ts';

/**
 * When the caller blocks someone, unread is counted over at most this many of the newest messages
 * after the marker (a room with more shows at most this many), and `last` is looked for among at
 * most this many of the newest messages (none of them visible: `last` is null).
 */
export const MY_ROOMS_SCAN = 1000;

/** How many messages `last` is looked for at a time when the caller blocks someone. */
const LAST_PAGE = 50;

export interface MyRoomQueries {
  /** The user's rooms (myRooms in sql.ts) with their read marker's seq. */
  rooms(user: string): Awaitable<(RoomDbRow & { read_seq: number | null })[]>;
  members(room: string): Awaitable<string[]>;
  /** The newest `limit` messages of the room not older than `notBefore`, newest first (SQL.latest). */
  latest(room: string, notBefore: number, limit: number): Awaitable<MessageRow[]>;
  /** The same, older than message `tsid` (SQL.before). */
  before(room: string, tsid: bigint, notBefore: number, limit: number): Awaitable<MessageRow[]>;
  /** The seq of the oldest message not older than `notBefore` (SQL.firstLive); null: none. */
  firstLive(room: string, notBefore: number): Awaitable<number | null>;
  /** Sender and time of the newest `limit` messages with seq in (seq, upTo], newest first (SQL.sendersAfter). */
  sendersAfter(room: string, seq: number, upTo: number, limit: number): Awaitable<{ from_id: string; at: number }[]>;
}

export async function myRooms(q: MyRoomQueries, user: string, notBefore: number, blocked: string[]): Promise<MyRoom[]> {
  const hidden = new Set(blocked);
  const rooms = await q.rooms(user);
  return Promise.all(rooms.map(async (r) => {
    const row = toRoomRow(r);
    const readSeq = r.read_seq === null ? 0 : Number(r.read_seq);
    const last = await lastVisible(q, row.id, notBefore, hidden);
    return {
      info: roomInfo(row, row.kind === 'public' ? [] : await q.members(row.id)),
      lastSeq: row.lastSeq,
      readSeq,
      last,
      unread: last === null ? 0 : await countUnread(q, row.id, row.lastSeq, readSeq, notBefore, hidden),
    };
  }));
}

/** The newest message not expired and not from a hidden sender, among the newest MY_ROOMS_SCAN. */
async function lastVisible(q: MyRoomQueries, room: string, notBefore: number, hidden: ReadonlySet<string>): Promise<Message | null> {
  if (hidden.size === 0) {
    const [m] = await q.latest(room, notBefore, 1);
    return m === undefined ? null : toMessage(m);
  }
  let page = await q.latest(room, notBefore, LAST_PAGE);
  for (let seen = 0; page.length > 0; ) {
    const m = page.find((x) => !hidden.has(x.from_id));
    if (m !== undefined) return toMessage(m);
    seen += page.length;
    if (page.length < LAST_PAGE || seen >= MY_ROOMS_SCAN) break;
    page = await q.before(room, tsidToBigInt(page[page.length - 1].id), notBefore, LAST_PAGE);
  }
  return null;
}

/**
 * Messages after `readSeq` up to `lastSeq` that are not expired and not from a hidden sender: the
 * unread rule of `GET /api/me/rooms` and of the `read` reply (for what is older than the room's
 * window on the front thread; src/core/history.ts counts the window by the same rule).
 */
export async function countUnread(q: MyRoomQueries, room: string, lastSeq: number, readSeq: number, notBefore: number, hidden: ReadonlySet<string>): Promise<number> {
  let from = readSeq;
  // Expired messages are the oldest: everything before the first live one is not counted.
  if (notBefore > 0) from = Math.max(from, ((await q.firstLive(room, notBefore)) ?? lastSeq + 1) - 1);
  const n = lastSeq - from;
  if (n <= 0) return 0;
  if (hidden.size === 0) return n;
  const rows = await q.sendersAfter(room, from, lastSeq, Math.min(n, MY_ROOMS_SCAN));
  let count = 0;
  for (const m of rows) if (Number(m.at) >= notBefore && !hidden.has(m.from_id)) count++;
  return count;
}
