// The pause before retrying a failing store: doubles on every failure, from 100 ms to 5 s, and
// starts over once a commit succeeds. The inbox and group commit share one.

export const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

export class Backoff {
  private ms = BACKOFF_MIN_MS;

  /** The pause to wait now; the next one is twice as long. */
  next(): number {
    const b = this.ms;
    this.ms = Math.min(BACKOFF_MAX_MS, this.ms * 2);
    return b;
  }

  reset(): void {
    this.ms = BACKOFF_MIN_MS;
  }
}
