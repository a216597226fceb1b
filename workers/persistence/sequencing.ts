// What differs between one node and a cluster, chosen once at start (local-sequencing.ts,
// cluster-sequencing.ts): when a message gets its id and seq, how a batch is written, and what
// the actor must ask the store because other nodes write the same rooms.

import type { MarkCmd } from '../contract.ts';
import type { Awaitable, MarkerWrite, RoomRow, Unstored } from '../stores/store.ts';
import type { Pending } from './pending.ts';
import type { CachedRoom } from './room-cache.ts';

export interface Sequencing {
  /** A send accepted into room `r`: give it its id, seq and JSON now, or leave them to the commit. */
  accept(p: Pending, r: CachedRoom): void;
  /** A read-marker move, to write with the next commit; null: nothing to write. */
  mark(c: MarkCmd, r: CachedRoom | undefined): MarkerWrite | null;
  /** Before room `r` is shown to the front thread: bring it up to date; false: it is deleted. */
  refresh(r: CachedRoom): Awaitable<boolean>;
  /**
   * Write a batch and its marker moves in one transaction. Returns what it did not store (rooms
   * found not to exist, deletes another node made first), if this mode can find any.
   */
  write(batch: Pending[], marks: MarkerWrite[]): Awaitable<Unstored | void>;
  /** Creating a room failed (see RoomCache). */
  createFailed(id: string, err: unknown): Promise<RoomRow | null>;
}

/** The command's marker move as it is. */
export function markerOf(c: MarkCmd): MarkerWrite {
  return { room: c.room, user: c.user, seq: c.seq, id: c.id, ifAbsent: c.ifAbsent, reqId: c.reqId };
}
