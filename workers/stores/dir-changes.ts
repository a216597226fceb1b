// What changed in the directory after a version (MessageReader.dirChanges), for either store: the
// rooms whose members changed or that were deleted and the blocks set or lifted, each as it is now.
// A cluster node applies them to catch up on control events the bus did not bring it.

import type { DirChangesResult } from '../contract.ts';
import { roomInfo, toRoomRow, type RoomDbRow } from './rows.ts';
import type { Awaitable } from './store.ts';

export interface DirChangeQueries {
  /** The version counter now (SQL.dirVersion). */
  version(): Awaitable<number>;
  /** Rooms with dir_version > since, oldest change first, at most `limit` (roomChanges in sql.ts). */
  rooms(since: number, limit: number): Awaitable<(RoomDbRow & { dir_version: number })[]>;
  members(room: string): Awaitable<string[]>;
  /** Block pairs with version > since, oldest change first, at most `limit` (SQL.blockChanges). */
  blocks(since: number, limit: number): Awaitable<{ blocker: string; blocked: string; version: number; active: number }[]>;
}

export async function dirChanges(q: DirChangeQueries, since: number, limit: number): Promise<DirChangesResult> {
  // The counter first: every version up to it is committed, so the rows read after it hold every
  // change up to it (and perhaps later ones, which are as they are now too).
  let upTo = await q.version();
  const roomRows = await q.rooms(since, limit);
  const blockRows = await q.blocks(since, limit);
  // A full page may have left out later changes of its kind: the answer covers only up to its last.
  if (roomRows.length === limit) upTo = Math.min(upTo, Number(roomRows[roomRows.length - 1].dir_version));
  if (blockRows.length === limit) upTo = Math.min(upTo, Number(blockRows[blockRows.length - 1].version));
  const rooms = await Promise.all(roomRows.map(async (r) => {
    const row = toRoomRow(r);
    const info = row.deleted ? null : roomInfo(row, row.kind === 'public' ? [] : await q.members(row.id));
    return { version: Number(r.dir_version), room: row.id, info };
  }));
  const blocks = blockRows.map((b) => ({ version: Number(b.version), blocker: b.blocker, blocked: b.blocked, on: Number(b.active) === 1 }));
  return { upTo: Math.max(upTo, since), rooms, blocks };
}
