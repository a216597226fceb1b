// TSID-like ids for the peers: 42 bits of milliseconds since 2020-01-01, 22 bits of counter,
// written as 13 Crockford base32 characters, so they sort in time order as strings.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const TSID_EPOCH = Date.UTC(2020, 0, 1);

export class TsidGen {
  private lastMs = 0;
  private counter = 0;

  next(): string {
    let t = Date.now() - TSID_EPOCH;
    if (t <= this.lastMs) {
      t = this.lastMs;
      this.counter++;
      if (this.counter > 0x3fffff) { this.lastMs = ++t; this.counter = 0; }
    } else {
      this.lastMs = t;
      this.counter = 0;
    }
    return encode(t, this.counter);
  }
}

/** 64-bit value (time << 22 | counter) encoded with 32-bit integer ops only (no BigInt on the hot path). */
export function encode(time: number, counter: number): string {
  const hi = Math.floor(time / 1024) >>> 0;                  // bits 63..32
  const lo = (((time % 1024) << 22) | counter) >>> 0;        // bits 31..0
  const x = (((hi & 0x0fffffff) << 2) | (lo >>> 30)) >>> 0;  // bits 59..30
  const y = lo & 0x3fffffff;                                 // bits 29..0
  let s = ALPHABET[hi >>> 28];
  for (let sh = 25; sh >= 0; sh -= 5) s += ALPHABET[(x >>> sh) & 31];
  for (let sh = 25; sh >= 0; sh -= 5) s += ALPHABET[(y >>> sh) & 31];
  return s;
}
