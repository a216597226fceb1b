// Rooms as the front thread holds them: the hot window (the newest messages of each active room,
// so join and the first history page need no disk) and the registry that activates a room by
// asking the persistence actor for its state.

import type { Delivered, RoomInfo, RoomState } from '../workers/contract.ts';
import type { StompSub } from './stomp-session.ts';

/** A fixed-capacity ring of the newest messages of a room, contiguous in seq. */
export class Window {
  private readonly buf: (Delivered | undefined)[];
  private head = 0; // index of the oldest entry
  private n = 0;

  constructor(readonly capacity: number) {
    this.buf = new Array<Delivered | undefined>(capacity);
  }

  get size(): number {
    return this.n;
  }

  at(i: number): Delivered {
    return this.buf[(this.head + i) % this.capacity]!;
  }

  /** Seq of the oldest entry, or 0 when empty. */
  get firstSeq(): number {
    return this.n === 0 ? 0 : this.at(0).seq;
  }

  /** Append; returns true when the oldest entry had to make room (the window no longer starts at 1). */
  push(d: Delivered): boolean {
    if (this.n < this.capacity) {
      this.buf[(this.head + this.n) % this.capacity] = d;
      this.n++;
      return false;
    }
    this.buf[this.head] = d;
    this.head = (this.head + 1) % this.capacity;
    return true;
  }

  /** Index of the first entry whose id is > id (or >= id when `inclusive`). Ids ascend with seq. */
  search(id: string, inclusive: boolean): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.at(mid).id;
      if (v < id || (!inclusive && v === id)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the entry with exactly this id, or -1. */
  indexOf(id: string): number {
    const i = this.search(id, true);
    return i < this.n && this.at(i).id === id ? i : -1;
  }

  /** Index of the first entry at or after time `ms` (retention hides what is before it). */
  firstVisible(ms: number): number {
    if (ms <= 0) return 0;
    let i = 0;
    while (i < this.n && this.at(i).at < ms) i++;
    return i;
  }

  clear(): void {
    this.buf.fill(undefined);
    this.head = 0;
    this.n = 0;
  }

  slice(from: number, to: number): Delivered[] {
    const out: Delivered[] = [];
    for (let i = Math.max(0, from); i < Math.min(to, this.n); i++) out.push(this.at(i));
    return out;
  }
}

export type RoomKind = RoomInfo['kind'];

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
  /** STOMP topics of this room (one per subscription id and body style) -> connections on it. */
  readonly stompTopics = new Map<string, { sub: StompSub; count: number }>();
  ready = false;
  /** Continuations waiting for the actor's answer while the room loads. */
  waiters: { cb: (room: Room<S> | null) => void; create: boolean }[] = [];
  /** The load in flight asked the actor to create the room. */
  creating = false;
  readonly window: Window;
  /** Cluster: committed messages that arrived ahead of a gap (or while the room loads), by seq. */
  readonly held = new Map<number, { d: Delivered; cb: (() => void) | null }>();
  gapTimer: NodeJS.Timeout | null = null;
  /** Cluster: a gap fill from the store is in flight. */
  filling = false;
  /** Cluster: last time a local member left or a message was sent or committed here (ms). */
  lastUsed = Date.now();
  readonly jsonTopic: string;
  readonly msgpackTopic: string;

  constructor(readonly id: string, windowSize: number) {
    this.window = new Window(windowSize);
    this.jsonTopic = 'j/' + id;
    this.msgpackTopic = 'm/' + id;
  }

  setInfo(info: RoomInfo): void {
    this.info = info;
    this.kind = info.kind;
    this.epoch = info.epoch;
    this.members = info.members === null ? null : new Set(info.members);
  }

  install(s: RoomState): void {
    this.setInfo(s.info);
    this.lastSeq = s.lastSeq;
    this.complete = s.complete;
    for (const d of s.recent) if (this.window.push(d)) this.complete = false;
    this.ready = true;
  }

  /** Append a delivered message; false if it does not continue the sequence (a bug upstream). */
  append(d: Delivered): boolean {
    if (d.seq !== this.lastSeq + 1) return false;
    if (this.window.push(d)) this.complete = false;
    this.lastSeq = d.seq;
    return true;
  }
}

/** The active rooms of this node. Rooms without members are dropped beyond `maxIdle`. */
export class RoomRegistry<S extends RoomMember = RoomMember> {
  private readonly rooms = new Map<string, Room<S>>();

  constructor(
    private readonly windowSize: number,
    private readonly maxIdle: number,
    private readonly requestLoad: (room: string, create: boolean) => void,
  ) {}

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

  /** Call `cb` with the ready room (now, if loaded) or null if it does not exist. */
  activate(id: string, create: boolean, cb: (room: Room<S> | null) => void): void {
    let r = this.rooms.get(id);
    if (r !== undefined && r.ready) {
      cb(r);
      return;
    }
    if (r === undefined) {
      r = new Room<S>(id, this.windowSize);
      r.creating = create;
      this.rooms.set(id, r);
      this.requestLoad(id, create);
    }
    r.waiters.push({ cb, create });
  }

  /** The actor answered a load. */
  loaded(id: string, state: RoomState | null): void {
    const r = this.rooms.get(id);
    if (r === undefined || r.ready) return;
    const waiters = r.waiters;
    r.waiters = [];
    if (state === null) {
      // A load that did not create answered "no such room"; callers that may create ask again.
      const creators = waiters.filter((w) => w.create);
      const retry = creators.length > 0 && !r.creating;
      if (retry) {
        r.waiters = creators;
        r.creating = true;
        this.requestLoad(id, true);
      } else {
        this.rooms.delete(id);
      }
      for (const w of waiters) if (!(retry && w.create)) w.cb(null);
      return;
    }
    r.install(state);
    for (const w of waiters) w.cb(r);
    this.evictIdle();
  }

  private evictIdle(): void {
    if (this.rooms.size <= this.maxIdle) return;
    // Insertion order approximates age; drop rooms no local socket is subscribed to (nor about
    // to be: a join waiting for its ENTER attaches to this very room object).
    for (const [id, r] of this.rooms) {
      if (this.rooms.size <= this.maxIdle) break;
      if (r.ready && r.sessions.size === 0 && r.entering.size === 0 && r.joinsInFlight === 0) this.rooms.delete(id);
    }
  }

  /** Drop a room; callers still waiting for it to load are told it does not exist. */
  forget(id: string): void {
    const r = this.rooms.get(id);
    this.rooms.delete(id);
    if (r === undefined || r.ready) return;
    const waiters = r.waiters;
    r.waiters = [];
    for (const w of waiters) w.cb(null);
  }
}
