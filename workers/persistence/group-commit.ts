// Group commit: where a message is written. While one commit runs, accepted messages queue in
// the buffer; when it returns, the next commit takes all of them in one transaction. No batch size
// or flush timer to tune: the batch is exactly what arrived during the previous commit. With
// SQLite (synchronous), the messages that arrive during a commit wait in the MessagePort, and the
// setImmediate that runs the next commit comes after the event loop has handed all of them over.
// A store failure keeps everything buffered (ids and seqs stay assigned), reports degraded health,
// and retries with backoff; the front thread refuses new sends with `overloaded` at its caps.

import type { ActorInit, SendResult } from '../contract.ts';
import { DuplicateCidError, type CidHit, type MarkerWrite, type MessageStore, type Unstored } from '../stores/store.ts';
import { BACKOFF_MIN_MS, type Backoff } from './backoff.ts';
import type { Outbox } from './outbox.ts';
import { KeyTable } from './key-table.ts';
import { duplicate, notFound, stored, type Pending } from './pending.ts';
import type { RoomCache } from './room-cache.ts';
import type { Sequencing } from './sequencing.ts';
import type { Webhooks } from './webhooks.ts';

type Settings = Pick<ActorInit['config'], 'delivery' | 'testCommitDelayMs' | 'commitPaceMs'>;

/** Pacing (CHAT_COMMIT_PACE_MS) applies after a commit of at least this many messages: under load, never to a trickle. */
export const PACE_MIN_BATCH = 32;

export class GroupCommit {
  private buffer: Pending[] = [];
  /** The buffered and committing sends that carry a cid, by cidKey (not a Map: see key-table.ts). */
  private readonly inflight = new KeyTable<Pending>();
  /** Duplicates of already-durable messages and refusals: answered with the next commit's results. */
  private readyDups: SendResult[] = [];
  /** Read-marker moves waiting for the next group commit. */
  private marks: MarkerWrite[] = [];
  /** The batch being written right now (immediate mode's room loads need to see it). */
  private committingBatch: Pending[] = [];
  private scheduled = false;
  /** When the last commit with messages started (performance.now()) and how many it held: the pacing rule's inputs. */
  private lastStart = 0;
  private lastBatch = 0;
  private committing = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private readonly publish: boolean;
  /** Test hook: commits wait before their transaction while `holding`; `release` lets one go on. */
  private holding = false;
  private release: (() => void) | null = null;
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));

  constructor(
    private readonly seq: Pick<Sequencing, 'write'>,
    private readonly store: Pick<MessageStore, 'findByCids'>,
    private readonly rooms: Pick<RoomCache, 'committed' | 'delete'>,
    private readonly out: Pick<Outbox, 'push' | 'health' | 'flush'>,
    private readonly backoff: Backoff,
    private readonly settings: Settings,
    /** Webhooks on: told when a commit wrote events. */
    private readonly hooks: Pick<Webhooks, 'poke'> | null = null,
  ) {
    this.publish = settings.delivery === 'after-commit';
  }

  /** The send in flight with this cidKey, if any: a retry of it is answered with its commit. */
  inFlight(key: string): Pending | undefined {
    return this.inflight.get(key);
  }

  /** Buffer an accepted send. */
  add(p: Pending): void {
    this.buffer.push(p);
    if (p.key !== null) this.inflight.set(p.key, p);
  }

  /** An answer that needs no write (a duplicate of a durable message, a refusal): sent with the next commit's. */
  answer(r: SendResult): void {
    this.readyDups.push(r);
  }

  mark(w: MarkerWrite): void {
    this.marks.push(w);
  }

  /** Accepted and not yet committed, in order: the batch being written, then the buffer. */
  uncommitted(): Pending[] {
    return this.committingBatch.concat(this.buffer);
  }

  schedule(): void {
    if (this.scheduled || this.committing || this.retryTimer !== null || this.closing) return;
    if (this.buffer.length === 0 && this.readyDups.length === 0 && this.marks.length === 0) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      void this.commit();
    };
    // Pacing, like MySQL's binlog_group_commit_sync_delay: after a large commit, the next starts no
    // sooner than commitPaceMs after it did, so it takes more messages: the hot index pages each
    // commit rewrites are then shared by more messages (fewer WAL pages and less CPU per message).
    const wait = this.lastBatch >= PACE_MIN_BATCH ? this.lastStart + this.settings.commitPaceMs - performance.now() : 0;
    // setImmediate runs after the poll phase: every message already queued on the port is in.
    if (wait >= 1) setTimeout(run, wait);
    else setImmediate(run);
  }

  /** Commit what is buffered for `room` now (a room about to be deleted); false if the store refused. */
  async flushRoom(room: string): Promise<boolean> {
    while (this.committing) await new Promise((r) => setTimeout(r, 5));
    return !this.buffer.some((p) => p.msg.room === room) || (await this.commit());
  }

  /** Shutting down: commit what is held; if the store keeps failing, give up after a few tries. */
  async drain(): Promise<void> {
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // (The front thread never acked what is given up, so nothing acked is lost.)
    for (let i = 0; i < 20 && (this.committing || this.buffer.length > 0 || this.readyDups.length > 0 || this.marks.length > 0); i++) {
      if (this.release !== null) i--; // a commit held by the test hook waits for its release
      if (this.committing) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      if (!(await this.commit())) await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Commit everything buffered in one transaction; false if the store refused (it will retry). */
  private async commit(): Promise<boolean> {
    if (this.committing) return false;
    this.committing = true;
    const batch = this.buffer;
    const results: SendResult[] = this.readyDups;
    const marks = this.marks;
    this.buffer = [];
    this.readyDups = [];
    this.marks = [];
    this.committingBatch = batch;
    let commitMs = 0;
    let unstored: Unstored | void = undefined;
    try {
      if (batch.length > 0 || marks.length > 0) {
        if (this.holding) await this.held();
        if (this.settings.testCommitDelayMs > 0) Atomics.wait(this.sleeper, 0, 0, this.settings.testCommitDelayMs);
        const t0 = performance.now();
        this.lastStart = t0;
        this.lastBatch = batch.length;
        unstored = await this.seq.write(batch, marks);
        commitMs = performance.now() - t0;
      }
    } catch (err) {
      if (err instanceof DuplicateCidError) return this.afterDuplicate(batch, results, marks);
      // Keep everything, in order, ahead of what arrived meanwhile; retry with backoff.
      this.buffer = batch.concat(this.buffer);
      this.readyDups = results.concat(this.readyDups);
      this.marks = marks.concat(this.marks);
      this.committingBatch = [];
      this.committing = false;
      this.out.health(false, `commit failed: ${(err as Error).message}`);
      this.out.flush();
      if (!this.closing) this.retryAfter(this.backoff.next());
      return false;
    }
    this.committingBatch = [];
    this.backoff.reset();
    for (const p of batch) {
      const m = p.msg;
      if (p.key !== null) this.inflight.delete(p.key);
      if (unstored && unstored.missing.has(m.room)) {
        // Deleted by the host app (on any node) before this commit: refused, nothing stored.
        this.rooms.delete(m.room);
        for (const token of [p.token, ...p.dups]) results.push(notFound(token, m.room));
        continue;
      }
      const first = unstored?.deletedFirst.get(m);
      if (first !== undefined) {
        // Another node deleted the target first (cluster): answered as a repeated delete is.
        for (const token of [p.token, ...p.dups]) results.push(duplicate(token, first));
        continue;
      }
      this.rooms.committed(m.room, m.seq);
      results.push(stored(p.token, m, this.publish));
      for (const token of p.dups) results.push(duplicate(token, m));
    }
    if (batch.length > 0 || marks.length > 0) this.out.health(true, null);
    if (this.hooks !== null && batch.some((p) => p.msg.event)) this.hooks.poke();
    for (const k of marks) if (k.reqId !== undefined) this.out.push({ t: 'reply', reqId: k.reqId, error: null, message: null, room: null, created: false, version: 0 });
    if (results.length > 0) this.out.push({ t: 'committed', results, batch: batch.length, commitMs });
    this.out.flush();
    this.committing = false;
    this.schedule();
    return true;
  }

  /**
   * Cluster: another node stored one of this batch's (sender, cid) pairs first, so the whole
   * transaction was refused. The retried sends get the stored message's ack; the rest commit again.
   */
  private async afterDuplicate(batch: Pending[], results: SendResult[], marks: MarkerWrite[]): Promise<boolean> {
    const keys: [string, string][] = [];
    for (const p of batch) if (p.msg.cid !== null) keys.push([p.msg.fromId, p.msg.cid]);
    let hits: Map<string, CidHit>;
    try {
      hits = await this.store.findByCids(keys);
    } catch {
      hits = new Map();
    }
    // The store compares (sender, cid) exactly (MySQL migration 4), so the conflicting send is among
    // the hits; if none is visible yet, the retry waits (below).
    const rest: Pending[] = [];
    let resolved = 0;
    for (const p of batch) {
      const key = p.key;
      const hit = key === null ? undefined : hits.get(key);
      if (key === null || hit === undefined) {
        rest.push(p);
        continue;
      }
      resolved++;
      this.inflight.delete(key);
      for (const token of [p.token, ...p.dups]) results.push(duplicate(token, hit));
    }
    this.buffer = rest.concat(this.buffer);
    this.readyDups = results.concat(this.readyDups);
    this.marks = marks.concat(this.marks);
    this.committingBatch = [];
    this.committing = false;
    if (resolved === 0) {
      // The conflicting row is not visible yet (or the lookup failed): retry after a pause.
      this.retryAfter(BACKOFF_MIN_MS);
      return false;
    }
    this.schedule();
    return false;
  }

  /** Test hook (CHAT_TEST_HOOKS): hold every commit before its transaction, or stop holding. */
  hold(on: boolean): void {
    this.holding = on;
    if (on || this.release === null) return;
    const release = this.release;
    this.release = null;
    this.out.push({ t: 'held', waiting: 0 });
    release();
  }

  /** Test hook: wait here until the hold is lifted, telling the front thread a commit waits. */
  private held(): Promise<void> {
    return new Promise((resolve) => {
      this.release = resolve;
      this.out.push({ t: 'held', waiting: 1 });
      this.out.flush();
    });
  }

  private retryAfter(ms: number): void {
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.commit();
    }, ms);
  }
}
