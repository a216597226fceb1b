// Jittered exponential backoff: attempt n waits between half and all of min(max, initial * 2^n),
// so clients that lost the engine together do not come back together.

export interface BackoffOptions {
  /** First delay in ms (default: 500 for reconnects, 250 for retries). */
  initialDelay?: number;
  /** Longest delay in ms (default: 15,000 for reconnects, 10,000 for retries). */
  maxDelay?: number;
}

export class Backoff {
  private readonly initial: number;
  private readonly max: number;

  constructor(o: BackoffOptions | undefined, defaults: Required<BackoffOptions>, private readonly random: () => number) {
    this.initial = Math.max(1, o?.initialDelay ?? defaults.initialDelay);
    this.max = Math.max(this.initial, o?.maxDelay ?? defaults.maxDelay);
  }

  /** The delay before attempt number `attempt` (0 = the first retry). */
  delay(attempt: number): number {
    const base = Math.min(this.max, this.initial * 2 ** Math.min(attempt, 30));
    return Math.round(base / 2 + (this.random() * base) / 2);
  }
}
