// Host-app and membership operations (createRoom, deleteRoom, addMembers, removeMembers, block):
// each answers with the room as it is afterwards, and a directory change with its version. The
// quotas are checked here, against the store (quotas.ts).

import { ChatError, MSG } from '../../src/protocol/errors.ts';
import type { AdminOp, ReplyEvt } from '../contract.ts';
import type { IdGenerator } from '../ids.ts';
import { roomInfo } from '../stores/rows.ts';
import { blockEvent, memberEvents, roomCreated, roomDeleted, type NewEvent } from '../stores/events.ts';
import type { DirectoryStore, RoomRow } from '../stores/store.ts';
import type { GroupCommit } from './group-commit.ts';
import type { Quotas } from './quotas.ts';
import type { RoomCache } from './room-cache.ts';
import type { Webhooks } from './webhooks.ts';

type Refusal = Exclude<ReplyEvt['error'], null>;

export class Admin {
  constructor(
    private readonly store: Omit<DirectoryStore, 'allBlocks'>,
    private readonly ids: Pick<IdGenerator, 'next'>,
    private readonly commits: Pick<GroupCommit, 'flushRoom'>,
    private readonly rooms: Pick<RoomCache, 'delete'>,
    private readonly quotas: Quotas,
    /** Webhooks on: each change writes its events in its own transaction. */
    private readonly hooks: Pick<Webhooks, 'full' | 'poke'> | null,
  ) {}

  /** The events of a change, each admitted to the outbox (or dead-lettered when it is full). */
  private events(make: (dead: () => boolean) => NewEvent[]): NewEvent[] {
    const hooks = this.hooks;
    return hooks === null ? [] : make(() => hooks.full());
  }

  async request(reqId: number, op: AdminOp): Promise<ReplyEvt> {
    const fail = (error: Refusal, message: string): ReplyEvt => ({ t: 'reply', reqId, error, message, room: null, created: false, version: 0 });
    try {
      return await this.run(reqId, op, fail);
    } catch (err) {
      // A quota or block refusal: its code and message go to the client.
      if (err instanceof ChatError && (err.code === 'forbidden' || err.code === 'invalid')) return fail(err.code, err.message);
      throw err;
    }
  }

  private async run(reqId: number, op: AdminOp, fail: (error: Refusal, message: string) => ReplyEvt): Promise<ReplyEvt> {
    const reply = async (room: RoomRow | null, created = false, version = 0): Promise<ReplyEvt> =>
      ({ t: 'reply', reqId, error: null, message: null, room: room ? roomInfo(room, await this.store.members(room.id)) : null, created, version });
    switch (op.op) {
      case 'createRoom': {
        const members = [...new Set(op.members)].sort();
        if (op.by !== null && op.kind !== 'public') await this.quotas.notBlockedBy(op.by, members);
        if (op.kind !== 'public') this.quotas.members(members.length);
        let dmKey: string | null = null;
        if (op.kind === 'direct') {
          dmKey = members.join('\u0001') + '\u0002' + (op.subject ?? '');
          const existing = await this.store.findDirect(dmKey);
          if (existing) return reply(existing, false);
        }
        const id = op.id ?? this.ids.next().id;
        if (await this.store.getRoom(id)) return fail('conflict', `room ${id} already exists (or existed: ids of deleted rooms are not reused)`);
        if (op.by !== null) await this.quotas.createRoom(op.by);
        const row: RoomRow = { id, kind: op.kind, name: op.name, subject: op.subject, epoch: this.ids.next().id, lastSeq: 0, createdAt: Date.now(), dmKey, deleted: false, createdBy: op.by };
        const stored = op.kind === 'public' ? [] : members;
        await this.store.createRoom(row, stored, this.events((dead) => [roomCreated(row, stored, row.createdAt, dead())]));
        this.hooks?.poke();
        return reply(row, true);
      }
      case 'deleteRoom': {
        const r = await this.store.getRoom(op.room);
        if (!r || r.deleted) return fail('not_found', MSG.noSuchRoom);
        // Anything still buffered for the room is committed first, then everything goes at once.
        if (!(await this.commits.flushRoom(op.room))) return fail('conflict', 'the store is failing; retry');
        const version = await this.store.deleteRoom(op.room, this.events((dead) => [roomDeleted(op.room, Date.now(), dead())]));
        this.hooks?.poke();
        this.rooms.delete(op.room);
        return reply(null, false, version);
      }
      case 'addMembers':
      case 'removeMembers': {
        const r = await this.store.getRoom(op.room);
        if (!r || r.deleted) return fail('not_found', MSG.noSuchRoom);
        if (r.kind === 'public') return fail('invalid', 'a public room has no member list');
        const present = op.op === 'addMembers';
        const before = new Set(await this.store.members(op.room));
        if (present) {
          const after = new Set([...before, ...op.users]);
          if (r.kind === 'direct' && after.size > 2) return fail('invalid', 'a direct room has exactly two members');
          this.quotas.members(after.size);
        }
        // Events for the users whose membership changes.
        const changed = [...new Set(op.users)].filter((u) => before.has(u) !== present);
        const version = await this.store.setMembers(op.room, op.users, present, this.events((dead) => memberEvents(op.room, changed, present, Date.now(), dead)));
        this.hooks?.poke();
        return reply(r, false, version);
      }
      case 'block': {
        if (op.on) await this.quotas.block(op.blocker, op.blocked);
        const was = this.hooks === null ? op.on : (await this.store.blockersOf(op.blocked, [op.blocker])).length > 0;
        const version = await this.store.setBlock(op.blocker, op.blocked, op.on, was === op.on ? [] : this.events((dead) => [blockEvent(op.blocker, op.blocked, op.on, Date.now(), dead())]));
        this.hooks?.poke();
        return reply(null, false, version);
      }
    }
  }
}
