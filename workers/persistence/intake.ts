// The inbox: command batches from the front thread, handled one after another, strictly in order,
// even when the store answers asynchronously (MySQL). A send is deduplicated on (sender, cid),
// against the sends in flight and against the store, then accepted into the group commit's
// buffer; room loads, host-app requests and the shutdown go to their handlers.

import { ChatError } from '../../src/protocol/errors.ts';
import type { AdminOp, HooksCmd, HooksReplyEvt, LoadCmd, MarkCmd, ReplyEvt, RoomEvt, SendCmd, ToActor } from '../contract.ts';
import { cidKey, type CidHit, type MessageStore, type NewMessage } from '../stores/store.ts';
import { fullGc } from '../full-gc.ts';
import type { Backoff } from './backoff.ts';
import type { GroupCommit } from './group-commit.ts';
import type { Outbox } from './outbox.ts';
import { duplicate, notFound, refused, type Pending } from './pending.ts';
import type { Retraction } from './retraction.ts';
import type { CachedRoom, RoomCache } from './room-cache.ts';
import type { Sequencing } from './sequencing.ts';

/** The commands the inbox hands on, each answered (if at all) in inbox order. */
export interface Handlers {
  load(c: LoadCmd): Promise<RoomEvt>;
  request(reqId: number, op: AdminOp): Promise<ReplyEvt>;
  /** The webhook outbox's admin calls. */
  hooks(c: HooksCmd): Promise<HooksReplyEvt>;
  /** Webhooks on: a message event is about to be written; true when the outbox is full (dead-letter it). */
  eventFull: (() => boolean) | null;
  /** Commit what is held and close; nothing after it is handled. */
  shutdown(): Promise<void>;
}

export class Intake {
  private readonly inbox: ToActor[][] = [];
  private pumping = false;
  private readonly noHits: ReadonlyMap<string, CidHit> = new Map();

  constructor(
    private readonly store: Pick<MessageStore, 'findByCids'>,
    private readonly rooms: Pick<RoomCache, 'get' | 'load'>,
    private readonly seq: Pick<Sequencing, 'accept' | 'mark'>,
    private readonly commits: Pick<GroupCommit, 'inFlight' | 'add' | 'answer' | 'mark' | 'schedule' | 'hold' | 'uncommitted'>,
    private readonly out: Pick<Outbox, 'push' | 'accepted' | 'health' | 'flush'>,
    private readonly backoff: Backoff,
    /** Immediate delivery: each accepted message goes to the front thread before it is durable. */
    private readonly immediate: boolean,
    private readonly handlers: Handlers,
    private readonly retraction: Pick<Retraction, 'check'>,
  ) {}

  receive(cmds: ToActor[]): void {
    // The test hook's hold applies on arrival, ahead of anything queued.
    for (const c of cmds) {
      if (c.t === 'hold') this.commits.hold(c.on);
      else if (c.t === 'gc') this.collect();
    }
    this.inbox.push(cmds);
    if (!this.pumping) void this.pump();
  }

  /** Test hook: collect this thread's heap in full and say so at once. */
  private collect(): void {
    this.out.push({ t: 'collected', gc: fullGc('actor') });
    this.out.flush();
  }

  /** Handle command batches strictly in order; a store failure pauses the inbox and retries. */
  private async pump(): Promise<void> {
    this.pumping = true;
    while (this.inbox.length > 0) {
      // Everything queued while the previous batch waited on the store is handled as one batch:
      // one cid lookup round trip for all of it (MySQL), however far behind the inbox is.
      if (this.inbox.length > 1) this.inbox.splice(0, this.inbox.length, this.inbox.flat());
      const cmds = this.inbox[0];
      try {
        const done = await this.handle(cmds);
        this.inbox.shift();
        if (done === 'shutdown') break;
      } catch (err) {
        // handle() removed what it finished from cmds; the rest is retried as it is.
        this.out.health(false, `store unavailable: ${(err as Error).message}`);
        this.out.flush();
        await new Promise((r) => setTimeout(r, this.backoff.next()));
        continue;
      }
      this.out.flush();
      this.commits.schedule();
    }
    this.pumping = false;
  }

  /** Process one batch; finished commands are spliced off the front so a retry resumes after them. */
  private async handle(cmds: ToActor[]): Promise<'ok' | 'shutdown'> {
    // One store round-trip for every cid of the batch that is not already in flight. Each send's
    // cidKey is made once (keys[i] for cmds[i]).
    const keys: (string | null)[] = new Array<string | null>(cmds.length).fill(null);
    const look: [string, string][] = [];
    for (let i = 0; i < cmds.length; i++) {
      const c = cmds[i];
      if (c.t !== 'send' || c.cid === null) continue;
      const key = (keys[i] = cidKey(c.fromId, c.cid));
      if (this.commits.inFlight(key) === undefined) look.push([c.fromId, c.cid]);
    }
    const hits = look.length > 0 ? await this.store.findByCids(look) : this.noHits;
    for (let i = 0; cmds.length > 0; i++) {
      const c = cmds[0];
      switch (c.t) {
        case 'send': {
          const waiting = this.accept(c, keys[i], hits);
          if (waiting !== undefined) await waiting;
          break;
        }
        case 'mark': this.mark(c); break;
        case 'hold': case 'gc': break; // applied on arrival (receive)
        // The answer is queued once its handler is done: a commit inside it (a room delete commits
        // the room's buffered messages first) flushes the outbox meanwhile.
        case 'load': {
          const evt = await this.handlers.load(c);
          this.out.push(evt);
          break;
        }
        case 'req': {
          const reply = await this.handlers.request(c.reqId, c.body);
          this.out.push(reply);
          break;
        }
        case 'hooks': {
          const reply = await this.handlers.hooks(c);
          this.out.push(reply);
          break;
        }
        case 'shutdown':
          cmds.shift();
          await this.handlers.shutdown();
          return 'shutdown';
      }
      cmds.shift();
    }
    return 'ok';
  }

  /** Accept a send; a promise only when it waits (a room load, a retraction's check). */
  private accept(c: SendCmd, key: string | null, hits: ReadonlyMap<string, CidHit>): Promise<void> | undefined {
    if (key !== null) {
      const p = this.commits.inFlight(key);
      if (p) {
        p.dups.push(c.token);
        return;
      }
      const hit = hits.get(key);
      if (hit) {
        this.commits.answer(duplicate(c.token, hit));
        return;
      }
    }
    const r = this.rooms.get(c.room);
    if (r === undefined || c.target !== null) return this.acceptLater(c, key, r);
    this.enqueue(c, key, r);
    return undefined;
  }

  private async acceptLater(c: SendCmd, key: string | null, cached: CachedRoom | undefined): Promise<void> {
    // The front thread only forwards sends to rooms it has loaded, so the room exists unless it
    // was deleted meanwhile; in auth mode none an unknown room is a new public room (the sender's).
    let r;
    try {
      r = cached ?? (await this.rooms.load(c.room, c.create ? c.fromId : null));
    } catch (err) {
      if (!(err instanceof ChatError) || err.code !== 'forbidden') throw err;
      this.commits.answer(refused(c.token, c.room, err.message));
      return;
    }
    if (!r) {
      this.commits.answer(notFound(c.token, c.room));
      return;
    }
    if (c.target !== null) {
      const v = await this.retraction.check(c, this.commits.uncommitted());
      if (v.t === 'answer') return this.commits.answer(v.r);
      if (v.t === 'join') {
        v.p.dups.push(c.token);
        return;
      }
    }
    this.enqueue(c, key, r);
  }

  /** Give the send its id and seq and buffer it for the next group commit. */
  private enqueue(c: SendCmd, key: string | null, r: CachedRoom): void {
    const full = this.handlers.eventFull;
    const event = c.recipients === null || full === null ? null : { recipients: c.recipients, dead: full() };
    const msg: NewMessage = { tsid: 0n, id: '', room: c.room, seq: 0, type: c.type, fromId: c.fromId, fromName: c.fromName, text: c.text, at: c.at, cid: c.cid, target: c.target, event };
    const p: Pending = { msg, token: c.token, key, dups: [] };
    this.seq.accept(p, r);
    this.commits.add(p);
    if (this.immediate) this.out.accepted(p);
  }

  private mark(c: MarkCmd): void {
    const w = this.seq.mark(c, this.rooms.get(c.room));
    if (w !== null) this.commits.mark(w);
  }
}
