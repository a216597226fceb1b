// A cluster node's copy of the directory (rooms' members, deleted rooms, blocks), kept in step with
// the store. Changes reach the other nodes as control events on the bus, which Redis does not keep:
// a node whose subscription was down, or that lost one event, would serve a deleted room or ignore
// a block until it restarts. So every change carries its directory version (taken in the change's
// transaction, see DirectoryStore), and on every sweep (every 10 s while the bus is up, every second
// while it is down, and right after a reconnect) the node asks the store what changed after the
// version it has seen, and applies what it missed through the same targets the events use.

import type { DirChangesResult, ReadTask, RoomInfo } from '../../workers/contract.ts';
import type { RoomRegistry } from '../core/rooms.ts';
import type { Session } from '../core/session.ts';
import type { ControlEvt } from '../core/topology.ts';
import type { Logger } from '../log.ts';

/** Rooms and blocks read per store round trip. */
const PAGE = 1000;

/** What a directory change is applied through (the control events' own targets). */
export interface DirectoryTarget {
  roomDeleted(room: string): void;
  membersChanged(room: string, info: RoomInfo): void;
  applyBlock(blocker: string, blocked: string, on: boolean): void;
}

type DirectoryEvt = Extract<ControlEvt, { v: number }>;

function keyOf(evt: DirectoryEvt): string {
  return evt.t === 'block' ? `b:${evt.blocker}\0${evt.blocked}` : `r:${evt.room}`;
}

export class DirectorySync {
  /** Every change up to this version is applied here (or concerned nothing this node serves). */
  private version: number;
  /** Changes applied above `version`, from events or this node's own: the latest version per room or block. */
  private readonly applied = new Map<string, number>();
  private syncing = false;

  constructor(
    initialVersion: number,
    private readonly read: (task: ReadTask) => Promise<DirChangesResult>,
    private readonly rooms: Pick<RoomRegistry<Session>, 'get'>,
    private readonly log: Logger,
    /** Test hook (CHAT_TEST_HOOKS): a sweep waits here, before it reads, while the point is held. */
    private readonly held: () => Promise<void> | null,
  ) {
    this.version = initialVersion;
  }

  /**
   * A directory event from another node, or this node's own change: false when a later change of
   * the same room or block is already applied (events of two nodes may cross on the bus).
   */
  note(evt: DirectoryEvt): boolean {
    if (typeof evt.v !== 'number') return true; // from a node that does not version its changes
    const key = keyOf(evt);
    if (evt.v <= this.version || evt.v <= (this.applied.get(key) ?? 0)) return false;
    this.applied.set(key, evt.v);
    return true;
  }

  /**
   * Apply what changed in the store after the version this node has seen. False when it did not
   * run to its end (another sweep was running, or the store failed).
   */
  async sweep(target: DirectoryTarget): Promise<boolean> {
    if (this.syncing) return false;
    this.syncing = true;
    try {
      await this.held();
      for (;;) {
        const res = await this.read({ kind: 'dirChanges', since: this.version, limit: PAGE });
        const upTo = this.apply(res, target);
        const moved = upTo > this.version;
        this.version = Math.max(this.version, upTo);
        for (const [key, v] of this.applied) if (v <= this.version) this.applied.delete(key);
        if (!moved || (res.rooms.length < PAGE && res.blocks.length < PAGE)) return true;
      }
    } catch (err) {
      // The store is unreachable: the next sweep asks again from the same version.
      this.log.warn({ err: String(err) }, 'directory sweep failed; retrying on the next sweep');
      return false;
    } finally {
      this.syncing = false;
    }
  }

  /** Apply the changes not applied yet; the version up to which everything is now applied. */
  private apply(res: DirChangesResult, target: DirectoryTarget): number {
    let upTo = res.upTo;
    for (const c of res.rooms) {
      const evt: DirectoryEvt = c.info === null ? { t: 'deleted', room: c.room, v: c.version } : { t: 'members', room: c.room, info: c.info, v: c.version };
      const room = this.rooms.get(c.room);
      if (room === undefined) continue; // not served here: it is read afresh when it loads
      // Loading: its snapshot may be older than this change, and members apply to a ready room
      // only. Look again on the next sweep.
      if (c.info !== null && !room.ready) {
        upTo = Math.min(upTo, c.version - 1);
        continue;
      }
      if (!this.note(evt)) continue;
      this.log.info({ room: c.room, version: c.version, change: evt.t }, 'directory change missed on the bus: applied from the store');
      if (c.info === null) target.roomDeleted(c.room);
      else target.membersChanged(c.room, c.info);
    }
    for (const b of res.blocks) {
      if (!this.note({ t: 'block', blocker: b.blocker, blocked: b.blocked, on: b.on, v: b.version })) continue;
      this.log.info({ blocker: b.blocker, blocked: b.blocked, version: b.version }, 'block missed on the bus: applied from the store');
      target.applyBlock(b.blocker, b.blocked, b.on);
    }
    return upTo;
  }
}
