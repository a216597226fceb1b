// Who may do what: public rooms are open to anyone, group and direct rooms to their members (and
// admins); and who blocks whom, consulted on every delivery to a connection whose user blocks
// someone. Blocks are few, loaded at start, and changed only through the host app's API.

import type { Delivered } from '../../workers/contract.ts';

export interface Who {
  userId: string;
  admin: boolean;
}

export class Access {
  /** blocker -> users they block. */
  private readonly blocks = new Map<string, Set<string>>();

  constructor(initialBlocks: [string, string][]) {
    for (const [a, b] of initialBlocks) this.setBlock(a, b, true);
  }

  mayAccess(room: { readonly members: ReadonlySet<string> | null }, who: Who): boolean {
    return room.members === null || who.admin || room.members.has(who.userId);
  }

  /** Does `viewer` block `sender`? */
  blocked(viewer: string, sender: string): boolean {
    const set = this.blocks.get(viewer);
    return set !== undefined && set.has(sender);
  }

  /** Does this user block anyone (their connections then get messages one by one, filtered)? */
  hidesAnyone(userId: string): boolean {
    const set = this.blocks.get(userId);
    return set !== undefined && set.size > 0;
  }

  visibleTo(userId: string, list: Delivered[]): Delivered[] {
    return this.hidesAnyone(userId) ? list.filter((d) => !this.blocked(userId, d.from)) : list;
  }

  setBlock(blocker: string, blocked: string, on: boolean): void {
    let set = this.blocks.get(blocker);
    if (on) {
      if (set === undefined) this.blocks.set(blocker, (set = new Set()));
      set.add(blocked);
    } else if (set !== undefined) {
      set.delete(blocked);
      if (set.size === 0) this.blocks.delete(blocker);
    }
  }

  blockList(user: string): string[] {
    return [...(this.blocks.get(user) ?? [])].sort();
  }
}
