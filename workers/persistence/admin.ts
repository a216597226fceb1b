// Host-app and membership operations (createRoom, deleteRoom, addMembers, removeMembers, block):
// each answers with the room as it is afterwards.

import { MSG } from '../../src/protocol/errors.ts';
import type { AdminOp, ReplyEvt } from '../contract.ts';
import type { IdGenerator } from '../ids.ts';
import { roomInfo } from '../stores/rows.ts';
import type { DirectoryStore, RoomRow } from '../stores/store.ts';
import type { GroupCommit } from './group-commit.ts';
import type { RoomCache } from './room-cache.ts';

export class Admin {
  constructor(
    private readonly store: Omit<DirectoryStore, 'allBlocks'>,
    private readonly ids: Pick<IdGenerator, 'next'>,
    private readonly commits: Pick<GroupCommit, 'flushRoom'>,
    private readonly rooms: Pick<RoomCache, 'delete'>,
  ) {}

  async request(reqId: number, op: AdminOp): Promise<ReplyEvt> {
    const reply = async (room: RoomRow | null, created = false): Promise<ReplyEvt> =>
      ({ t: 'reply', reqId, error: null, message: null, room: room ? roomInfo(room, await this.store.members(room.id)) : null, created });
    const fail = (error: ReplyEvt['error'], message: string): ReplyEvt => ({ t: 'reply', reqId, error, message, room: null, created: false });
    switch (op.op) {
      case 'createRoom': {
        const members = [...new Set(op.members)].sort();
        let dmKey: string | null = null;
        if (op.kind === 'direct') {
          dmKey = members.join('\u0001') + '\u0002' + (op.subject ?? '');
          const existing = await this.store.findDirect(dmKey);
          if (existing) return reply(existing, false);
        }
        const id = op.id ?? this.ids.next().id;
        if (await this.store.getRoom(id)) return fail('conflict', `room ${id} already exists (or existed: ids of deleted rooms are not reused)`);
        const row: RoomRow = { id, kind: op.kind, name: op.name, subject: op.subject, epoch: this.ids.next().id, lastSeq: 0, createdAt: Date.now(), dmKey, deleted: false };
        await this.store.createRoom(row, op.kind === 'public' ? [] : members);
        return reply(row, true);
      }
      case 'deleteRoom': {
        const r = await this.store.getRoom(op.room);
        if (!r || r.deleted) return fail('not_found', MSG.noSuchRoom);
        // Anything still buffered for the room is committed first, then everything goes at once.
        if (!(await this.commits.flushRoom(op.room))) return fail('conflict', 'the store is failing; retry');
        await this.store.deleteRoom(op.room);
        this.rooms.delete(op.room);
        return reply(null);
      }
      case 'addMembers':
      case 'removeMembers': {
        const r = await this.store.getRoom(op.room);
        if (!r || r.deleted) return fail('not_found', MSG.noSuchRoom);
        if (r.kind === 'public') return fail('invalid', 'a public room has no member list');
        const present = op.op === 'addMembers';
        if (r.kind === 'direct' && present) {
          const after = new Set([...(await this.store.members(op.room)), ...op.users]);
          if (after.size > 2) return fail('invalid', 'a direct room has exactly two members');
        }
        await this.store.setMembers(op.room, op.users, present);
        return reply(r);
      }
      case 'block':
        await this.store.setBlock(op.blocker, op.blocked, op.on);
        return reply(null);
    }
  }
}
