// The single-node topology: rooms load from the actor, committed messages are published at once
// (they arrive in seq order), presence is this node's own, and there is nobody else to tell.

import type { Delivered } from '../../workers/contract.ts';
import type { ActorLink } from '../actor-link.ts';
import type { Fanout } from './fanout.ts';
import type { Room, RoomRegistry } from './rooms.ts';
import type { Session } from './session.ts';
import type { Topology } from './topology.ts';
import type { WritePath } from './write-path.ts';

export class LocalNode implements Topology {
  /** Rooms nobody is in that stay loaded at most (the oldest go first). */
  static readonly MAX_IDLE_ROOMS = 10_000;

  constructor(
    private readonly actor: ActorLink,
    private readonly rooms: RoomRegistry<Session>,
    private readonly fanout: Fanout,
    private readonly writes: WritePath,
  ) {}

  load(room: string, creator: string | null): void {
    this.actor.send({ t: 'load', room, creator });
  }

  loaded(): void {}

  committed(d: Delivered, after: (() => void) | null): void {
    const room = this.rooms.ready(d.room);
    if (room !== undefined) this.fanout.publish(room, d); // no local member: the room loads it from the store
    after?.();
  }

  endOfCommit(): void {}

  touch(): void {}

  /** The first connection here is the first anywhere. */
  enter(): boolean {
    return true;
  }

  leave(room: Room<Session>, user: string, name: string, announce: boolean): void {
    if (announce) this.writes.postQuit(room.id, user, name);
  }

  withdraw(): void {}

  online(room: Room<Session>): Promise<string[]> {
    return Promise.resolve([...room.presence.keys()].sort());
  }

  absent(room: Room<Session>, users: string[]): string[] {
    return users.filter((u) => !room.presence.has(u));
  }

  closed(): void {}

  broadcast(): void {}

  stop(): Promise<void> {
    return Promise.resolve();
  }
}
