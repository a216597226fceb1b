// Who is online in a room across the cluster, in Redis, changed only by the presence scripts, so
// ENTER and QUIT are decided once for the cluster. This node also keeps its own share in memory,
// to put it back when Redis restarted empty, and decides the QUITs of leaves that happened while
// Redis was unreachable once it is back.

import type { Redis } from 'ioredis';
import { reapedOf, type Keys, type Reaped, type Scripts } from './scripts.ts';

/** What presence needs to know of the bus: is Redis usable now. */
export interface BusState {
  readonly up: boolean;
  readonly recovering: boolean;
}

export class Presence {
  /** This node's presence as it should be in Redis: field ([room, user]) -> value ([name, announce]). */
  private readonly local = new Map<string, string>();
  /** Users whose last connection here left while Redis was unreachable: their QUIT is decided after. */
  private readonly leftWhileDown = new Map<string, Reaped>();
  /** A presence command failed while Redis seemed up: the next heartbeat reconciles. */
  needResync = false;
  /** Where QUITs decided here go (the cluster node posts them). */
  onQuits: (quits: Reaped[]) => void = () => undefined;

  constructor(
    private readonly cmd: Redis,
    private readonly scripts: Scripts,
    private readonly keys: Keys,
    private readonly nodeId: number,
    private readonly bus: BusState,
  ) {}

  private get nodeKey(): string {
    return this.keys.presn(this.nodeId);
  }

  /** This node's presence entry: keyed by (room, user); the value is what a reaper needs for the QUIT. */
  private static field(room: string, user: string): string {
    return JSON.stringify([room, user]);
  }

  /**
   * The user's first connection on this node joined the room. True when the user is now online on
   * exactly one node (post ENTER); false when already online elsewhere, or while Redis is down
   * (presence is unknown then, so nothing is announced rather than announced twice).
   */
  async join(room: string, user: string, name: string, announce: boolean): Promise<boolean> {
    const f = Presence.field(room, user);
    const v = JSON.stringify([name, announce ? 1 : 0]);
    this.local.set(f, v);
    this.leftWhileDown.delete(f); // back before its QUIT was decided: no QUIT, no ENTER
    if (!this.bus.up || this.bus.recovering) return false;
    try {
      const n = await this.scripts.presJoin(this.keys.pres(room), this.nodeKey, user, f, v);
      return Number(n) === 1;
    } catch {
      this.needResync = true;
      return false;
    }
  }

  /** The user's last connection on this node left the room. True: online nowhere now (post QUIT). */
  async leave(room: string, user: string): Promise<boolean> {
    const f = Presence.field(room, user);
    const v = this.local.get(f);
    this.local.delete(f);
    if (!this.bus.up || this.bus.recovering) {
      // The resync after the reconnect removes it from Redis; the QUIT is decided then.
      if (v !== undefined) this.leftWhileDown.set(f, reapedOf(f, v));
      return false;
    }
    try {
      const n = await this.scripts.presLeave(this.keys.pres(room), this.nodeKey, user, f);
      return Number(n) === 0;
    } catch {
      // It may or may not have run: decide the QUIT later, as for a leave while Redis is down.
      if (v !== undefined) {
        this.leftWhileDown.set(f, reapedOf(f, v));
        setTimeout(() => void this.quitIfGone([f]), 1000).unref();
      }
      return false;
    }
  }

  /** Users online in a room on any node, sorted. Throws while Redis is down. */
  async online(room: string): Promise<string[]> {
    const users = await this.cmd.hkeys(this.keys.pres(room));
    return users.sort();
  }

  /** Those of `users` online in a room on any node (one HMGET). Throws while Redis is down. */
  async onlineAmong(room: string, users: string[]): Promise<Set<string>> {
    const counts = await this.cmd.hmget(this.keys.pres(room), ...users);
    const out = new Set<string>();
    for (let i = 0; i < users.length; i++) if (counts[i] !== null && Number(counts[i]) > 0) out.add(users[i]);
    return out;
  }

  /** A survivor reaped this node while it was cut off, and posted every QUIT it owed. */
  forgetLeftWhileDown(): void {
    this.leftWhileDown.clear();
  }

  /**
   * Make Redis hold exactly this node's presence: add what is missing (Redis restarted empty, or
   * this node was reaped while it stalled), remove what this node no longer has (leaves while Redis
   * was unreachable) and post the QUITs those leaves owe.
   */
  async resync(): Promise<void> {
    const have = await this.cmd.hgetall(this.nodeKey);
    const quits: Reaped[] = [];
    // Entries taken out of Redis below: a user who joins again here meanwhile (joins during the
    // recovery only update `local`) is put back by the second loop.
    const removed = new Set<string>();
    for (const [field, value] of Object.entries(have)) {
      if (this.local.has(field)) continue;
      this.leftWhileDown.delete(field); // decided here, from what Redis still had
      const q = reapedOf(field, value);
      const n = await this.scripts.presLeave(this.keys.pres(q.room), this.nodeKey, q.user, field);
      removed.add(field);
      // Back here while the leave ran: online all along as far as the room is told, so no QUIT.
      if (Number(n) === 0 && !this.local.has(field)) quits.push(q);
    }
    for (const [field, value] of this.local) {
      if (have[field] !== undefined && !removed.has(field)) continue;
      const [room, user] = JSON.parse(field) as [string, string];
      await this.scripts.presJoin(this.keys.pres(room), this.nodeKey, user, field, value);
    }
    if (quits.length > 0) this.onQuits(quits);
  }

  /** Users who left here while Redis was down: once it is back and the others re-registered, QUIT those online nowhere. */
  scheduleLeftWhileDown(delayMs: number): void {
    if (this.leftWhileDown.size === 0) return;
    // Redis may have restarted empty: the other nodes re-register their users when they see it
    // back. Then each user who left here meanwhile, and has not come back, gets a QUIT if they
    // are online nowhere.
    const keys = [...this.leftWhileDown.keys()];
    setTimeout(() => void this.quitIfGone(keys), delayMs).unref();
  }

  private async quitIfGone(keys: string[]): Promise<void> {
    const quits: Reaped[] = [];
    for (const field of keys) {
      const q = this.leftWhileDown.get(field);
      if (q === undefined || this.local.has(field)) continue; // decided meanwhile, or back here
      this.leftWhileDown.delete(field);
      try {
        // Our own entry may be there (re-added while the leave was pending): take it out first.
        const n = Number(await this.scripts.presLeave(this.keys.pres(q.room), this.nodeKey, q.user, field));
        const gone = n === 0 || (n < 0 && (await this.cmd.hexists(this.keys.pres(q.room), q.user)) === 0);
        const back = this.local.get(field);
        if (back !== undefined) {
          // Joined here again while this ran (its join may have landed before our leave): make
          // sure Redis counts this node, and no QUIT.
          await this.scripts.presJoin(this.keys.pres(q.room), this.nodeKey, q.user, field, back);
        } else if (gone) quits.push(q);
      } catch {
        // Redis went away again: presence stays unknown, no QUIT rather than a wrong one.
      }
    }
    if (quits.length > 0) this.onQuits(quits);
  }
}
