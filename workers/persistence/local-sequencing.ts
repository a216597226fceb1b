// One node: this actor alone writes its rooms, so a message gets its id and seq as soon as it is
// accepted, and the commit stores them as they are.

import type { MarkCmd } from '../contract.ts';
import type { MarkerWrite, MessageStore, RoomRow } from '../stores/store.ts';
import type { Assigner } from './assign.ts';
import type { Pending } from './pending.ts';
import type { CachedRoom } from './room-cache.ts';
import { markerOf, type Sequencing } from './sequencing.ts';

export class LocalSequencing implements Sequencing {
  constructor(
    private readonly assigner: Assigner,
    private readonly store: Pick<MessageStore, 'commit'>,
  ) {}

  accept(p: Pending, r: CachedRoom): void {
    this.assigner.atAcceptance(p.msg, r.head);
  }

  mark(c: MarkCmd, r: CachedRoom | undefined): MarkerWrite | null {
    if (c.seq >= 0) return markerOf(c);
    // seq -1: "up to the newest message accepted in the room so far" (commands arrive in order).
    return r ? { room: c.room, user: c.user, seq: r.head.seq, id: r.head.id, ifAbsent: c.ifAbsent } : null;
  }

  refresh(): boolean {
    return true;
  }

  write(batch: Pending[], marks: MarkerWrite[]): ReturnType<MessageStore['commit']> {
    const lastSeqs = new Map<string, number>();
    for (const p of batch) lastSeqs.set(p.msg.room, p.msg.seq);
    return this.store.commit(batch.map((p) => p.msg), lastSeqs, marks);
  }

  createFailed(_id: string, err: unknown): Promise<RoomRow | null> {
    return Promise.reject(err);
  }
}
