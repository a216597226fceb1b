// Slow consumers. uWS drops frames for a socket past maxBackpressure and shuts its reading down,
// which closes it (1006) within a loop turn; it tells nobody why, and its buffer accounting cannot
// be read in the close handler. So the buffers are sampled: every socket every 100 ms, and every
// 10 ms those that had bytes waiting. A 1006 close of a socket that had bytes waiting is a
// slow-consumer cut-off, counted; a socket found past the limit is closed here at once. Either way
// it is never silently skipped: it is closed, and rejoins with `since`.

import { CLOSE } from '../protocol/errors.ts';
import type { Session } from './session.ts';

export class SlowConsumers {
  private readonly pressured = new Set<Session>();
  private tick = 0;

  constructor(private readonly maxBackpressure: number) {}

  /** Every 10 ms: the sockets that had bytes waiting, and every tenth time all of them. */
  sweep(sessions: Iterable<Session>): void {
    const all = this.tick++ % 10 === 0;
    for (const s of all ? sessions : this.pressured) this.sample(s);
  }

  private sample(s: Session): void {
    if (s.closed || s.ws === null || s.slow) {
      this.pressured.delete(s);
      return;
    }
    const b = s.ws.getBufferedAmount();
    s.lastBuffered = b;
    if (b === 0) {
      this.pressured.delete(s);
      return;
    }
    this.pressured.add(s);
    if (b > this.maxBackpressure) {
      s.slow = true;
      s.ws.close();
    }
  }

  /** At close: was this connection cut off as a slow consumer? */
  wasSlow(s: Session, code: number): boolean {
    this.pressured.delete(s);
    return s.slow || (code === CLOSE.abnormal && s.lastBuffered > 0);
  }
}
