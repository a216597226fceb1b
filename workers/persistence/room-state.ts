// A room's state for the front thread when it activates the room: its info, the last seq it may
// show and the newest messages (its hot window).

import { ChatError } from '../../src/protocol/errors.ts';
import { messageJson, receiptsIn, type ActorInit, type Delivered, type LoadCmd, type RoomEvt, type RoomState } from '../contract.ts';
import { jsonOf } from '../stores/events.ts';
import { roomInfo } from '../stores/rows.ts';
import type { DirectoryStore, MessageStore } from '../stores/store.ts';
import type { GroupCommit } from './group-commit.ts';
import { notBefore } from './retention.ts';
import type { RoomCache } from './room-cache.ts';
import type { Sequencing } from './sequencing.ts';

type Settings = Pick<ActorInit['config'], 'window' | 'delivery' | 'retentionMs' | 'publicReceipts'>;

export class RoomStates {
  constructor(
    private readonly rooms: Pick<RoomCache, 'load' | 'delete'>,
    private readonly seq: Pick<Sequencing, 'refresh'>,
    private readonly commits: Pick<GroupCommit, 'uncommitted'>,
    private readonly store: Pick<MessageStore, 'latest' | 'reads'> & Pick<DirectoryStore, 'members'>,
    private readonly settings: Settings,
  ) {}

  async load(c: LoadCmd): Promise<RoomEvt> {
    let r;
    try {
      r = await this.rooms.load(c.room, c.creator);
    } catch (err) {
      // Creating it was refused (a quota): the asker is told why.
      if (err instanceof ChatError && err.code === 'forbidden') return { t: 'room', room: c.room, state: null, refused: { code: err.code, message: err.message } };
      throw err;
    }
    if (!r) return { t: 'room', room: c.room, state: null };
    if (!(await this.seq.refresh(r))) {
      this.rooms.delete(c.room);
      return { t: 'room', room: c.room, state: null };
    }
    const windowSize = this.settings.window;
    const stored = await this.store.latest(c.room, windowSize, notBefore(this.settings.retentionMs));
    // Only what is committed is in the store; with after-commit that is exactly what the front
    // thread may show. Rows a commit in flight (MySQL) wrote but has not reported are trimmed.
    const recent: Delivered[] = stored.filter((m) => m.seq <= r.committedSeq)
      .map((m) => ({ room: m.room, seq: m.seq, id: m.id, at: m.at, from: m.from.id, json: messageJson(m) }));
    let lastSeq = r.committedSeq;
    if (this.settings.delivery === 'immediate') {
      // The front thread has already published what is accepted but not yet committed.
      for (const p of this.commits.uncommitted()) {
        if (p.msg.room === c.room && p.msg.seq > (recent.at(-1)?.seq ?? 0)) recent.push({ room: c.room, seq: p.msg.seq, id: p.msg.id, at: p.msg.at, from: p.msg.fromId, json: jsonOf(p.msg) });
      }
      lastSeq = r.head.seq;
    }
    const state: RoomState = {
      room: c.room,
      info: roomInfo(r.row, r.row.kind === 'public' ? [] : await this.store.members(c.room)),
      lastSeq,
      recent: recent.length > windowSize ? recent.slice(recent.length - windowSize) : recent,
      complete: stored.length < windowSize,
      reads: receiptsIn(r.row.kind, this.settings.publicReceipts) ? await this.store.reads(c.room) : [],
    };
    return { t: 'room', room: c.room, state };
  }
}
