// SQLite's idempotency window: the (sender, cid) pairs of the messages stored in the last
// CHAT_DEDUPE_WINDOW, in the actor's memory, each with the row key (tsid) of its message. It
// replaces a unique (from_id, cid) index, which every insert updated at a random place (a B-tree
// page written to the WAL per message). Like Kafka's idempotent producer, it remembers only what a
// retry can still name: the client library resends a send only while it is pending, at most its
// maxPendingAge (2 minutes by default) after the first try, so the window is a span of time, not a
// count per sender (a sender's other devices, or a refused send retried while later ones are
// acked, put no bound on how many sends come between a first try and its last resend).
// Rebuilt at start from the tail of the messages table (a tsid range: time order is key order).
//
// Memory: the pairs sit in a ring in commit order (what expires next is at its head), the tsid and
// time of each in typed arrays outside the JS heap, and each sender's cids map to a ring slot (a
// small integer): no object per pair besides its map entry and its cid string.

/** CHAT_DEDUPE_WINDOW's default: 2.5 times the client library's default maxPendingAge (2 minutes). */
export const DEDUPE_WINDOW_MS = 5 * 60_000;

const INITIAL_SLOTS = 1024;

/** One sender's pairs: cid -> ring slot. The ring's slots share it (not a sender string each). */
class SenderCids {
  readonly cids = new Map<string, number>();
  constructor(readonly id: string) {}
}

const NOBODY = new SenderCids('');

export class DedupeWindow {
  /** sender -> cid -> ring slot. Two levels, not one joined key: the cid and sender strings come
   * decoded from the front thread's batch and keep their hash, so a lookup allocates nothing. */
  private readonly bySender = new Map<string, SenderCids>();
  private count = 0;
  // The ring: slots head .. head + used - 1 (mod its size), in commit order (time `at`
  // non-decreasing but for clock steps).
  private senders: SenderCids[] = new Array<SenderCids>(INITIAL_SLOTS).fill(NOBODY);
  private cids: string[] = new Array<string>(INITIAL_SLOTS).fill('');
  private tsids = new BigInt64Array(INITIAL_SLOTS);
  private ats = new Float64Array(INITIAL_SLOTS);
  private head = 0;
  private used = 0;

  constructor(private readonly windowMs: number, private readonly now: () => number) {}

  /** Pairs remembered. */
  get size(): number {
    return this.count;
  }

  /** The tsid of the message stored with this (sender, cid) within the window, if any. */
  get(fromId: string, cid: string): bigint | undefined {
    const slot = this.bySender.get(fromId)?.cids.get(cid);
    return slot === undefined ? undefined : this.tsids[slot];
  }

  /** A message with a cid was stored (its commit returned). */
  add(fromId: string, cid: string, tsid: bigint, at: number): void {
    if (this.used === this.senders.length) this.grow();
    const slot = (this.head + this.used) % this.senders.length;
    this.used++;
    let sender = this.bySender.get(fromId);
    if (sender === undefined) this.bySender.set(fromId, (sender = new SenderCids(fromId)));
    this.senders[slot] = sender;
    this.cids[slot] = cid;
    this.tsids[slot] = tsid;
    this.ats[slot] = at;
    const size = sender.cids.size;
    sender.cids.set(cid, slot); // a pair stored again (after its first message was deleted) points at its newer slot
    this.count += sender.cids.size - size;
  }

  /** The message `tsid` is gone (its room deleted, or expired by retention): its pair is free again. */
  forget(fromId: string, cid: string, tsid: bigint): void {
    const sender = this.bySender.get(fromId);
    const slot = sender?.cids.get(cid);
    if (slot !== undefined && this.tsids[slot] === tsid) this.drop(sender!, cid);
  }

  /** Drop the pairs of messages older than the window. */
  expire(): void {
    const cutoff = this.now() - this.windowMs;
    const n = this.senders.length;
    while (this.used > 0 && this.ats[this.head] < cutoff) {
      const h = this.head;
      const sender = this.senders[h];
      if (sender.cids.get(this.cids[h]) === h) this.drop(sender, this.cids[h]);
      this.senders[h] = NOBODY; // the cid string is free to go
      this.cids[h] = '';
      this.head = (h + 1) % n;
      this.used--;
    }
  }

  private drop(sender: SenderCids, cid: string): void {
    sender.cids.delete(cid);
    this.count--;
    // A sender with no pair left is forgotten (slots still naming it see an empty map).
    if (sender.cids.size === 0) this.bySender.delete(sender.id);
  }

  /** Twice the slots, the ring unrolled from slot 0; the maps' slots renumbered. */
  private grow(): void {
    const n = this.senders.length;
    const senders = new Array<SenderCids>(n * 2).fill(NOBODY);
    const cids = new Array<string>(n * 2).fill('');
    const tsids = new BigInt64Array(n * 2);
    const ats = new Float64Array(n * 2);
    for (let i = 0; i < this.used; i++) {
      const from = (this.head + i) % n;
      senders[i] = this.senders[from];
      cids[i] = this.cids[from];
      tsids[i] = this.tsids[from];
      ats[i] = this.ats[from];
      const m = senders[i].cids;
      if (m.get(cids[i]) === from) m.set(cids[i], i);
    }
    this.senders = senders;
    this.cids = cids;
    this.tsids = tsids;
    this.ats = ats;
    this.head = 0;
  }
}
