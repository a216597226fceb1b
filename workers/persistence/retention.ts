// Retention (CHAT_RETENTION): messages older than the retention are hidden from every read at
// once and deleted in the background, in small batches, yielding between them.

import { tsidFloor } from '../ids.ts';
import type { MessageStore } from '../stores/store.ts';

const PURGE_BATCH = 1000;

/** The oldest message time a read may show (ms since the epoch); 0: everything. */
export function notBefore(retentionMs: number): number {
  return retentionMs > 0 ? Date.now() - retentionMs : 0;
}

/** How often to purge: a tenth of the retention, between 1 s and 1 min. */
export function purgeInterval(retentionMs: number): number {
  return Math.min(60_000, Math.max(1000, Math.floor(retentionMs / 10)));
}

export class Retention {
  private stopped = false;

  constructor(
    private readonly store: Pick<MessageStore, 'purgeBefore'>,
    private readonly retentionMs: number,
  ) {}

  /** Delete expired messages, a batch at a time, until none is left. */
  async purge(): Promise<void> {
    if (this.retentionMs <= 0 || this.stopped) return;
    const cutoff = tsidFloor(Date.now() - this.retentionMs);
    try {
      const n = await this.store.purgeBefore(cutoff, PURGE_BATCH);
      if (n === PURGE_BATCH) setImmediate(() => void this.purge());
    } catch {
      // The store is down; the next interval tries again.
    }
  }

  /** No purge starts after this (the store is about to close). */
  stop(): void {
    this.stopped = true;
  }
}
