// Message ids: TSIDs (tsid-ts), 64-bit, time-ordered, in their canonical 13-character Crockford
// base32 form on the wire and as a 64-bit integer (the row key) in the store.

import { TSIDGenerator } from 'tsid-ts';

/** Canonical form: 13 upper-case Crockford base32 characters; the first carries only 4 bits. */
export const TSID_RE = /^[0-9A-F][0-9A-HJKMNP-TV-Z]{12}$/;

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const VALUE = new Map<string, bigint>([...ALPHABET].map((c, i) => [c, BigInt(i)]));
const TSID_EPOCH_MS = Date.UTC(2020, 0, 1);

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
  private last = 0n;

  /** node: 0..1023 (10 node bits, 4,096 ids per millisecond per node). */
  constructor(node: number) {
    this.gen = new TSIDGenerator(node, 10);
  }

  /** Ids never go backwards, even if they must be at least `floor` (the store's newest id). */
  raiseFloor(floor: bigint): void {
    if (floor > this.last) this.last = floor;
  }

  next(): { id: string; tsid: bigint } {
    let t = this.gen.create();
    let n = t.toBigInt();
    // tsid-ts is monotonic within a process; this guards the restart after a clock step back,
    // where the store already holds newer ids. Each create() advances at least one counter step.
    for (let i = 0; n <= this.last && i < 1_000_000; i++) {
      t = this.gen.create();
      n = t.toBigInt();
    }
    this.last = n;
    return { id: t.toString(), tsid: n };
  }
}
