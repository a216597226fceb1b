// Message ids: TSIDs (tsid-ts), 64-bit, time-ordered, in their canonical 13-character Crockford
// base32 form on the wire and as a 64-bit integer (the row key) in the store.

import { TSIDGenerator } from 'tsid-ts';

/**
 * Canonical form: 13 upper-case Crockford base32 characters; the first carries only 4 bits, and
 * is at most 7: the stores keep ids as signed 64-bit integers, so an id of 2^63 or more is none
 * they can hold (every id this engine makes, until the year 2089, starts with 0 or 1).
 */
export const TSID_RE = /^[0-7][0-9A-HJKMNP-TV-Z]{12}$/;

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const VALUE = new Map<string, bigint>([...ALPHABET].map((c, i) => [c, BigInt(i)]));
const TSID_EPOCH_MS = Date.UTC(2020, 0, 1);

/**
 * Encode a TSID integer in its canonical 13-character form. Same output as tsid-ts's
 * toString() (tested), without its per-character BigInt arithmetic: two Numbers, 30 + 34 bits.
 */
export function tsidToString(n: bigint): string {
  let lo = Number(n & 0x3fffffffn);
  let hi = Number(n >> 30n);
  let out = '';
  for (let i = 0; i < 6; i++) {
    out = ALPHABET[lo & 31] + out;
    lo >>>= 5;
  }
  for (let i = 0; i < 7; i++) {
    out = ALPHABET[hi % 32] + out;
    hi = Math.floor(hi / 32);
  }
  return out;
}

/** Decode a canonical id (validated by TSID_RE) to its integer. */
export function tsidToBigInt(id: string): bigint {
  let n = 0n;
  for (const c of id) n = (n << 5n) | VALUE.get(c)!;
  return n;
}

/** The smallest TSID whose time is `ms`: every id generated at or after `ms` is >= it. */
export function tsidFloor(ms: number): bigint {
  return BigInt(Math.max(0, ms - TSID_EPOCH_MS)) << 22n;
}

export class IdGenerator {
  private readonly gen: TSIDGenerator;
  private readonly nodeBits: bigint;
  private last = 0n;

  /** node: 0..1023 (10 node bits, then 12 counter bits: 4,096 ids per millisecond per node). */
  constructor(private readonly node: number) {
    this.gen = new TSIDGenerator(node, 10);
    this.nodeBits = BigInt(node) << 12n;
  }

  next(): { id: string; tsid: bigint } {
    let n = this.gen.create().toBigInt();
    // Strictly increasing within this process, even if the clock steps back: the next id after
    // the last one (same time, counter + 1, or the next millisecond). Across a restart after a
    // clock step back, new ids could sort before stored ones (seq still orders each room).
    if (n <= this.last) n = this.after(this.last);
    this.last = n;
    return { id: tsidToString(n), tsid: n };
  }

  /**
   * An id of this node greater than `floor` (another node's newest id in a room, in a cluster):
   * ids stay in seq order within a room even when the nodes' clocks differ by a little.
   */
  nextAbove(floor: bigint): { id: string; tsid: bigint } {
    const first = this.next();
    if (first.tsid > floor) return first;
    const n = this.after(floor);
    this.last = n;
    return { id: tsidToString(n), tsid: n };
  }

  /** The smallest id of this node greater than `x`. */
  private after(x: bigint): bigint {
    const ms = x >> 22n;
    const xNode = Number((x >> 12n) & 1023n);
    if (xNode === this.node && (x & 0xfffn) < 0xfffn) return x + 1n;
    if (xNode < this.node) return (ms << 22n) | this.nodeBits;
    return ((ms + 1n) << 22n) | this.nodeBits;
  }
}
