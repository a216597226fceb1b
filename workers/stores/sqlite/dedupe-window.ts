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
// Memory: nothing per pair on the JS heap. A pair is kept as a 64-bit fingerprint of its sender
// and cid, with its message's tsid and time, in typed arrays: a ring in commit order (what expires
// next is at its head) and an open-addressing table from fingerprint to ring slot. About 40 bytes
// per pair, and nothing for the garbage collector to trace.
//
// A fingerprint names a candidate, not a proof: `get` returns the tsid stored with a pair of the
// same fingerprint, and the store confirms the row by (tsid, sender, cid) before answering a retry
// with it (store.ts), so a pair never stands in for another. Two different pairs within one window
// share a fingerprint with odds of about one in 2^64 per pair of pairs (the hashes start from
// values drawn per process, so no client can aim for one); only one of them is then remembered.

import { randomInt } from 'node:crypto';

/** CHAT_DEDUPE_WINDOW's default: 2.5 times the client library's default maxPendingAge (2 minutes). */
export const DEDUPE_WINDOW_MS = 5 * 60_000;

const INITIAL_SLOTS = 1024;

/** The fingerprint of one pair, as two independent 32-bit hashes (written by `fingerprint`). */
let fpLo = 0;
let fpHi = 0;

/**
 * The hashes' starting values, drawn per process: the window is rebuilt at every start, so nothing
 * depends on them staying the same, and a client cannot compute a cid whose fingerprint matches
 * another sender's pair.
 */
const SEED_A = randomInt(2 ** 32 - 1) | 0;
const SEED_B = randomInt(2 ** 32 - 1) | 0;

/** Hash sender, its length and cid with FNV-1a and with a multiply-rotate hash, each 32 bits. */
function fingerprint(fromId: string, cid: string): void {
  let a = SEED_A;
  let b = SEED_B;
  for (let i = 0; i < fromId.length; i++) {
    const c = fromId.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  // Above every char code: "ab"+"c" and "a"+"bc" differ, whatever characters the strings hold.
  a = Math.imul(a ^ (0x10000 + fromId.length), 0x01000193);
  b = Math.imul(b ^ (0x10000 + fromId.length), 0x5bd1e995);
  b ^= b >>> 15;
  for (let i = 0; i < cid.length; i++) {
    const c = cid.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  // Final mixes, so the table's low bits depend on every character.
  fpLo = fmix32(a);
  fpHi = fmix32(b);
}

/** murmur3's finalizer: every input bit moves every output bit. Unsigned. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class DedupeWindow {
  // The ring: slots head .. head + used - 1 (mod its size), in commit order (time `at`
  // non-decreasing but for clock steps).
  private lo = new Uint32Array(INITIAL_SLOTS);
  private hi = new Uint32Array(INITIAL_SLOTS);
  private tsids = new BigInt64Array(INITIAL_SLOTS);
  private ats = new Float64Array(INITIAL_SLOTS);
  private head = 0;
  private used = 0;
  /** Open addressing, linear probing: ring slot + 1 of each remembered pair, 0 = empty. At most half full. */
  private table = new Int32Array(INITIAL_SLOTS * 2);
  private count = 0;

  constructor(private readonly windowMs: number, private readonly now: () => number) {}

  /** Pairs remembered. */
  get size(): number {
    return this.count;
  }

  /** The tsid of the message stored with this (sender, cid), or with a pair of its fingerprint, within the window. */
  get(fromId: string, cid: string): bigint | undefined {
    fingerprint(fromId, cid);
    const i = this.find(fpLo, fpHi);
    return i < 0 ? undefined : this.tsids[this.table[i] - 1];
  }

  /** A message with a cid was stored (its commit returned). */
  add(fromId: string, cid: string, tsid: bigint, at: number): void {
    fingerprint(fromId, cid);
    const lo = fpLo;
    const hi = fpHi;
    if (this.used === this.lo.length) this.growRing();
    const slot = (this.head + this.used) % this.lo.length;
    this.used++;
    this.lo[slot] = lo;
    this.hi[slot] = hi;
    this.tsids[slot] = tsid;
    this.ats[slot] = at;
    const i = this.find(lo, hi);
    if (i >= 0) {
      this.table[i] = slot + 1; // a pair stored again (after its first message was deleted) points at its newer slot
      return;
    }
    if ((this.count + 1) * 2 > this.table.length) this.growTable();
    this.insert(lo, slot);
    this.count++;
  }

  /** The message `tsid` is gone (its room deleted, or expired by retention): its pair is free again. */
  forget(fromId: string, cid: string, tsid: bigint): void {
    fingerprint(fromId, cid);
    const i = this.find(fpLo, fpHi);
    if (i >= 0 && this.tsids[this.table[i] - 1] === tsid) this.remove(i);
  }

  /** Drop the pairs of messages older than the window. */
  expire(): void {
    const cutoff = this.now() - this.windowMs;
    const n = this.lo.length;
    while (this.used > 0 && this.ats[this.head] < cutoff) {
      const h = this.head;
      const i = this.find(this.lo[h], this.hi[h]);
      if (i >= 0 && this.table[i] === h + 1) this.remove(i);
      this.head = (h + 1) % n;
      this.used--;
    }
  }

  /** The table index holding this fingerprint, or -1. */
  private find(lo: number, hi: number): number {
    const t = this.table;
    const mask = t.length - 1;
    for (let i = lo & mask; ; i = (i + 1) & mask) {
      const s = t[i];
      if (s === 0) return -1;
      if (this.lo[s - 1] === lo && this.hi[s - 1] === hi) return i;
    }
  }

  private insert(lo: number, slot: number): void {
    const t = this.table;
    const mask = t.length - 1;
    let i = lo & mask;
    while (t[i] !== 0) i = (i + 1) & mask;
    t[i] = slot + 1;
  }

  /** Empty table index `i`, shifting back the entries after it that probed past it (no tombstones). */
  private remove(i: number): void {
    const t = this.table;
    const mask = t.length - 1;
    this.count--;
    let hole = i;
    for (let j = (i + 1) & mask; t[j] !== 0; j = (j + 1) & mask) {
      const home = this.lo[t[j] - 1] & mask;
      // Entry j may fill the hole unless its home lies cyclically in (hole, j].
      if (hole <= j ? home <= hole || home > j : home <= hole && home > j) {
        t[hole] = t[j];
        hole = j;
      }
    }
    t[hole] = 0;
  }

  /**
   * Twice the slots, the full ring unrolled from slot 0: old slot s moves to (s - head) mod n, and
   * the table's entries are renumbered the same way.
   */
  private growRing(): void {
    const n = this.lo.length;
    const h = this.head;
    this.lo = unrolled(this.lo, new Uint32Array(n * 2), h);
    this.hi = unrolled(this.hi, new Uint32Array(n * 2), h);
    this.tsids = unrolled(this.tsids, new BigInt64Array(n * 2), h);
    this.ats = unrolled(this.ats, new Float64Array(n * 2), h);
    const t = this.table;
    for (let i = 0; i < t.length; i++) if (t[i] !== 0) t[i] = ((t[i] - 1 - h + n) % n) + 1;
    this.head = 0;
  }

  /** Twice the table, every remembered pair inserted again. */
  private growTable(): void {
    const old = this.table;
    this.table = new Int32Array(old.length * 2);
    for (let i = 0; i < old.length; i++) if (old[i] !== 0) this.insert(this.lo[old[i] - 1], old[i] - 1);
  }
}

/** A typed array's elements from index `h` to its end, then those before `h`, at the start of `grown`. */
function unrolled<T extends { length: number; subarray(begin: number, end?: number): T; set(from: T, offset?: number): void }>(old: T, grown: T, h: number): T {
  grown.set(old.subarray(h));
  grown.set(old.subarray(0, h), old.length - h);
  return grown;
}
