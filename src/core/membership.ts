// Who is in which room: join (authorize, ENTER if first, reply `joined`, subscribe, in that order)
// and leave (unsubscribe, QUIT if last), the queue of a connection's frames behind its join in
// flight, and what happens to joined connections when a room is deleted, its members change or
// their user blocks someone.

import type { Delivered, RoomInfo } from '../../workers/contract.ts';
import type { ActorLink } from '../actor-link.ts';
import type { Config } from '../config.ts';
import { MSG, type ErrorCode } from '../protocol/errors.ts';
import type { ReplyFields } from '../protocol/frames.ts';
import type { TestHooks } from '../test-hooks.ts';
import type { Access } from './access.ts';
import type { History } from './history.ts';
import type { Receipts } from './receipts.ts';
import type { Replies } from './replies.ts';
import type { RoomGate } from './room-gate.ts';
import type { Room, RoomRegistry } from './rooms.ts';
import type { JoinInFlight, Session } from './session.ts';
import type { Topology } from './topology.ts';
import type { WritePath } from './write-path.ts';

/** Joins and leaves of one room a connection may queue behind a join in flight. */
const MAX_QUEUED_PER_ROOM = 64;

export class Membership {
  /** Set once the topology exists (it needs the membership for its control events). */
  private topology: Topology | null = null;

  constructor(
    private readonly cfg: Config,
    private readonly rooms: RoomRegistry<Session>,
    private readonly gate: RoomGate,
    private readonly access: Access,
    private readonly history: History,
    private readonly writes: WritePath,
    private readonly actor: ActorLink,
    private readonly replies: Replies,
    private readonly receipts: Receipts,
    /** Test hooks (CHAT_TEST_HOOKS): joins wait before their page and reply while held. */
    private readonly hooks: TestHooks | null,
  ) {}

  useTopology(t: Topology): void {
    this.topology = t;
  }

  /** Does this room get ENTER/QUIT messages (CHAT_ENTER_QUIT)? */
  announces(room: Room<Session>): boolean {
    return this.cfg.enterQuit === 'all' || (this.cfg.enterQuit === 'public' && room.kind === 'public');
  }

  /** Join a room (native `join`, STOMP SUBSCRIBE): authorize, ENTER if first, reply, subscribe. */
  join(s: Session, roomId: string, since: string | undefined, limit: number, ref: string | undefined): void {
    const inFlight = s.joining?.get(roomId);
    if (inFlight !== undefined) return this.queueBehindJoin(s, inFlight, () => this.join(s, roomId, since, limit, ref), ref);
    // Joins still in flight count: a client may not pass the cap by not waiting for replies.
    if (!s.inRoom(roomId) && this.roomsHeld(s) >= this.cfg.maxRoomsPerConn) {
      return this.replies.error(s, 'forbidden', `a connection may join at most ${this.cfg.maxRoomsPerConn} rooms`, ref);
    }
    const entry: JoinInFlight = { room: null, after: [] };
    (s.joining ??= new Map()).set(roomId, entry);
    const topology = this.topology!;
    this.gate.enter(roomId, this.gate.canCreate, s, (room) => {
      if (s.closed) return;
      entry.room = room;
      room.joinsInFlight++;
      topology.touch(room.id); // (cluster) not dropped as idle while this join completes
      const replyNow = (enter?: Delivered): void => {
        if (since !== undefined) return this.history.recover(s, room, since, limit, (messages, recovered) => this.joined(s, room, messages, recovered, ref));
        this.history.latestPage(room, limit, (page) => {
          // With limit 0 the page is empty, but a member's own ENTER is always in joined.messages
          // (the last of them, unless other nodes' messages came right after it in a cluster).
          if (enter !== undefined && (page.length === 0 || page[page.length - 1].seq < enter.seq)) page.push(enter);
          this.joined(s, room, page, undefined, ref);
        });
      };
      // Test hook: a held join waits here, before its page is read and its reply sent.
      const reply = (enter?: Delivered): void => {
        const held = this.hooks?.gate('join');
        if (held) void held.then(() => replyNow(enter));
        else replyNow(enter);
      };
      const first = !s.inRoom(room.id) && !room.presence.has(s.userId) && !room.entering.has(s.userId);
      if (!first) return reply();
      // First connection of this user in the room (here): ENTER if the user is present nowhere
      // else. The joined reply waits until the ENTER is published, so the member's own ENTER is
      // the last of joined.messages.
      const announce = this.announces(room);
      room.entering.add(s.userId);
      const decide = (firstAnywhere: boolean): void => {
        if (s.closed) {
          // Gone while presence was checked (cluster): nothing was announced, give it back.
          room.entering.delete(s.userId);
          if (!this.present(room, s.userId)) topology.withdraw(room, s.userId);
          return;
        }
        if (firstAnywhere && announce) return this.postEnter(s, room, reply, ref);
        room.entering.delete(s.userId);
        reply();
      };
      const firstAnywhere = topology.enter(room, s.userId, s.userName, announce);
      if (typeof firstAnywhere === 'boolean') decide(firstAnywhere);
      else void firstAnywhere.then(decide);
    }, (code, msg) => this.joinFailed(s, roomId, code, msg, ref));
  }

  /** Still joined here on a connection, or about to be. */
  private present(room: Room<Session>, userId: string): boolean {
    return room.presence.has(userId) || room.entering.has(userId);
  }

  /**
   * Post the user's ENTER (the user is in room.entering); `reply` (the joined reply) runs once it is
   * published, or at once without it if the buffer is full.
   */
  private postEnter(s: Session, room: Room<Session>, reply: (enter?: Delivered) => void, ref: string | undefined): void {
    const topology = this.topology!;
    const posted = this.writes.postEvent(room.id, 'ENTER', s.userId, s.userName, `${s.userName} entered`, {
      delivered: (d) => {
        room.entering.delete(s.userId);
        if (!s.closed) return reply(d);
        // The ENTER is stored, the connection gone before it could attach: QUIT, unless the user
        // is in the room on another connection (cluster: on another node).
        if (!this.present(room, s.userId)) topology.leave(room, s.userId, s.userName, this.announces(room));
      },
      settled: (r) => {
        if (r.error === null) return;
        room.entering.delete(s.userId);
        if (!this.present(room, s.userId)) topology.withdraw(room, s.userId);
        this.joinFailed(s, room.id, r.error, r.message ?? MSG.noSuchRoom, ref);
      },
    });
    if (!posted) {
      // No room in the write buffer for the ENTER: join without it.
      room.entering.delete(s.userId);
      return reply();
    }
    // Public rooms become "mine" (GET /api/me/rooms) from here, in the ENTER's own commit; what
    // came before (the ENTER included) is not unread. seq -1: the latest seq of the room.
    if (room.kind === 'public') this.actor.send({ t: 'mark', room: room.id, user: s.userId, seq: -1, id: '', ifAbsent: true });
  }

  /** Reply `joined` and subscribe in the same turn: live msgs continue at joined.seq + 1. */
  private joined(s: Session, room: Room<Session>, messages: Delivered[], recovered: boolean | undefined, ref: string | undefined): void {
    if (s.closed || s.ws === null) return;
    // Deleted, or the user removed from its members, while this join waited (a store read, Redis,
    // its ENTER): nothing to attach to, and (cluster) the presence it registered goes, no QUIT.
    const refused = room.deleted ? 'not_found' : !s.inRoom(room.id) && !this.access.mayAccess(room, s) ? 'forbidden' : null;
    if (refused !== null) {
      if (!this.present(room, s.userId)) this.topology!.withdraw(room, s.userId);
      return this.joinFailed(s, room.id, refused, refused === 'not_found' ? MSG.noSuchRoom : MSG.notMember, ref);
    }
    const fields: ReplyFields = { op: 'joined', room: room.id, epoch: room.epoch, seq: room.lastSeq };
    if (recovered !== undefined) fields.recovered = recovered;
    fields.reads = this.receipts.readsFor(room, s.userId);
    this.replies.reply(s, fields, this.access.visibleTo(s.userId, messages), ref);
    if (!s.inRoom(room.id)) this.attach(s, room);
    this.settleJoin(s, room.id);
  }

  /** A join answered with an error instead of `joined`. */
  private joinFailed(s: Session, roomId: string, code: ErrorCode, msg: string, ref: string | undefined): void {
    this.replies.error(s, code, msg, ref);
    this.settleJoin(s, roomId);
  }

  /** Rooms a connection is in or is joining. */
  private roomsHeld(s: Session): number {
    let n = s.roomCount;
    if (s.joining !== null) for (const id of s.joining.keys()) if (!s.inRoom(id)) n++;
    return n;
  }

  private queueBehindJoin(s: Session, inFlight: JoinInFlight, run: () => void, ref: string | undefined): void {
    if (inFlight.after.length >= MAX_QUEUED_PER_ROOM) {
      return this.replies.error(s, 'rate_limited', `at most ${MAX_QUEUED_PER_ROOM} joins and leaves of a room may wait for its join`, ref);
    }
    inFlight.after.push(run);
  }

  /** The join of `roomId` has answered: run what waited for it, in order (stopping at another join). */
  private settleJoin(s: Session, roomId: string): void {
    const entry = s.joining?.get(roomId);
    if (entry === undefined) return;
    s.joining!.delete(roomId);
    if (s.joining!.size === 0) s.joining = null; // an idle connection holds no Map
    if (entry.room !== null) entry.room.joinsInFlight--;
    const after = entry.after;
    for (let i = 0; i < after.length; i++) {
      if (s.closed) return;
      after[i]();
      const next = s.joining?.get(roomId);
      if (next !== undefined) {
        next.after = next.after.concat(after.slice(i + 1));
        return;
      }
    }
  }

  private markPresence(room: Room<Session>, userId: string, delta: number): number {
    const n = (room.presence.get(userId) ?? 0) + delta;
    if (n <= 0) room.presence.delete(userId);
    else room.presence.set(userId, n);
    return n;
  }

  /** Subscribe a connection: the room's native topic, or one-by-one sends if its user blocks anyone. */
  private attach(s: Session, room: Room<Session>): void {
    s.addRoom(room.id);
    if (!room.sessions.has(s)) {
      room.sessions.add(s);
      this.markPresence(room, s.userId, +1);
    }
    if (this.access.hidesAnyone(s.userId)) room.filtered.add(s);
    else this.subscribe(s, room);
  }

  private subscribe(s: Session, room: Room<Session>): void {
    const topic = s.wire.topic(room.id);
    if (topic === null) return;
    s.wire.subscribed(room.id, true);
    s.ws!.subscribe(topic);
  }

  /** A closed socket's topics are dropped by uWS itself; the wire's own count is kept here. */
  private unsubscribe(s: Session, room: Room<Session>): void {
    const topic = s.wire.topic(room.id);
    if (topic === null) return;
    s.wire.subscribed(room.id, false);
    if (s.ws !== null && !s.closed) s.ws.unsubscribe(topic);
  }

  /** Unsubscribe; the user's last connection leaving the room posts QUIT. */
  private detach(s: Session, room: Room<Session>): void {
    s.removeRoom(room.id);
    if (!room.sessions.delete(s)) return;
    if (!room.filtered.delete(s)) this.unsubscribe(s, room);
    this.topology!.touch(room.id);
    if (this.markPresence(room, s.userId, -1) !== 0) return;
    // Another connection of the user is joining (its ENTER on the way): still present, no QUIT.
    if (room.entering.has(s.userId)) return;
    // A node that is stopping posts no QUIT (a cluster node hands its presence to a survivor).
    if (!this.writes.accepting) return;
    this.topology!.leave(room, s.userId, s.userName, this.announces(room));
  }

  leave(s: Session, roomId: string, ref: string | undefined): void {
    // After a join in flight has answered: `joined`, then `left`.
    const inFlight = s.joining?.get(roomId);
    if (inFlight !== undefined) return this.queueBehindJoin(s, inFlight, () => this.leave(s, roomId, ref), ref);
    const room = this.rooms.ready(roomId);
    if (room !== undefined && s.inRoom(roomId)) this.detach(s, room);
    this.replies.reply(s, { op: 'left', room: roomId }, undefined, ref);
  }

  /** The connection closed: its joins in flight are void, and it leaves every room. */
  onClose(s: Session): void {
    if (s.joining !== null) for (const j of s.joining.values()) if (j.room !== null) j.room.joinsInFlight--;
    s.joining = null;
    for (const roomId of s.roomIds()) {
      const room = this.rooms.ready(roomId);
      if (room !== undefined) this.detach(s, room);
    }
    s.leaveAllRooms();
  }

  /**
   * A deleted room (here or on another node): every joined connection is detached and told, the
   * room forgotten; joins waiting for it are answered not_found. No QUIT: the room is gone.
   */
  roomDeleted(roomId: string): void {
    const any = this.rooms.get(roomId);
    if (any !== undefined) any.deleted = true;
    const room = this.rooms.ready(roomId);
    const users = room === undefined ? [] : [...room.presence.keys()];
    if (room !== undefined) {
      room.presence.clear();
      for (const s of [...room.sessions]) {
        if (!room.filtered.delete(s)) this.unsubscribe(s, room);
        s.removeRoom(roomId);
        this.replies.reply(s, { op: 'left', room: roomId, reason: 'deleted' });
      }
      room.sessions.clear();
    }
    this.rooms.forget(roomId);
    this.topology!.closed(roomId, any, users);
  }

  /** A room's member list changed: update it and detach the connections no longer allowed in. */
  membersChanged(roomId: string, info: RoomInfo): void {
    const room = this.rooms.ready(roomId);
    if (room === undefined) return;
    room.setInfo(info);
    for (const s of [...room.sessions]) {
      if (!this.access.mayAccess(room, s)) {
        this.detach(s, room);
        this.replies.reply(s, { op: 'left', room: roomId, reason: 'removed' });
      }
    }
  }

  /** `blocker`'s blocks changed: move their connections between the native topic and the filtered list. */
  blocksChanged(blocker: string, sessions: Iterable<Session>): void {
    const hides = this.access.hidesAnyone(blocker);
    for (const s of sessions) {
      for (const roomId of s.roomIds()) {
        const room = this.rooms.ready(roomId);
        if (room === undefined || s.ws === null) continue;
        if (hides && !room.filtered.has(s)) {
          this.unsubscribe(s, room);
          room.filtered.add(s);
        } else if (!hides && room.filtered.delete(s)) {
          this.subscribe(s, room);
        }
      }
    }
  }
}
