// The rooms the actor has loaded: each one's row, its head (the newest seq and id given out) and
// its last committed seq. Loaded from the store on first use (a public room is created there when
// asked), bounded, evicting the oldest room with nothing uncommitted.

import type { IdGenerator } from '../ids.ts';
import { roomCreated } from '../stores/events.ts';
import type { DirectoryStore, RoomHead, RoomRow } from '../stores/store.ts';
import type { Quotas } from './quotas.ts';
import type { Webhooks } from './webhooks.ts';

export interface CachedRoom {
  row: RoomRow;
  /** The newest message given its id and seq (on one node: accepted; in a cluster: committed). */
  head: RoomHead;
  /** Last seq durably committed. */
  committedSeq: number;
}

/**
 * A create of room `id` failed with `err`: the row another node created first (cluster), null if
 * that room is deleted, or the error rethrown.
 */
export type CreateFailed = (id: string, err: unknown) => Promise<RoomRow | null>;

const MAX_CACHED_ROOMS = 100_000;

export class RoomCache {
  private readonly rooms = new Map<string, CachedRoom>();

  constructor(
    private readonly store: Pick<DirectoryStore, 'getRoom' | 'createRoom'>,
    private readonly ids: Pick<IdGenerator, 'next'>,
    private readonly createFailed: CreateFailed,
    private readonly quotas: Pick<Quotas, 'createRoom'>,
    /** Webhooks on: a room created here writes its room.created event with it. */
    private readonly hooks: Pick<Webhooks, 'full' | 'poke'> | null = null,
  ) {}

  get(id: string): CachedRoom | undefined {
    return this.rooms.get(id);
  }

  /**
   * The room, loaded from the store if needed; null: none. A room that does not exist is created
   * as a public room of `creator` (null: not created); over the creator's quota it throws the
   * refusal (a ChatError).
   */
  async load(id: string, creator: string | null): Promise<CachedRoom | null> {
    let r = this.rooms.get(id);
    if (r) return r;
    let row = await this.store.getRoom(id);
    if (row?.deleted) return null;
    if (!row) {
      if (creator === null) return null;
      await this.quotas.createRoom(creator);
      row = { id, kind: 'public', name: null, subject: null, epoch: this.ids.next().id, lastSeq: 0, createdAt: Date.now(), dmKey: null, deleted: false, createdBy: creator };
      try {
        await this.store.createRoom(row, [], this.hooks === null ? [] : [roomCreated(row, [], row.createdAt, this.hooks.full())]);
        this.hooks?.poke();
      } catch (err) {
        const theirs = await this.createFailed(id, err);
        if (theirs === null) return null;
        row = theirs;
      }
    }
    r = this.rooms.get(id); // another command may have loaded it while we awaited
    if (r) return r;
    r = { row, head: { seq: row.lastSeq, id: '', tsid: 0n }, committedSeq: row.lastSeq };
    if (this.rooms.size >= MAX_CACHED_ROOMS) this.evict();
    this.rooms.set(id, r);
    return r;
  }

  /** Messages of the room committed up to `seq`; in a cluster that is also where its head is. */
  committed(id: string, seq: number): void {
    const r = this.rooms.get(id);
    if (!r) return;
    r.committedSeq = Math.max(r.committedSeq, seq);
    if (r.head.seq < seq) r.head.seq = seq;
  }

  delete(id: string): void {
    this.rooms.delete(id);
  }

  private evict(): void {
    // Map iteration is insertion order: drop the oldest room with nothing uncommitted.
    for (const [id, r] of this.rooms) {
      if (r.committedSeq === r.head.seq) {
        this.rooms.delete(id);
        return;
      }
    }
  }
}
