// The cluster topology: this node is one of several sharing a MySQL store over a Redis bus. Rooms
// are subscribed on the bus before their state is read (so nothing committed after the snapshot
// is missed); committed messages, this node's and the others', go through the sequencer; presence
// is cluster-wide; directory changes and typing are told to the other nodes and applied from them,
// and directory changes the bus did not bring are applied from the store on every sweep.

import type { Delivered, RoomInfo } from '../../workers/contract.ts';
import type { ActorLink } from '../actor-link.ts';
import type { Room, RoomRegistry } from '../core/rooms.ts';
import type { Session } from '../core/session.ts';
import type { ControlEvt, Topology } from '../core/topology.ts';
import { ChatError } from '../protocol/errors.ts';
import type { TestHooks } from '../test-hooks.ts';
import type { Bus } from './bus.ts';
import type { DirectorySync } from './directory.ts';
import type { Sequencer } from './sequencer.ts';

/** A room without local members stays subscribed this long, then is dropped. */
const IDLE_MS = 5_000;

/** What a cluster node applies when another node tells it, and the QUITs it posts. */
export interface ClusterTarget {
  roomDeleted(room: string): void;
  membersChanged(room: string, info: RoomInfo): void;
  applyBlock(blocker: string, blocked: string, on: boolean): void;
  relayTyping(room: string, user: string, name: string): void;
  relayReceipt(room: string, user: string, seq: number): void;
  postQuit(room: string, user: string, name: string): void;
}

export class ClusterNode implements Topology {
  /** Rooms are dropped by this node's idle sweep, never by the registry's cap. */
  static readonly MAX_IDLE_ROOMS = Number.MAX_SAFE_INTEGER;
  /** This commit's messages, per room, for the other nodes. */
  private byRoom = new Map<string, Delivered[]>();
  private readonly timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private target: ClusterTarget | null = null;

  constructor(
    private readonly bus: Bus,
    private readonly actor: ActorLink,
    private readonly rooms: RoomRegistry<Session>,
    private readonly seq: Sequencer,
    private readonly directory: DirectorySync,
    /** Test hooks (CHAT_TEST_HOOKS): directory events from other nodes may be dropped. */
    private readonly hooks: TestHooks | null,
  ) {}

  /** Start listening to the bus and the periodic sweeps. */
  start(target: ClusterTarget): void {
    this.target = target;
    this.bus.listen({
      onMessages: (roomId, msgs) => {
        const room = this.rooms.get(roomId); // ready, or loading (held until its snapshot is in)
        if (room === undefined) return;
        for (const d of msgs) this.seq.offer(room, d, null);
      },
      onControl: (evt) => {
        if (evt.t === 'typing') return target.relayTyping(evt.room, evt.user, evt.name);
        if (evt.t === 'receipt') return target.relayReceipt(evt.room, evt.user, evt.seq);
        // Test hook: the event is lost, as if the subscription had been down.
        if (this.hooks?.dropsControl()) return;
        // A later change of the same room or block is applied already (events of two nodes crossed).
        if (!this.directory.note(evt)) return;
        switch (evt.t) {
          case 'deleted': return target.roomDeleted(evt.room);
          case 'members': return target.membersChanged(evt.room, evt.info);
          case 'block': return target.applyBlock(evt.blocker, evt.blocked, evt.on);
        }
      },
      onReconnect: () => {
        // Subscriptions are being restored; whatever was committed meanwhile is in the store.
        setTimeout(() => void this.sweep(), 200).unref();
        setTimeout(() => void this.sweep(), 2000).unref();
      },
      onReaped: (quits) => {
        for (const q of quits) {
          // Never a QUIT for someone online here (a leave and a rejoin raced a presence resync).
          const room = this.rooms.get(q.room);
          if (room !== undefined && (room.presence.has(q.user) || room.entering.has(q.user))) continue;
          if (q.announce) target.postQuit(q.room, q.user, q.name);
        }
      },
    });
    // A gap at the end of a room (its last messages' publish lost, nothing after them yet) shows
    // only when asked: every 10 s each served room's last seq is compared with the store's.
    // While the bus is down, every second: a node that only receives would otherwise see nothing
    // of what the other nodes commit until Redis is back.
    let tick = 0;
    this.timers.push(setInterval(() => {
      this.dropIdleRooms();
      if (!this.bus.up || ++tick % 10 === 0) void this.sweep();
    }, 1000));
    for (const t of this.timers) t.unref();
  }

  /** Fill what the bus lost: messages (gaps) and directory changes, from the store. */
  private async sweep(): Promise<void> {
    if (this.stopping || this.target === null) return;
    const [, swept] = await Promise.all([this.seq.sweep(), this.directory.sweep(this.target)]);
    if (swept) this.hooks?.swept();
  }

  load(room: string, creator: string | null): void {
    void this.bus.broker.subscribe(room).then(() => this.actor.send({ t: 'load', room, creator }));
  }

  loaded(roomId: string): void {
    // No such room: nothing to listen to on the bus either.
    if (this.rooms.get(roomId) === undefined) return this.bus.broker.unsubscribe(roomId);
    const room = this.rooms.ready(roomId);
    if (room !== undefined) this.seq.loaded(room);
  }

  /** To the other nodes (after the commit), and here in seq order with theirs. */
  committed(d: Delivered, after: (() => void) | null): void {
    let list = this.byRoom.get(d.room);
    if (list === undefined) this.byRoom.set(d.room, (list = []));
    list.push(d);
    const room = this.rooms.get(d.room);
    if (room === undefined) return after?.();
    this.seq.touch(room);
    this.seq.offer(room, d, after);
  }

  endOfCommit(): void {
    if (this.byRoom.size === 0) return;
    this.bus.broker.publish(this.byRoom);
    this.byRoom = new Map();
  }

  touch(roomId: string): void {
    const room = this.rooms.ready(roomId);
    if (room !== undefined) this.seq.touch(room);
  }

  /** Register the presence in Redis: ENTER only if no other node has the user in the room. */
  enter(room: Room<Session>, user: string, name: string, announce: boolean): Promise<boolean> {
    return this.bus.presence.join(room.id, user, name, announce);
  }

  /** QUIT only if the user is now online on no node. */
  leave(room: Room<Session>, user: string, name: string, announce: boolean): void {
    void this.bus.presence.leave(room.id, user).then((last) => {
      if (last && announce) this.target?.postQuit(room.id, user, name);
    });
  }

  withdraw(room: Room<Session>, user: string): void {
    void this.bus.presence.leave(room.id, user);
  }

  async online(room: Room<Session>): Promise<string[]> {
    try {
      return await this.bus.presence.online(room.id);
    } catch {
      throw new ChatError('overloaded', 'presence is unavailable while the bus is down; retry');
    }
  }

  async absent(room: Room<Session>, users: string[]): Promise<string[]> {
    const here = users.filter((u) => !room.presence.has(u));
    if (here.length === 0 || !this.bus.up) return here;
    try {
      const there = await this.bus.presence.onlineAmong(room.id, here);
      return here.filter((u) => !there.has(u));
    } catch {
      return here; // presence unknown: a push too many rather than one missed
    }
  }

  closed(roomId: string, was: Room<Session> | undefined, users: string[]): void {
    // Its presence goes with it (no QUIT: the room is gone).
    for (const user of users) void this.bus.presence.leave(roomId, user);
    if (was !== undefined) this.seq.closed(was);
    this.bus.broker.unsubscribe(roomId);
  }

  broadcast(evt: ControlEvt): void {
    if (evt.t !== 'typing' && evt.t !== 'receipt') this.directory.note(evt); // applied here already
    this.bus.broker.control(evt);
  }

  /** Rooms no local connection is in stop being served here after IDLE_MS. */
  private dropIdleRooms(): void {
    const now = Date.now();
    for (const r of [...this.rooms.values()]) {
      if (!r.ready || r.sessions.size > 0 || r.entering.size > 0 || r.joinsInFlight > 0) continue;
      if (!this.seq.idle(r, now, IDLE_MS)) continue;
      this.rooms.forget(r.id);
      this.bus.broker.unsubscribe(r.id);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
  }
}
