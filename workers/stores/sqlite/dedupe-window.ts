// SQLite's idempotency window: the (sender, cid) pairs of the messages stored in the last
// CHAT_DEDUPE_WINDOW, in the actor's memory, each with the row key (tsid) of its message. It
// replaces a unique (from_id, cid) index, which every insert updated at a random place (a B-tree
// page written to the WAL per message). Like Kafka's idempotent producer, it remembers only what a
// retry can still name: the client library resends a send only while it is pending, at most its
// maxPendingAge (2 minutes by default) after the first try, so the window is a span of time, not a
// count per sender (a sender's other devices, or a refused send retried while later ones are
// acked, put no bound on how many sends come between a first try and its last resend).
// Rebuilt at start from the tail of the messages table (a tsid range: time order is key order).

/** CHAT_DEDUPE_WINDOW's default: 2.5 times the client library's default maxPendingAge (2 minutes). */
export const DEDUPE_WINDOW_MS = 5 * 60_000;

export class DedupeWindow {
  /** sender -> cid -> tsid. Two levels, not one joined key: the cid and sender strings come
   * decoded from the front thread's batch and keep their hash, so a lookup allocates nothing. */
  private readonly bySender = new Map<string, Map<string, bigint>>();
  private count = 0;
  /** Every pair added, in commit order (its time `at` non-decreasing but for clock steps): what expires next. */
  private senders: string[] = [];
  private cids: string[] = [];
  private tsids: bigint[] = [];
  private ats: number[] = [];
  private head = 0;

  constructor(private readonly windowMs: number, private readonly now: () => number) {}

  /** Pairs remembered. */
  get size(): number {
    return this.count;
  }

  /** The tsid of the message stored with this (sender, cid) within the window, if any. */
  get(fromId: string, cid: string): bigint | undefined {
    return this.bySender.get(fromId)?.get(cid);
  }

  /** A message with a cid was stored (its commit returned). */
  add(fromId: string, cid: string, tsid: bigint, at: number): void {
    let cids = this.bySender.get(fromId);
    if (cids === undefined) this.bySender.set(fromId, (cids = new Map()));
    const size = cids.size;
    cids.set(cid, tsid);
    this.count += cids.size - size;
    this.senders.push(fromId);
    this.cids.push(cid);
    this.tsids.push(tsid);
    this.ats.push(at);
  }

  /** The message `tsid` is gone (its room deleted, or expired by retention): its pair is free again. */
  forget(fromId: string, cid: string, tsid: bigint): void {
    const cids = this.bySender.get(fromId);
    if (cids === undefined || cids.get(cid) !== tsid) return;
    cids.delete(cid);
    this.count--;
    if (cids.size === 0) this.bySender.delete(fromId);
  }

  /** Drop the pairs of messages older than the window. */
  expire(): void {
    const cutoff = this.now() - this.windowMs;
    let h = this.head;
    const n = this.ats.length;
    while (h < n && this.ats[h] < cutoff) {
      // A pair stored again (after its first message was deleted) keeps its newer entry.
      this.forget(this.senders[h], this.cids[h], this.tsids[h]);
      h++;
    }
    // Compact once the expired front is the larger part: amortized O(1) per pair.
    if (h > 4096 && h * 2 > n) {
      this.senders = this.senders.slice(h);
      this.cids = this.cids.slice(h);
      this.tsids = this.tsids.slice(h);
      this.ats = this.ats.slice(h);
      h = 0;
    }
    this.head = h;
  }
}
