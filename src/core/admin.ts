// The host app's operations and the caller's own directory: rooms created and deleted, members
// added and removed, blocks, rooms by subject, "my rooms". Each change is made durable by the
// persistence actor first, then applied here and told to the other nodes of a cluster.

import type { Delivered, HooksOp, HooksReplyEvt, Message, MyRoomsResult, ReplyEvt, RoomInfo, RoomsResult } from '../../workers/contract.ts';
import type { ActorLink } from '../actor-link.ts';
import type { Identity } from '../auth.ts';
import type { Config } from '../config.ts';
import { ChatError, clientCode, MSG } from '../protocol/errors.ts';
import type { Access, Who } from './access.ts';
import type { Connections } from './connections.ts';
import type { History } from './history.ts';
import type { Membership } from './membership.ts';
import type { Receipts } from './receipts.ts';
import type { RoomGate } from './room-gate.ts';
import type { RoomRegistry } from './rooms.ts';
import type { Session } from './session.ts';
import type { TestHooks } from '../test-hooks.ts';
import type { Topology } from './topology.ts';
import type { WritePath } from './write-path.ts';

export interface RoomSpec {
  id: string | null;
  kind: RoomInfo['kind'];
  name: string | null;
  subject: string | null;
  members: string[];
}

export interface MyRoomView {
  id: string;
  kind: RoomInfo['kind'];
  name: string | null;
  subject: string | null;
  members: string[] | null;
  unread: number;
  last: Message | null;
}

function replyError(r: ReplyEvt): ChatError {
  return new ChatError(clientCode(r.error!), r.message ?? undefined);
}

export class Admin {
  private topology: Topology | null = null;

  constructor(
    private readonly cfg: Config,
    private readonly actor: ActorLink,
    private readonly rooms: RoomRegistry<Session>,
    private readonly gate: RoomGate,
    private readonly access: Access,
    private readonly connections: Connections,
    private readonly membership: Membership,
    private readonly history: History,
    private readonly writes: WritePath,
    private readonly receipts: Receipts,
    /** Test hooks (CHAT_TEST_HOOKS): host-app operations wait before the actor while `admin` is held. */
    private readonly hooks: TestHooks | null = null,
  ) {}

  /** An operation for the persistence actor, after the test hook's `admin` point. */
  private async request(op: Parameters<ActorLink['request']>[0]): Promise<ReplyEvt> {
    await this.hooks?.gate('admin');
    return this.actor.request(op);
  }

  useTopology(t: Topology): void {
    this.topology = t;
  }

  async createRoom(who: Identity, spec: RoomSpec): Promise<{ room: RoomInfo; created: boolean }> {
    if (!this.writes.accepting) throw new ChatError('overloaded', 'the engine is shutting down');
    let members = spec.members;
    if (!who.admin) {
      if (spec.kind === 'public' && this.cfg.auth !== 'none') throw new ChatError('forbidden', 'only the host app (admin) creates public rooms');
      if (spec.kind !== 'public' && this.cfg.auth === 'none' && this.cfg.guestRooms === 'public') throw new ChatError('forbidden', MSG.guestsPublicOnly);
      if (spec.kind !== 'public' && !members.includes(who.id)) members = [...members, who.id];
    }
    if (spec.kind === 'direct' && new Set(members).size !== 2) throw new ChatError('invalid', 'a direct room has exactly two members');
    // A user's room counts against their quota and may not include someone who blocks them.
    const r = await this.request({ op: 'createRoom', id: spec.id, kind: spec.kind, name: spec.name, subject: spec.subject, members, by: who.admin ? null : who.id });
    if (r.error !== null) throw replyError(r);
    return { room: r.room!, created: r.created };
  }

  async deleteRoom(roomId: string): Promise<void> {
    const r = await this.request({ op: 'deleteRoom', room: roomId });
    if (r.error !== null) throw replyError(r);
    this.membership.roomDeleted(roomId);
    this.topology!.broadcast({ t: 'deleted', room: roomId, v: r.version });
  }

  async setMembers(roomId: string, users: string[], present: boolean): Promise<RoomInfo> {
    const r = await this.request({ op: present ? 'addMembers' : 'removeMembers', room: roomId, users });
    if (r.error !== null) throw replyError(r);
    this.membership.membersChanged(roomId, r.room!);
    this.topology!.broadcast({ t: 'members', room: roomId, info: r.room!, v: r.version });
    return r.room!;
  }

  async setBlock(blocker: string, blocked: string, on: boolean): Promise<void> {
    const r = await this.request({ op: 'block', blocker, blocked, on });
    if (r.error !== null) throw replyError(r);
    this.applyBlock(blocker, blocked, on);
    this.topology!.broadcast({ t: 'block', blocker, blocked, on, v: r.version });
  }

  /** A block changed (here or on another node). */
  applyBlock(blocker: string, blocked: string, on: boolean): void {
    this.access.setBlock(blocker, blocked, on);
    this.membership.blocksChanged(blocker, this.connections.of(blocker));
  }

  blockList(user: string): string[] {
    return this.access.blockList(user);
  }

  /** A SYSTEM message from the host app; resolves with its ack once durable. */
  postSystem(roomId: string, text: string): ReturnType<WritePath['postSystem']> {
    return this.writes.postSystem(roomId, text);
  }

  /** DELETE /api/rooms/:room/messages/:id: the sender's own message, or any as an admin. */
  deleteMessage(roomId: string, id: string, who: Identity): ReturnType<WritePath['deleteHttp']> {
    return this.writes.deleteHttp(roomId, id, { userId: who.id, userName: who.name, admin: who.admin });
  }

  /** GET /api/rooms/:room/reads. */
  reads(roomId: string, who: Who): Promise<Record<string, number>> {
    return this.receipts.readsOf(roomId, who);
  }

  /** The webhook outbox's admin calls (docs/webhooks.md); not_found while webhooks are off. */
  async webhooks(op: HooksOp): Promise<HooksReplyEvt> {
    if (this.cfg.webhookUrl === null) throw new ChatError('not_found', 'webhooks are off (CHAT_WEBHOOK_URL is not set)');
    return this.actor.hooks(op);
  }

  /** Who is online in a room: user ids, sorted (cluster-wide in a cluster). */
  async online(roomId: string, who: Who): Promise<string[]> {
    const room = await this.gate.open(roomId, who);
    return this.topology!.online(room);
  }

  async roomsBySubject(who: Identity, subject: string): Promise<RoomInfo[]> {
    const res = await this.history.read<RoomsResult>({ kind: 'subject', subject });
    return res.rooms.filter((r) => r.members === null || who.admin || r.members.includes(who.id));
  }

  /**
   * The caller's rooms: `last` and `unread` leave out expired messages and those of users the
   * caller blocks. The store answers as of its last commit; a room loaded here may have newer
   * messages in its window (immediate delivery), which are added.
   */
  async myRooms(who: Identity): Promise<MyRoomView[]> {
    const notBefore = this.history.notBefore();
    const res = await this.history.read<MyRoomsResult>({ kind: 'myRooms', user: who.id, notBefore, blocked: this.access.blockList(who.id) });
    return res.rooms.map((r) => {
      let { unread, last } = r;
      const w = this.rooms.ready(r.info.id)?.window;
      let newest: Delivered | null = null;
      for (let i = (w?.size ?? 0) - 1; i >= 0 && w!.at(i).seq > r.lastSeq; i--) {
        const d = w!.at(i);
        if (!this.history.countsFor(who.id, d, notBefore)) continue;
        unread++;
        newest ??= d;
      }
      if (newest !== null) last = JSON.parse(newest.json) as Message;
      return { id: r.info.id, kind: r.info.kind, name: r.info.name, subject: r.info.subject, members: r.info.members, unread, last };
    });
  }
}
