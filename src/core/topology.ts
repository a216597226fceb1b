// What differs between one node and a node of a cluster, behind one interface chosen at start:
// how a room is loaded, how committed messages reach the room in seq order, how presence decides
// ENTER and QUIT, and how directory changes reach the other nodes. The core never asks which.

import type { Delivered, RoomInfo } from '../../workers/contract.ts';
import type { Room } from './rooms.ts';
import type { Session } from './session.ts';

/**
 * A directory change, typing or read receipt made on this node that the other nodes must apply; `v`: the
 * change's directory version (see DirectoryStore).
 */
export type ControlEvt =
  | { t: 'deleted'; room: string; v: number }
  | { t: 'members'; room: string; info: RoomInfo; v: number }
  | { t: 'block'; blocker: string; blocked: string; on: boolean; v: number }
  | { t: 'typing'; room: string; user: string; name: string }
  | { t: 'receipt'; room: string; user: string; seq: number };

export interface Topology {
  /** Ask for a room's state (the actor answers with a `room` event); `creator`: see RoomRegistry. */
  load(room: string, creator: string | null): void;
  /** The actor answered a load: the room is in the registry (or gone). */
  loaded(room: string): void;
  /** A committed message: publish it in its room's seq order, then run `after`. */
  committed(d: Delivered, after: (() => void) | null): void;
  /** One commit's results are all through `committed`. */
  endOfCommit(): void;
  /** Work for this room is in flight (a send, a join): it is not dropped as idle meanwhile. */
  touch(room: string): void;
  /**
   * A user's first connection here is joining: true when the user is now present nowhere else
   * (ENTER is due). Synchronous on one node; a cluster asks Redis.
   */
  enter(room: Room<Session>, user: string, name: string, announce: boolean): boolean | Promise<boolean>;
  /** The user's presence here ended (last connection left): QUIT if they are now present nowhere. */
  leave(room: Room<Session>, user: string, name: string, announce: boolean): void;
  /** A presence taken by `enter` is given back without a QUIT (the join failed, or no ENTER was posted). */
  withdraw(room: Room<Session>, user: string): void;
  /** Who is online in a room: user ids, sorted. */
  online(room: Room<Session>): Promise<string[]>;
  /**
   * Those of `users` with no connection joined to the room (on any node): a message's push
   * targets. Never fails: without presence (the bus down) it answers from this node's.
   */
  absent(room: Room<Session>, users: string[]): string[] | Promise<string[]>;
  /**
   * A room was deleted (here or on another node) and forgotten: what this node held for it goes
   * (`was`: the room object, loaded or loading; `users`: who was present in it here).
   */
  closed(room: string, was: Room<Session> | undefined, users: string[]): void;
  /** Tell the other nodes. */
  broadcast(evt: ControlEvt): void;
  /** Stop timers; a cluster node hands its presence over. */
  stop(): Promise<void>;
}
