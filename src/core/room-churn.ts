// Joins and leaves of one room by one connection: a token bucket per (connection, room), on top of
// the connection's join bucket. A reconnect that joins its rooms once each spends only the join
// bucket's burst; a loop that joins and leaves the same room (each cycle an ENTER and a QUIT in the
// room's history and a page read, or a deep `since` recovery) is held to CHAT_ROOM_JOIN_RATE. The
// first join of a room is not charged here, so the buckets exist only on connections that left a
// room or joined one they were already in.

import type { Config } from '../config.ts';
import { refilled, takeTokens } from './limits.ts';
import type { Session } from './session.ts';

/** Rooms a connection's churn buckets remember; past it, full buckets and then the oldest are forgotten. */
const MAX_ROOMS = 64;

export class RoomChurn {
  private readonly rate: number;
  private readonly burst: number;

  constructor(cfg: Config) {
    this.rate = cfg.roomJoinRate;
    this.burst = cfg.roomJoinBurst;
  }

  /** Charge a join (`leaving` false) or a leave of `room` to `s`; false: over the limit (nothing charged). */
  take(s: Session, room: string, leaving: boolean, now = Date.now()): boolean {
    if (this.rate === 0) return true;
    let b = s.churn?.get(room);
    if (b === undefined) {
      if (!leaving && !s.inRoom(room) && s.joining?.has(room) !== true) return true; // a first join
      const m = (s.churn ??= new Map());
      if (m.size >= MAX_ROOMS) this.forget(m, now);
      b = [this.burst, now];
      m.set(room, b);
    }
    return takeTokens(b, 0, this.rate, this.burst, now, 1);
  }

  refusal(): string {
    return `more than ${this.rate} joins and leaves of one room per second on this connection; slow down`;
  }

  /** Drop buckets that are full again (nothing is lost), then the oldest until there is room. */
  private forget(m: Map<string, number[]>, now: number): void {
    for (const [room, b] of m) if (refilled(b, 0, this.rate, now) >= this.burst) m.delete(room);
    for (const room of m.keys()) {
      if (m.size < MAX_ROOMS) break;
      m.delete(room);
    }
  }
}
