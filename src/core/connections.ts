// Open connections by user: the per-user cap, the identity a STOMP CONNECT establishes later, and
// the JWT expiry that closes a connection whose token runs out mid-session.

import type { Identity } from '../auth.ts';
import { CLOSE } from '../protocol/errors.ts';
import type { Session } from './session.ts';

/** setTimeout's longest delay (a 32-bit signed count of ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Connections {
  /**
   * Open connections per user id (limits, and re-attaching when blocks change): the session itself
   * while the user has one (most users; a Set costs ~160 bytes), a Set from the second on.
   */
  private readonly byUser = new Map<string, Session | Set<Session>>();

  constructor(private readonly maxPerUser: number) {}

  /** May this user open one more connection? */
  mayConnect(userId: string): boolean {
    const e = this.byUser.get(userId);
    return (e === undefined ? 0 : e instanceof Set ? e.size : 1) < this.maxPerUser;
  }

  of(userId: string): Iterable<Session> {
    const e = this.byUser.get(userId);
    return e === undefined ? [] : e instanceof Set ? e : [e];
  }

  /** The connection's identity is known (at open, or at a STOMP CONNECT). */
  opened(s: Session): void {
    const e = this.byUser.get(s.userId);
    if (e === undefined) this.byUser.set(s.userId, s);
    else if (e instanceof Set) e.add(s);
    else if (e !== s) this.byUser.set(s.userId, new Set([e, s]));
    if (s.expiresAt > 0 && s.expiry === null) this.armExpiry(s);
  }

  closed(s: Session): void {
    if (s.expiry !== null) clearTimeout(s.expiry);
    this.forget(s);
  }

  /** A STOMP CONNECT established who this connection is (it was anonymous since the upgrade). */
  setIdentity(s: Session, id: Identity): void {
    this.forget(s);
    s.userId = id.id;
    s.userName = id.name;
    s.admin = id.admin;
    s.expiresAt = id.exp;
    this.opened(s);
  }

  private forget(s: Session): void {
    const e = this.byUser.get(s.userId);
    if (e === undefined) return;
    if (!(e instanceof Set)) {
      if (e === s) this.byUser.delete(s.userId);
      return;
    }
    e.delete(s);
    if (e.size === 1) this.byUser.set(s.userId, e.values().next().value!);
    else if (e.size === 0) this.byUser.delete(s.userId);
  }

  /**
   * A token that expires mid-session closes the socket with 1008 (policy violation). setTimeout
   * takes at most 2^31-1 ms (~24.8 days; longer fires at once): a later expiry re-arms in steps.
   */
  private armExpiry(s: Session): void {
    const left = s.expiresAt - Date.now();
    s.expiry = setTimeout(() => {
      s.expiry = null;
      if (s.closed) return;
      if (Date.now() < s.expiresAt) return this.armExpiry(s);
      s.end(CLOSE.policy, 'token expired');
    }, Math.min(Math.max(0, left), MAX_TIMER_MS));
  }
}
