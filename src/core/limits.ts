// Rate limits on every client operation: a token bucket per connection and one per user (all its
// connections together get CHAT_USER_RATE_FACTOR times a connection's rate and burst), per op.
// Sends are also limited in bytes (per connection, per user, and per client address), so a few
// large texts cannot take the write path that many small ones would need; every frame's bytes on the
// wire are charged to its connection before it is decoded (`inbound`), so frames that would be
// refused anyway cost the front thread no parsing.
// Each holder keeps its buckets in one array of doubles (tokens, last refill), so a connection
// costs one small allocation for all of them: a plain array (~140 bytes for five ops), not a
// Float64Array, which costs twice that (the typed array, its ArrayBuffer and a separate backing store).

import type { Config } from '../config.ts';

/** The limited operations. */
export const Op = { send: 0, join: 1, history: 2, typing: 3, http: 4, bytes: 5, inbound: 6 } as const;
export type Op = (typeof Op)[keyof typeof Op];
const OPS = 7;

/** A holder's buckets: [tokens, last refill ms] per op (doubles only, so V8 keeps them unboxed). */
export type Buckets = number[];

/** What each op's refusal says ("more than N <what> per second"). */
const WHAT: Record<Op, string> = { 0: 'sends', 1: 'joins and leaves', 2: 'history and read requests', 3: 'typing events', 4: 'API requests', 5: 'bytes of messages', 6: 'bytes of frames' };

export class RateLimits {
  private readonly rate = new Float64Array(OPS);
  private readonly burst = new Float64Array(OPS);

  constructor(spec: Record<Op, { rate: number; burst: number }>, factor = 1) {
    for (let op = 0; op < OPS; op++) {
      this.rate[op] = spec[op as Op].rate * factor;
      this.burst[op] = spec[op as Op].burst * factor;
    }
  }

  static forConnections(cfg: Config): RateLimits {
    return new RateLimits(specOf(cfg));
  }

  static forUsers(cfg: Config): RateLimits {
    return new RateLimits(specOf(cfg), cfg.userRateFactor);
  }

  /** Per client address, for message bytes only (every other op is per connection and user). */
  static forAddressBytes(cfg: Config): RateLimits {
    const none = { rate: 0, burst: 1 };
    return new RateLimits({
      [Op.send]: none, [Op.join]: none, [Op.history]: none, [Op.typing]: none, [Op.http]: none,
      [Op.bytes]: { rate: cfg.addressBytesRate, burst: Math.max(4 * cfg.addressBytesRate, cfg.sendBytesBurst) }, [Op.inbound]: none,
    });
  }

  /** Buckets for a new holder: every bucket full. */
  fresh(now = Date.now()): Buckets {
    const b: Buckets = new Array<number>(OPS * 2).fill(0.5); // a double from the start: PACKED_DOUBLE_ELEMENTS
    for (let op = 0; op < OPS; op++) {
      b[op * 2] = this.burst[op];
      b[op * 2 + 1] = now;
    }
    return b;
  }

  /** Take `cost` tokens of `op` from `b`; false: over the limit (nothing taken). Rate 0 = no limit. */
  take(b: Buckets, op: Op, now = Date.now(), cost = 1): boolean {
    const rate = this.rate[op];
    return rate === 0 || takeTokens(b, op * 2, rate, this.burst[op], now, cost);
  }

  /** Whether `op` is limited at all (rate 0: no limit). */
  limits(op: Op): boolean {
    return this.rate[op] !== 0;
  }

  /** Every bucket of `b` is full again (the holder can be forgotten without losing anything). */
  idle(b: Buckets, now = Date.now()): boolean {
    for (let op = 0; op < OPS; op++) {
      const rate = this.rate[op];
      if (rate !== 0 && refilled(b, op * 2, rate, now) < this.burst[op]) return false;
    }
    return true;
  }

  /** The refusal's message; `scope` says whose limit it is ("on this connection"). */
  refusal(op: Op, scope: string): string {
    return `more than ${this.rate[op]} ${WHAT[op]} per second ${scope}; slow down`;
  }
}

/** The tokens of the bucket at b[i] (tokens), b[i + 1] (last refill, ms) by `now`, before the burst caps them. */
export function refilled(b: number[], i: number, rate: number, now: number): number {
  return b[i] + ((now - b[i + 1]) * rate) / 1000;
}

/**
 * The token bucket at b[i] (tokens) and b[i + 1] (last refill, ms): refill at `rate` per second up
 * to `burst`, then take `cost`; false: not enough tokens (nothing taken).
 */
export function takeTokens(b: number[], i: number, rate: number, burst: number, now: number, cost: number): boolean {
  const tokens = Math.min(burst, refilled(b, i, rate, now));
  b[i + 1] = now;
  if (tokens < cost) {
    b[i] = tokens;
    return false;
  }
  b[i] = tokens - cost;
  return true;
}

/** The inbound burst: 4 s of the rate, and never less than a send burst or the largest frame answered. */
export function inboundBurst(cfg: Config): number {
  return Math.max(4 * cfg.inboundBytesRate, cfg.sendBytesBurst, 2 * cfg.maxPayload);
}

function specOf(cfg: Config): Record<Op, { rate: number; burst: number }> {
  return {
    [Op.send]: { rate: cfg.sendRate, burst: cfg.sendBurst },
    [Op.join]: { rate: cfg.joinRate, burst: cfg.joinBurst },
    [Op.history]: { rate: cfg.historyRate, burst: cfg.historyBurst },
    [Op.typing]: { rate: cfg.typingRate, burst: cfg.typingBurst },
    [Op.http]: { rate: cfg.httpRate, burst: cfg.httpBurst },
    [Op.bytes]: { rate: cfg.sendBytesRate, burst: cfg.sendBytesBurst },
    [Op.inbound]: { rate: cfg.inboundBytesRate, burst: inboundBurst(cfg) },
  };
}

/** Holders a KeyedLimits remembers at most. */
const MAX_KEYS = 100_000;

/**
 * Buckets per key (a user id, a client address) for holders that come and go: an entry whose
 * buckets are all full again is forgotten by a sweep, so the map holds only recent users.
 */
export class KeyedLimits {
  private readonly buckets = new Map<string, Buckets>();
  private readonly timer: NodeJS.Timeout;

  /** `scope` names the holders in refusals: "for this user", "from this address". */
  constructor(private readonly limits: RateLimits, private readonly scope: string) {
    this.timer = setInterval(() => this.sweep(), 10_000);
    this.timer.unref();
  }

  take(key: string, op: Op, now = Date.now(), cost = 1): boolean {
    if (!this.limits.limits(op)) return true; // no limit: no holder to look up or remember
    let b = this.buckets.get(key);
    if (b === undefined) {
      // Bounded: past MAX_KEYS the oldest holder is forgotten (it starts again with full buckets).
      if (this.buckets.size >= MAX_KEYS) this.buckets.delete(this.buckets.keys().next().value!);
      this.buckets.set(key, (b = this.limits.fresh(now)));
    }
    return this.limits.take(b, op, now, cost);
  }

  refusal(op: Op): string {
    return this.limits.refusal(op, this.scope);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, b] of this.buckets) if (this.limits.idle(b, now)) this.buckets.delete(k);
  }

  get size(): number {
    return this.buckets.size;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
