// DELETE and EDIT: whether a retraction may happen, decided by the actor when it accepts one (the
// only place that sees both the store and the sends in flight). Who may: the message's sender
// (DELETE: or an admin); which messages: a CHAT (DELETE: or a SYSTEM message). A repeated DELETE
// is answered with the first one's ack (in a cluster, a DELETE another node commits after this
// check is found in the commit: mysql/cluster-commit.ts deletedBefore). The effect itself is
// written in the commit that stores the event, in the store's retract step (SqliteStore.retract,
// mysql/statements.ts retractions()).

import type { SendCmd, SendResult } from '../contract.ts';
import { tsidToBigInt } from '../ids.ts';
import type { MessageStore, TargetRow } from '../stores/store.ts';
import { duplicate, rejected, type Pending } from './pending.ts';

/** What to do with an accepted DELETE or EDIT. */
export type Verdict =
  /** Store it. */
  | { t: 'ok' }
  /** Answer now, store nothing (a refusal, or a delete already committed). */
  | { t: 'answer'; r: SendResult }
  /** The same delete is in flight: answered with its commit. */
  | { t: 'join'; p: Pending };

const OK: Verdict = { t: 'ok' };

export class Retraction {
  constructor(private readonly store: Pick<MessageStore, 'retractTarget' | 'deleteEventOf'>) {}

  /** `uncommitted`: the sends in flight, oldest first (the target may be among them). */
  async check(c: SendCmd, uncommitted: Pending[]): Promise<Verdict> {
    const target = c.target!;
    const refuse = (code: 'forbidden' | 'not_found', message: string): Verdict => ({ t: 'answer', r: rejected(c.token, c.room, code, message) });
    let row: TargetRow | null = null;
    let pendingDelete: Pending | null = null;
    for (const p of uncommitted) {
      const m = p.msg;
      if (m.room !== c.room) continue;
      if (m.id === target) row = { fromId: m.fromId, type: m.type, deleted: false };
      else if (m.target === target && m.type === 'DELETE') pendingDelete = p;
    }
    row ??= await this.store.retractTarget(c.room, tsidToBigInt(target));
    const what = c.type === 'DELETE' ? 'delete' : 'edit';
    const kinds = c.type === 'DELETE' ? ['CHAT', 'SYSTEM'] : ['CHAT'];
    if (row === null || !kinds.includes(row.type)) return refuse('not_found', `no message ${target} to ${what} in this room`);
    const own = row.fromId === c.fromId;
    if (c.type === 'EDIT' && !own) return refuse('forbidden', 'only its sender may edit a message');
    if (c.type === 'DELETE' && !own && !c.admin) return refuse('forbidden', 'only its sender or an admin may delete a message');
    const deleted = row.deleted || pendingDelete !== null;
    if (!deleted) return OK;
    if (c.type === 'EDIT') return refuse('not_found', `message ${target} was deleted`);
    // A repeated delete: the same answer as the first.
    if (pendingDelete !== null) return { t: 'join', p: pendingDelete };
    const first = await this.store.deleteEventOf(target);
    return first === null ? OK : { t: 'answer', r: duplicate(c.token, first) };
  }
}
