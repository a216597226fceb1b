// Cluster: several nodes write the same rooms, so ids and seqs are given inside the commit
// transaction under the rooms' row locks (Assigner.underLock), and the actor reads back from the
// store what other nodes may have changed: a room's last seq when it is loaded, a room another
// node created first.

import type { MarkCmd } from '../contract.ts';
import type { ClusterStore, DirectoryStore, MarkerWrite, RoomRow, Unstored } from '../stores/store.ts';
import type { Assigner } from './assign.ts';
import type { Pending } from './pending.ts';
import type { CachedRoom } from './room-cache.ts';
import { markerOf, type Sequencing } from './sequencing.ts';

export class ClusterSequencing implements Sequencing {
  constructor(
    private readonly assigner: Assigner,
    private readonly store: Pick<ClusterStore, 'commitAssign'> & Pick<DirectoryStore, 'getRoom'>,
  ) {}

  /** The id, seq and JSON come with the commit. */
  accept(): void {}

  /** Seq -1 is resolved in the commit, under the room's lock. */
  mark(c: MarkCmd): MarkerWrite {
    return markerOf(c);
  }

  async refresh(r: CachedRoom): Promise<boolean> {
    // Other nodes write this room too: read its committed last seq now, then the newest messages
    // up to it. Everything up to that seq is committed (transactions are atomic), so the window
    // is gapless; the front thread subscribed to the room's bus channel before asking, so it
    // gets everything after it from the bus.
    const row = await this.store.getRoom(r.row.id);
    if (row === null || row.deleted) return false;
    r.row = row;
    r.committedSeq = r.head.seq = Math.max(r.committedSeq, row.lastSeq);
    return true;
  }

  write(batch: Pending[], marks: MarkerWrite[]): Promise<Unstored> {
    return this.store.commitAssign(batch.map((p) => p.msg), marks, this.assigner.underLock);
  }

  /** Another node created the room first: use theirs. */
  async createFailed(id: string, err: unknown): Promise<RoomRow | null> {
    const theirs = await this.store.getRoom(id);
    if (theirs === null) throw err;
    return theirs.deleted ? null : theirs;
  }
}
