// The persistence actor: a dedicated worker thread that alone owns the write buffer and the
// database write connection. This is where a message gets its id and seq, and where it is written.
//
// Two loops, each strictly in order:
// - the inbox: command batches from the front thread are handled one after another (dedupe on
//   (sender, cid), id and seq assignment, room loads, host-app requests), even when the store
//   answers asynchronously (MySQL);
// - group commit: while one commit runs, accepted messages queue in the buffer; when it returns,
//   the next commit takes all of them in one transaction. No batch size or flush timer to tune:
//   the batch is exactly what arrived during the previous commit. With SQLite (synchronous), the
//   messages that arrive during a commit wait in the MessagePort, and the setImmediate that runs the
//   next commit comes after the event loop has handed all of them over.
// A store failure keeps everything buffered (ids and seqs stay assigned), reports degraded health,
// and retries with backoff; the front thread refuses new sends with `overloaded` at its caps.

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import {
  decodeBatch, encodeBatch, messageJson,
  type ActorInit, type AdminOp, type Delivered, type FromActor, type LoadCmd, type MarkCmd, type Message, type ReplyEvt, type RoomState,
  type SendCmd, type SendResult, type ToActor,
} from './contract.ts';
import { IdGenerator, tsidFloor } from './ids.ts';
import { openStore } from './open-store.ts';
import { roomInfo } from './rows.ts';
import { DuplicateCidError, type CidHit, type ClusterStore, type DirectoryStore, type MarkerWrite, type MessageStore, type NewMessage, type RoomRow } from './store.ts';

interface ActorRoom {
  row: RoomRow;
  /** Last seq handed out (accepted). */
  lastSeq: number;
  /** Last seq durably committed. */
  committedSeq: number;
  /** Id of the message with lastSeq, when this actor assigned it ('' before that). */
  lastId: string;
}

interface Pending {
  msg: NewMessage;
  token: number;
  json: string;
  /** Tokens of retried sends (same sender and cid) waiting on this one's commit. */
  dups: number[];
}

const MAX_CACHED_ROOMS = 100_000;
const PURGE_BATCH = 1000;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

type Store = MessageStore & DirectoryStore & Partial<ClusterStore>;

class PersistenceActor {
  private readonly rooms = new Map<string, ActorRoom>();
  private buffer: Pending[] = [];
  private readonly inflight = new Map<string, Pending>();
  /** Duplicates of already-durable messages and refusals: answered with the next commit's results. */
  private readyDups: SendResult[] = [];
  /** Read-marker moves waiting for the next group commit. */
  private marks: MarkerWrite[] = [];
  private out: FromActor[] = [];
  private acceptedBatch: (Delivered & { token: number })[] | null = null;
  private readonly inbox: ToActor[][] = [];
  private pumping = false;
  private commitScheduled = false;
  private committing = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoff = BACKOFF_MIN_MS;
  private healthy = true;
  private closing = false;
  private readonly ids: IdGenerator;
  /**
   * Cluster mode: several nodes write the same rooms, so id and seq are assigned inside the commit
   * transaction (under the room's row lock), not at acceptance.
   */
  private readonly cluster: boolean;
  private readonly nextAbove = (floor: bigint): { id: string; tsid: bigint } => this.ids.nextAbove(floor);
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));
  /** Test hook: commits wait before their transaction while `holding`; `release` lets one go on. */
  private holding = false;
  private release: (() => void) | null = null;

  constructor(
    private readonly cfg: ActorInit['config'],
    private readonly store: Store,
    private readonly post: (buf: Uint8Array) => void,
    private readonly onClosed: () => void,
  ) {
    this.ids = new IdGenerator(cfg.nodeId);
    this.cluster = cfg.redisUrl !== null;
    if (this.cluster && store.commitAssign === undefined) throw new Error('this store cannot be shared by a cluster');
  }

  receive(cmds: ToActor[]): void {
    for (const c of cmds) if (c.t === 'hold') this.setHold(c.on);
    this.inbox.push(cmds);
    if (!this.pumping) void this.pump();
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
        this.setHealth(false, `store unavailable: ${(err as Error).message}`);
        this.flush();
        await new Promise((r) => setTimeout(r, this.nextBackoff()));
        continue;
      }
      this.flush();
      this.scheduleCommit();
    }
    this.pumping = false;
  }

  private nextBackoff(): number {
    const b = this.backoff;
    this.backoff = Math.min(BACKOFF_MAX_MS, this.backoff * 2);
    return b;
  }

  /** Process one batch; finished commands are spliced off the front so a retry resumes after them. */
  private async handle(cmds: ToActor[]): Promise<'ok' | 'shutdown'> {
    // One store round-trip for every cid of the batch that is not already in flight.
    const keys: [string, string][] = [];
    for (const c of cmds) if (c.t === 'send' && c.cid !== null && !this.inflight.has(c.fromId + '\0' + c.cid)) keys.push([c.fromId, c.cid]);
    const hits = keys.length > 0 ? await this.store.findByCids(keys) : EMPTY_HITS;
    while (cmds.length > 0) {
      const c = cmds[0];
      switch (c.t) {
        case 'send': await this.accept(c, hits); break;
        case 'load': await this.load(c); break;
        case 'mark': this.mark(c); break;
        case 'hold': break; // applied on arrival (receive), ahead of anything queued
        case 'req': {
          // Not `this.out.push(await ...)`: that reads this.out before the await, and a commit
          // inside the request (a room delete commits the room's buffered messages first) flushes
          // and replaces it, so the reply would go into an array already sent.
          const reply = await this.request(c.reqId, c.body);
          this.out.push(reply);
          break;
        }
        case 'shutdown':
          cmds.shift();
          await this.shutdown();
          return 'shutdown';
      }
      cmds.shift();
    }
    return 'ok';
  }

  private async room(id: string, create: boolean): Promise<ActorRoom | null> {
    let r = this.rooms.get(id);
    if (r) return r;
    let row = await this.store.getRoom(id);
    if (row?.deleted) return null;
    if (!row) {
      if (!create) return null;
      row = { id, kind: 'public', name: null, subject: null, epoch: this.ids.next().id, lastSeq: 0, createdAt: Date.now(), dmKey: null, deleted: false };
      try {
        await this.store.createRoom(row, []);
      } catch (err) {
        // Another node created it first (cluster): use theirs.
        const theirs = this.cluster ? await this.store.getRoom(id) : null;
        if (theirs === null) throw err;
        if (theirs.deleted) return null;
        row = theirs;
      }
    }
    r = this.rooms.get(id); // another command may have loaded it while we awaited
    if (r) return r;
    r = { row, lastSeq: row.lastSeq, committedSeq: row.lastSeq, lastId: '' };
    if (this.rooms.size >= MAX_CACHED_ROOMS) this.evictRoom();
    this.rooms.set(id, r);
    return r;
  }

  private evictRoom(): void {
    // Map iteration is insertion order: drop the oldest room with nothing uncommitted.
    for (const [id, r] of this.rooms) {
      if (r.committedSeq === r.lastSeq) {
        this.rooms.delete(id);
        return;
      }
    }
  }

  private async accept(c: SendCmd, hits: Map<string, CidHit>): Promise<void> {
    const key = c.cid === null ? null : c.fromId + '\0' + c.cid;
    if (key !== null) {
      const p = this.inflight.get(key);
      if (p) {
        p.dups.push(c.token);
        return;
      }
      const hit = hits.get(key);
      if (hit) {
        this.readyDups.push({ token: c.token, room: hit.room, seq: hit.seq, id: hit.id, at: hit.at, from: c.fromId, dup: true, json: null, error: null });
        return;
      }
    }
    // The front thread only forwards sends to rooms it has loaded, so the room exists unless it
    // was deleted meanwhile; in auth mode none an unknown room is a new public room.
    const r = this.rooms.get(c.room) ?? (await this.room(c.room, c.create));
    if (!r) {
      this.readyDups.push(notFound(c.token, c.room, c.fromId));
      return;
    }
    const msg: NewMessage = { tsid: 0n, id: '', room: c.room, seq: 0, type: c.type, fromId: c.fromId, fromName: c.fromName, text: c.text, at: c.at, cid: c.cid };
    const p: Pending = { msg, token: c.token, json: '', dups: [] };
    // Cluster: id, seq and the JSON come at commit, inside the transaction that locks the room.
    if (!this.cluster) {
      const { id, tsid } = this.ids.next();
      msg.id = id;
      msg.tsid = tsid;
      msg.seq = ++r.lastSeq;
      r.lastId = id;
      p.json = jsonOf(msg);
    }
    this.buffer.push(p);
    if (key !== null) this.inflight.set(key, p);
    if (this.cfg.delivery === 'immediate') this.accepted(p);
  }

  private accepted(p: Pending): void {
    if (this.acceptedBatch === null) {
      this.acceptedBatch = [];
      this.out.push({ t: 'accepted', msgs: this.acceptedBatch });
    }
    this.acceptedBatch.push({ token: p.token, room: p.msg.room, seq: p.msg.seq, id: p.msg.id, at: p.msg.at, from: p.msg.fromId, json: p.json });
  }

  private mark(c: MarkCmd): void {
    if (c.seq >= 0 || this.cluster) {
      // (cluster: seq -1 is resolved in the commit, under the room's lock)
      this.marks.push({ room: c.room, user: c.user, seq: c.seq, id: c.id, ifAbsent: c.ifAbsent, reqId: c.reqId });
      return;
    }
    // seq -1: "up to the newest message accepted in the room so far" (commands arrive in order).
    const r = this.rooms.get(c.room);
    if (r) this.marks.push({ room: c.room, user: c.user, seq: r.lastSeq, id: r.lastId, ifAbsent: c.ifAbsent });
  }

  /** Host-app operations; each answers with the room as it is afterwards. */
  private async request(reqId: number, op: AdminOp): Promise<ReplyEvt> {
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
        if (!r || r.deleted) return fail('not_found', 'no such room');
        // Anything still buffered for the room is committed first, then everything goes at once.
        while (this.committing) await new Promise((r) => setTimeout(r, 5));
        if (this.buffer.some((p) => p.msg.room === op.room) && !(await this.commit())) return fail('conflict', 'the store is failing; retry');
        await this.store.deleteRoom(op.room);
        this.rooms.delete(op.room);
        return reply(null);
      }
      case 'addMembers':
      case 'removeMembers': {
        const r = await this.store.getRoom(op.room);
        if (!r || r.deleted) return fail('not_found', 'no such room');
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

  private async load(c: LoadCmd): Promise<void> {
    const r = await this.room(c.room, c.create);
    if (!r) {
      this.out.push({ t: 'room', room: c.room, state: null });
      return;
    }
    if (this.cluster) {
      // Other nodes write this room too: read its committed last seq now, then the newest messages
      // up to it. Everything up to that seq is committed (transactions are atomic), so the window
      // is gapless; the front thread subscribed to the room's bus channel before asking, so it
      // gets everything after it from the bus.
      const row = await this.store.getRoom(c.room);
      if (row === null || row.deleted) {
        this.rooms.delete(c.room);
        this.out.push({ t: 'room', room: c.room, state: null });
        return;
      }
      r.row = row;
      r.committedSeq = r.lastSeq = Math.max(r.committedSeq, row.lastSeq);
    }
    const windowSize = this.cfg.window;
    const stored = await this.store.latest(c.room, windowSize, this.notBefore());
    // Only what is committed is in the store; with after-commit that is exactly what the front
    // thread may show. Rows a commit in flight (MySQL) wrote but has not reported are trimmed.
    const recent: Delivered[] = stored.filter((m) => m.seq <= r.committedSeq)
      .map((m) => ({ room: m.room, seq: m.seq, id: m.id, at: m.at, from: m.from.id, json: messageJson(m) }));
    let lastSeq = r.committedSeq;
    if (this.cfg.delivery === 'immediate') {
      // The front thread has already published what is accepted but not yet committed.
      for (const p of this.committingBatch.concat(this.buffer)) {
        if (p.msg.room === c.room && p.msg.seq > (recent.at(-1)?.seq ?? 0)) recent.push({ room: c.room, seq: p.msg.seq, id: p.msg.id, at: p.msg.at, from: p.msg.fromId, json: p.json });
      }
      lastSeq = r.lastSeq;
    }
    const state: RoomState = {
      room: c.room,
      info: roomInfo(r.row, r.row.kind === 'public' ? [] : await this.store.members(c.room)),
      lastSeq,
      recent: recent.length > windowSize ? recent.slice(recent.length - windowSize) : recent,
      complete: stored.length < windowSize,
    };
    this.out.push({ t: 'room', room: c.room, state });
  }

  private notBefore(): number {
    return this.cfg.retentionMs > 0 ? Date.now() - this.cfg.retentionMs : 0;
  }

  private scheduleCommit(): void {
    if (this.commitScheduled || this.committing || this.retryTimer !== null || this.closing) return;
    if (this.buffer.length === 0 && this.readyDups.length === 0 && this.marks.length === 0) return;
    this.commitScheduled = true;
    // setImmediate runs after the poll phase: every message already queued on the port is in.
    setImmediate(() => {
      this.commitScheduled = false;
      void this.commit();
    });
  }

  /** The batch being written right now (immediate mode's room loads need to see it). */
  private committingBatch: Pending[] = [];

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
    let missing: Set<string> | null = null;
    try {
      if (batch.length > 0 || marks.length > 0) {
        if (this.holding) await this.held();
        if (this.cfg.testCommitDelayMs > 0) Atomics.wait(this.sleeper, 0, 0, this.cfg.testCommitDelayMs);
        const t0 = performance.now();
        if (this.cluster) {
          missing = await this.store.commitAssign!(batch.map((p) => p.msg), marks, this.nextAbove);
        } else {
          const lastSeqs = new Map<string, number>();
          for (const p of batch) lastSeqs.set(p.msg.room, p.msg.seq);
          await this.store.commit(batch.map((p) => p.msg), lastSeqs, marks);
        }
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
      this.setHealth(false, `commit failed: ${(err as Error).message}`);
      this.flush();
      if (!this.closing) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          void this.commit();
        }, this.nextBackoff());
      }
      return false;
    }
    this.committingBatch = [];
    this.backoff = BACKOFF_MIN_MS;
    const publish = this.cfg.delivery === 'after-commit';
    for (const p of batch) {
      const m = p.msg;
      if (m.cid !== null) this.inflight.delete(m.fromId + '\0' + m.cid);
      if (missing !== null) {
        if (missing.has(m.room)) {
          // Deleted by the host app (on any node) before this commit: refused, nothing stored.
          this.rooms.delete(m.room);
          for (const token of [p.token, ...p.dups]) results.push(notFound(token, m.room, m.fromId));
          continue;
        }
        p.json = jsonOf(m);
      }
      const r = this.rooms.get(m.room);
      if (r) {
        r.committedSeq = Math.max(r.committedSeq, m.seq);
        if (missing !== null) r.lastSeq = r.committedSeq;
      }
      results.push({ token: p.token, room: m.room, seq: m.seq, id: m.id, at: m.at, from: m.fromId, dup: false, json: publish ? p.json : null, error: null });
      for (const token of p.dups) results.push({ token, room: m.room, seq: m.seq, id: m.id, at: m.at, from: m.fromId, dup: true, json: null, error: null });
    }
    if (batch.length > 0 || marks.length > 0) this.setHealth(true, null);
    for (const k of marks) if (k.reqId !== undefined) this.out.push({ t: 'reply', reqId: k.reqId, error: null, message: null, room: null, created: false });
    if (results.length > 0) this.out.push({ t: 'committed', results, batch: batch.length, commitMs });
    this.flush();
    this.committing = false;
    this.scheduleCommit();
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
      hits = EMPTY_HITS;
    }
    // The store compares (sender, cid) exactly (MySQL migration 4), so the conflicting send is among
    // the hits; if none is visible yet, the retry waits (below).
    const rest: Pending[] = [];
    let resolved = 0;
    for (const p of batch) {
      const m = p.msg;
      const hit = m.cid === null ? undefined : hits.get(m.fromId + '\0' + m.cid);
      if (hit === undefined) {
        rest.push(p);
        continue;
      }
      resolved++;
      this.inflight.delete(m.fromId + '\0' + m.cid);
      for (const token of [p.token, ...p.dups]) results.push({ token, room: hit.room, seq: hit.seq, id: hit.id, at: hit.at, from: m.fromId, dup: true, json: null, error: null });
    }
    this.buffer = rest.concat(this.buffer);
    this.readyDups = results.concat(this.readyDups);
    this.marks = marks.concat(this.marks);
    this.committingBatch = [];
    this.committing = false;
    if (resolved === 0) {
      // The conflicting row is not visible yet (or the lookup failed): retry after a pause.
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        void this.commit();
      }, BACKOFF_MIN_MS);
      return false;
    }
    this.scheduleCommit();
    return false;
  }

  /** Test hook: wait here until the hold is lifted, telling the front thread a commit waits. */
  private held(): Promise<void> {
    return new Promise((resolve) => {
      this.release = resolve;
      this.out.push({ t: 'held', waiting: 1 });
      this.flush();
    });
  }

  private setHold(on: boolean): void {
    this.holding = on;
    if (on || this.release === null) return;
    const release = this.release;
    this.release = null;
    this.out.push({ t: 'held', waiting: 0 });
    release();
  }

  private setHealth(ok: boolean, reason: string | null): void {
    if (ok === this.healthy) return;
    this.healthy = ok;
    this.out.push({ t: 'health', ok, reason });
  }

  flush(): void {
    if (this.out.length === 0) return;
    this.post(encodeBatch(this.out));
    this.out = [];
    this.acceptedBatch = null;
  }

  /** Retention: delete expired messages in small batches, yielding between them. */
  async purgeExpired(): Promise<void> {
    if (this.cfg.retentionMs <= 0 || this.closing) return;
    const cutoff = tsidFloor(Date.now() - this.cfg.retentionMs);
    try {
      const n = await this.store.purgeBefore(cutoff, PURGE_BATCH);
      if (n === PURGE_BATCH) setImmediate(() => void this.purgeExpired());
    } catch {
      // The store is down; the next interval tries again.
    }
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // Commit what is held; if the store keeps failing, give up after a few tries (the front
    // thread never acked those messages, so nothing acked is lost).
    for (let i = 0; i < 20 && (this.committing || this.buffer.length > 0 || this.readyDups.length > 0 || this.marks.length > 0); i++) {
      if (this.release !== null) i--; // a commit held by the test hook waits for its release
      if (this.committing) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      if (!(await this.commit())) await new Promise((r) => setTimeout(r, 100));
    }
    this.flush();
    await this.store.close();
    this.onClosed();
  }
}

const EMPTY_HITS = new Map<string, CidHit>();

/** A send refused because its room does not exist (or was deleted): nothing stored. */
function notFound(token: number, room: string, from: string): SendResult {
  return { token, room, seq: 0, id: '', at: 0, from, dup: false, json: null, error: 'not_found' };
}

/** A message's protocol JSON, encoded once: every copy the front thread publishes is these bytes. */
function jsonOf(m: NewMessage): string {
  const msg: Message = { id: m.id, room: m.room, seq: m.seq, type: m.type, from: { id: m.fromId, name: m.fromName }, text: m.text, at: m.at };
  if (m.cid !== null) msg.cid = m.cid;
  return messageJson(msg);
}

async function main(): Promise<void> {
  const init = workerData as ActorInit;
  const port = parentPort!;
  const cfg = init.config;
  const store = await openStore(cfg);
  const actor = new PersistenceActor(cfg, store, (buf) => port.postMessage(buf, [buf.buffer as ArrayBuffer]), () => setImmediate(() => port.close()));
  port.on('message', (buf: Uint8Array) => actor.receive(decodeBatch<ToActor>(buf)));
  // Report the actor's event-loop delay once a second (the front thread exposes it in /metrics).
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const statsTimer = setInterval(() => {
    // The monitor's own 10 ms sampling period is part of every reading: subtract it.
    port.postMessage(encodeBatch([{ t: 'stats', loopLagMs: Math.max(0, lag.percentile(99) / 1e6 - 10) }]));
    lag.reset();
  }, 1000);
  statsTimer.unref();
  port.once('close', () => clearInterval(statsTimer));
  if (cfg.retentionMs > 0) {
    const every = Math.min(60_000, Math.max(1000, Math.floor(cfg.retentionMs / 10)));
    setInterval(() => void actor.purgeExpired(), every).unref();
    void actor.purgeExpired();
  }
  port.postMessage(encodeBatch([{ t: 'ready', blocks: await store.allBlocks() }]));
}

void main();
