// A token bucket: `rate` tokens a second up to `burst`; each operation takes one. Rate 0 = no limit.

export class TokenBucket {
  private tokens: number;
  private refilledAt = Date.now();

  constructor(private readonly rate: number, private readonly burst: number) {
    this.tokens = burst;
  }

  /** Take a token if one is there; false means the caller is over the limit. */
  take(now = Date.now()): boolean {
    if (this.rate === 0) return true;
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) * this.rate) / 1000);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
