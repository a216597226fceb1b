// The per-user quotas (CHAT_MAX_ROOMS_PER_USER, CHAT_MAX_MEMBERS, CHAT_MAX_BLOCKS) and the rule that
// a user blocked by someone may not create a room with them, checked against the store: the store
// is the truth, so every node of a cluster enforces the same counts. A refusal throws a ChatError
// whose code and message reach the client.

import { ChatError } from '../../src/protocol/errors.ts';
import type { ActorInit } from '../contract.ts';
import type { DirectoryStore } from '../stores/store.ts';

type Settings = Pick<ActorInit['config'], 'maxRoomsPerUser' | 'maxMembers' | 'maxBlocks'>;

export class Quotas {
  constructor(
    private readonly store: Pick<DirectoryStore, 'roomsCreatedBy' | 'blockCount' | 'blockersOf'>,
    private readonly settings: Settings,
  ) {}

  /** `user` is about to create one more room. */
  async createRoom(user: string): Promise<void> {
    const max = this.settings.maxRoomsPerUser;
    if ((await this.store.roomsCreatedBy(user)) >= max) {
      throw new ChatError('forbidden', `room quota reached: a user may create at most ${max} rooms (CHAT_MAX_ROOMS_PER_USER)`);
    }
  }

  /** A group room would have `n` members. */
  members(n: number): void {
    const max = this.settings.maxMembers;
    if (n > max) throw new ChatError('invalid', `a room may have at most ${max} members (CHAT_MAX_MEMBERS); it would have ${n}`);
  }

  /** `user` creates a room with `members`: none of them may block `user`. */
  async notBlockedBy(user: string, members: string[]): Promise<void> {
    const blockers = await this.store.blockersOf(user, members.filter((m) => m !== user));
    if (blockers.length > 0) throw new ChatError('forbidden', 'you cannot create a room with a user who blocks you');
  }

  /** `blocker` blocks one more user (not blocked yet). */
  async block(blocker: string, blocked: string): Promise<void> {
    const max = this.settings.maxBlocks;
    if ((await this.store.blockCount(blocker)) < max) return;
    // At the quota, blocking someone already blocked changes nothing: allowed.
    if ((await this.store.blockersOf(blocked, [blocker])).length > 0) return;
    throw new ChatError('invalid', `a user may block at most ${max} users (CHAT_MAX_BLOCKS)`);
  }
}
