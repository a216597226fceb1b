// Rooms as the front thread holds them (kind, members, who is joined, the hot window) and the
// registry that activates a room by asking for its state (the persistence actor answers).

import type { Delivered, RoomEvt, RoomInfo, RoomState } from '../../workers/contract.ts';
import { jsonTopic, msgpackTopic } from '../protocol/wire.ts';
import { detached, detachedInfo } from './detached.ts';
import { Window, WindowBudget } from './window.ts';

export type RoomKind = RoomInfo['kind'];

/** Why a room was not created when that was asked (the actor's RoomEvt.refused). */
export type Refused = NonNullable<RoomEvt['refused']>;

/** What the engine needs of a connection here; engine.ts's Session satisfies it. */
export interface RoomMember {
  userId: string;
}

export class Room<S extends RoomMember = RoomMember> {
  kind: RoomKind = 'public';
  epoch = '';
  info: RoomInfo | null = null;
  /** Who may read and post: null for a public room (anyone). */
  members: Set<string> | null = null;
  /** The last seq delivered to members. */
  lastSeq = 0;
  /** The window holds every message the room still has. */
  complete = false;
  /** Connections of this node that joined the room. */
  readonly sessions = new Set<S>();
  /** Joined connections whose user blocks someone: sent to one by one, filtered, not via the topic. */
  readonly filtered = new Set<S>();
  /** Joined connections per user, for ENTER (first) and QUIT (last). */
  readonly presence = new Map<string, number>();
  /** Users whose ENTER is on its way (their joined reply waits for it). */
  readonly entering = new Set<string>();
  /** Joins that have this room object and have not answered yet (it is not evicted meanwhile). */
  joinsInFlight = 0;
  /** Deleted: forgotten by the registry; a join still holding this object must not attach to it. */
  deleted = false;
  ready = false;
  /** Read positions (user -> seq) where the room shares receipts (core/receipts.ts). */
  readonly reads = new Map<string, number>();
  /** Continuations waiting for the actor's answer while the room loads (creator: who would create it). */
  waiters: { cb: (room: Room<S> | null, refused?: Refused) => void; creator: string | null }[] = [];
  /** The load in flight asked the actor to create the room. */
  creating = false;
  readonly window: Window;
  readonly jsonTopic: string;
  readonly msgpackTopic: string;

  constructor(readonly id: string, window: Window) {
    this.window = window;
    this.jsonTopic = jsonTopic(id);
    this.msgpackTopic = msgpackTopic(id);
  }

  /** The room's info, as the actor sent it (its strings kept as copies: detached.ts). */
  setInfo(sent: RoomInfo): void {
    const info = detachedInfo(sent);
    this.info = info;
    this.kind = info.kind;
    this.epoch = info.epoch;
    this.members = info.members === null ? null : new Set(info.members);
  }

  install(s: RoomState): void {
    this.setInfo(s.info);
    this.lastSeq = s.lastSeq;
    this.complete = s.complete;
    // Decoded from the actor's batch: what is kept is copied (the window copies each id itself).
    for (const d of s.recent) {
      d.from = detached(d.from);
      d.json = detached(d.json);
      if (this.window.push(d)) this.complete = false;
    }
    for (const [user, seq] of s.reads) this.reads.set(detached(user), seq);
    this.ready = true;
  }

  /**
   * Append a delivered message; false if it does not continue the sequence (a bug upstream). A
   * DELETE or EDIT rewrites its target in the window first (on every node: a cluster's other
   * nodes get the event like any message).
   */
  append(d: Delivered): boolean {
    if (d.seq !== this.lastSeq + 1) return false;
    this.window.retract(d);
    if (this.window.push(d)) this.complete = false;
    this.lastSeq = d.seq;
    return true;
  }
}

/** How big each room's hot window may be, and the budget all of them share. */
export interface WindowLimits {
  /** Messages (CHAT_WINDOW). */
  count: number;
  /** Bytes of one room's window (CHAT_WINDOW_BYTES). */
  bytes: number;
  /** Bytes of every window together (CHAT_WINDOWS_MAX_BYTES). */
  total: number;
}

/**
 * The active rooms of this node. Rooms nobody is in are dropped beyond `maxIdle` rooms, and (on a
 * single node) while the windows together hold more bytes than their budget.
 */
export class RoomRegistry<S extends RoomMember = RoomMember> {
  private readonly rooms = new Map<string, Room<S>>();
  readonly budget: WindowBudget;

  constructor(
    private readonly windows: WindowLimits,
    private readonly maxIdle: number,
    /** Ask for a room's state; `creator`: create it (public) as this user's if it does not exist. */
    private readonly requestLoad: (room: string, creator: string | null) => void,
  ) {
    this.budget = new WindowBudget(windows.total);
    // A cluster node drops idle rooms itself (it must leave their bus channels): no eviction here.
    if (Number.isFinite(maxIdle) && maxIdle < Number.MAX_SAFE_INTEGER) this.budget.relieve = () => this.evictIdle();
  }

  get size(): number {
    return this.rooms.size;
  }

  /** The room whether ready or still loading. */
  get(id: string): Room<S> | undefined {
    return this.rooms.get(id);
  }

  values(): IterableIterator<Room<S>> {
    return this.rooms.values();
  }

  /** The room if it is loaded and ready, else undefined. */
  ready(id: string): Room<S> | undefined {
    const r = this.rooms.get(id);
    return r !== undefined && r.ready ? r : undefined;
  }

  /**
   * Call `cb` with the ready room (now, if loaded), or null if it does not exist (`refused`: why it
   * was not created for `creator`, null: do not create it).
   */
  activate(id: string, creator: string | null, cb: (room: Room<S> | null, refused?: Refused) => void): void {
    let r = this.rooms.get(id);
    if (r !== undefined && r.ready) {
      cb(r);
      return;
    }
    if (r === undefined) {
      r = new Room<S>(id, new Window(id, this.windows.count, this.windows.bytes, this.budget));
      r.creating = creator !== null;
      this.rooms.set(id, r);
      this.requestLoad(id, creator);
    }
    r.waiters.push({ cb, creator });
  }

  /** The actor answered a load. */
  loaded(id: string, state: RoomState | null, refused?: Refused): void {
    const r = this.rooms.get(id);
    if (r === undefined || r.ready) return;
    const waiters = r.waiters;
    r.waiters = [];
    if (state === null) {
      // A load that did not create answered "no such room"; callers that may create ask again.
      const creators = waiters.filter((w) => w.creator !== null);
      const retry = creators.length > 0 && !r.creating;
      if (retry) {
        r.waiters = creators;
        r.creating = true;
        this.requestLoad(id, creators[0].creator);
      } else {
        this.drop(id, r);
      }
      // A refusal (a quota) is told to those who asked to create the room.
      for (const w of waiters) if (!(retry && w.creator !== null)) w.cb(null, w.creator !== null ? refused : undefined);
      return;
    }
    r.install(state);
    for (const w of waiters) w.cb(r);
    this.evictIdle();
  }

  private over(): boolean {
    return this.rooms.size > this.maxIdle || this.budget.total > this.budget.max;
  }

  private evictIdle(): void {
    if (!this.over()) return;
    // Insertion order approximates age; drop rooms no local socket is subscribed to (nor about
    // to be: a join waiting for its ENTER attaches to this very room object).
    for (const [id, r] of this.rooms) {
      if (!this.over()) break;
      if (r.ready && r.sessions.size === 0 && r.entering.size === 0 && r.joinsInFlight === 0) this.drop(id, r);
    }
  }

  private drop(id: string, r: Room<S>): void {
    this.rooms.delete(id);
    r.window.clear();
  }

  /** Drop a room; callers still waiting for it to load are told it does not exist. */
  forget(id: string): void {
    const r = this.rooms.get(id);
    if (r === undefined) return;
    this.drop(id, r);
    if (r.ready) return;
    const waiters = r.waiters;
    r.waiters = [];
    for (const w of waiters) w.cb(null);
  }
}
