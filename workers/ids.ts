// Message ids: TSIDs, 63-bit and time-ordered: milliseconds since 2020-01-01 UTC in the top 41
// bits (enough until 2089), the node id in the next 10, a counter in the last 12. On the wire they are 13 upper-case
// Crockford base32 characters; in the store, the 64-bit integer (the row key).

/**
 * Canonical form: 13 upper-case Crockford base32 characters; the first carries only 4 bits, and
 * is at most 7: the stores keep ids as signed 64-bit integers, so an id of 2^63 or more is none
 * they can hold (every id this engine makes, until the year 2089, starts with 0 or 1).
 */
export const TSID_RE = /^[0-7][0-9A-HJKMNP-TV-Z]{12}$/;

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const VALUE = new Map<string, bigint>([...ALPHABET].map((c, i) => [c, BigInt(i)]));
const TSID_EPOCH_MS = Date.UTC(2020, 0, 1);

/** Encode a TSID integer in its canonical 13-character form. */
export function tsidToString(n: bigint): string {
  return encode(Number(n >> 30n), Number(n & 0x3fffffffn));
}

const CODES = [...ALPHABET].map((c) => c.charCodeAt(0));

/** The canonical form of the integer hi * 2^30 + lo (lo < 2^30): two Numbers, no BigInt steps. */
function encode(hi: number, lo: number): string {
  const h1 = hi % 1024;
  const h0 = Math.floor(hi / 1024);
  return String.fromCharCode(
    CODES[Math.floor(h0 / 1048576) % 32], CODES[(h0 >>> 15) & 31], CODES[(h0 >>> 10) & 31], CODES[(h0 >>> 5) & 31], CODES[h0 & 31],
    CODES[h1 >>> 5], CODES[h1 & 31],
    CODES[lo >>> 25], CODES[(lo >>> 20) & 31], CODES[(lo >>> 15) & 31], CODES[(lo >>> 10) & 31], CODES[(lo >>> 5) & 31], CODES[lo & 31],
  );
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

const COUNTER_MAX = 0xfff;
/** The first millisecond an id cannot hold: 2^41 (an id must stay below 2^63). */
const MS_END = 2 ** 41;

/**
 * This node's ids, strictly increasing within the process. At each new millisecond the counter
 * starts at a random value (ids do not reveal how many messages the node wrote), and it counts up
 * within the millisecond; past 4,095 the id takes the next millisecond. If the clock steps back,
 * ids go on from the last one. Across a restart after a clock step back, new ids could sort before
 * stored ones (seq still orders each room).
 */
export class IdGenerator {
  private readonly nodeBits: number;
  /** Milliseconds since the TSID epoch and counter of the last id made. */
  private ms = -1;
  private counter = 0;
  /** `ms` << 22 as a BigInt, made once per millisecond. */
  private msHigh = 0n;
  private msHighOf = -1;

  /** node: 0..1023. `now` is the clock (milliseconds since 1970), replaceable in tests. */
  constructor(
    private readonly node: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(node) || node < 0 || node > 1023) throw new RangeError(`node id must be an integer in 0..1023, got ${node}`);
    this.nodeBits = node << 12;
  }

  next(): { id: string; tsid: bigint } {
    // A clock before 2020 counts as 2020-01-01.
    const ms = Math.max(0, Math.floor(this.now()) - TSID_EPOCH_MS);
    if (ms > this.ms) {
      this.ms = ms;
      this.counter = Math.floor(Math.random() * (COUNTER_MAX + 1));
    } else if (this.counter < COUNTER_MAX) {
      this.counter++;
    } else {
      this.ms++;
      this.counter = 0;
    }
    return this.current();
  }

  /**
   * An id of this node greater than `floor` (another node's newest id in a room, in a cluster):
   * ids stay in seq order within a room even when the nodes' clocks differ by a little.
   */
  nextAbove(floor: bigint): { id: string; tsid: bigint } {
    const first = this.next();
    if (first.tsid > floor) return first;
    // The smallest id of this node above `floor`; it is above every id made so far too.
    const ms = Number(floor >> 22n);
    const node = Number((floor >> 12n) & 1023n);
    const counter = Number(floor & 0xfffn);
    if (node === this.node && counter < COUNTER_MAX) {
      this.ms = ms;
      this.counter = counter + 1;
    } else if (node < this.node) {
      this.ms = ms;
      this.counter = 0;
    } else {
      this.ms = ms + 1;
      this.counter = 0;
    }
    return this.current();
  }

  private current(): { id: string; tsid: bigint } {
    if (this.ms >= MS_END) throw new RangeError('no TSID after 2089-09-06: its time does not fit in 41 bits');
    const low = this.nodeBits | this.counter;
    // hi * 2^30 + lo with lo's top 8 bits the millisecond's low 8 bits.
    const id = encode(Math.floor(this.ms / 256), (this.ms % 256) * 0x400000 + low);
    if (this.msHighOf !== this.ms) {
      this.msHigh = BigInt(this.ms) << 22n;
      this.msHighOf = this.ms;
    }
    return { id, tsid: this.msHigh | BigInt(low) };
  }
}
