// Webhook delivery (docs/webhooks.md): the outbox's pending events go to CHAT_WEBHOOK_URL in
// signed batches, one request at a time, each room's events in id order. It runs in the actor's
// idle time: the store calls are short (SQLite's are the actor's own connection, so only the
// actor writes the database), the request itself is asynchronous I/O, and a slow or dead
// receiver only makes the next round wait, never a commit. A 2xx marks the batch delivered; a
// 5xx, 429, timeout or network error retries it with exponential backoff and jitter (the rooms
// in it wait, so their order holds); a 4xx splits the batch and dead-letters the one event the
// receiver refuses alone. In a cluster a node delivers only rooms it leases.

import { createHmac } from 'node:crypto';
import { HOOK_LATENCY_BUCKETS_MS } from '../../src/metrics/stats.ts';
import type { ActorInit, HookStats, HooksOp, HooksReplyEvt } from '../contract.ts';
import { eventJson, type EventStore, type StoredEvent } from '../stores/events.ts';

type Settings = Pick<ActorInit['config'], 'webhookUrl' | 'webhookSecret' | 'webhookBatch' | 'webhookTimeoutMs' | 'webhookMaxAttempts' | 'webhookRetryMs' | 'webhookRetryMaxMs' | 'webhookKeepMs' | 'webhookMaxPending' | 'nodeId'>;


/** A cluster node's lease on a room's delivery; renewed every round it delivers the room. */
const LEASE_MS = 30_000;
/** Rooms considered per round. */
const ROOMS_PER_ROUND = 1000;
/** Nothing due: look again this often (a cluster's other nodes write events this node delivers). */
const IDLE_POLL_MS = 1000;
const PURGE_BATCH = 1000;

/** `sha256=<hex>`: the HMAC-SHA256 of `<timestamp>.<raw body>` (X-Chat-Signature). */
export function signature(secret: string, timestamp: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/** How an attempt ended. */
type Outcome = { ok: true } | { ok: false; retry: boolean; error: string };

export class Webhooks {
  private pending = 0;
  private readonly counts = { delivered: 0, retried: 0, deadLettered: 0, overflow: 0 };
  private failingSince: number | null = null;
  private lastError: string | null = null;
  private readonly latency = new Array<number>(HOOK_LATENCY_BUCKETS_MS.length + 1).fill(0);
  private latencySum = 0;
  /** Events of a batch the receiver refused with a 4xx: tried one by one to find the bad one. */
  private readonly solo = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private again = false;
  /**
   * Some room waits for a retry (the receiver is failing): new events do not start a round
   * early, the timer (at most IDLE_POLL_MS) does; otherwise every commit would start one.
   */
  private backingOff = false;
  private stopped = false;
  /** The request in flight: aborted on stop, so a receiver that hangs never holds up a shutdown. */
  private inflight: AbortController | null = null;
  private lastCount = 0;
  private readonly purgeTimer: NodeJS.Timeout;

  constructor(
    private readonly store: EventStore,
    private readonly cfg: Settings,
    /** A cluster: lease rooms so one node delivers each. */
    private readonly cluster: boolean,
  ) {
    this.purgeTimer = setInterval(() => void this.purge(), Math.min(60_000, Math.max(1000, cfg.webhookKeepMs / 10)));
    this.purgeTimer.unref();
  }

  async start(): Promise<void> {
    this.pending = await this.store.pendingCount();
    this.lastCount = Date.now();
    this.poke();
  }

  /**
   * A new event is about to be written: false while the outbox has room (it counts as pending),
   * true when it is full and the event goes straight to the dead-letter list (counted).
   */
  full(): boolean {
    if (this.pending >= this.cfg.webhookMaxPending) {
      this.counts.overflow++;
      this.counts.deadLettered++;
      return true;
    }
    this.pending++;
    return false;
  }

  /** Events were written (or replayed): deliver soon. */
  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer !== null) {
      if (this.backingOff) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => void this.round(), 0);
  }

  stop(): void {
    this.stopped = true;
    this.inflight?.abort();
    if (this.timer !== null) clearTimeout(this.timer);
    clearInterval(this.purgeTimer);
  }

  stats(): HookStats {
    return { pending: this.pending, ...this.counts, failingSince: this.failingSince, lastError: this.lastError, latencyCounts: this.latency.slice(), latencySum: this.latencySum };
  }

  /** An admin call (src/http/api.ts). */
  async request(reqId: number, op: HooksOp): Promise<HooksReplyEvt> {
    if (op.op === 'list') return { t: 'hooksReply', reqId, events: await this.store.listEvents(op), count: 0 };
    const count = await this.store.replay(op.op === 'replay' ? { from: op.from } : { ids: op.ids });
    this.pending += count;
    this.poke();
    return { t: 'hooksReply', reqId, events: null, count };
  }

  private async round(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    this.running = true;
    let wait: number | null = null;
    try {
      wait = await this.deliverSome();
    } catch (err) {
      // The store is failing: the group commit reports it; try again later.
      this.lastError = `store: ${(err as Error).message}`;
      wait = IDLE_POLL_MS;
    }
    this.running = false;
    if (this.stopped) return;
    if (this.again && !this.backingOff) wait = 0;
    this.again = false;
    if (wait !== null) this.timer = setTimeout(() => void this.round(), wait);
  }

  /** One request's worth; returns when to look again (ms), null: when poked. */
  private async deliverSome(): Promise<number | null> {
    const now = Date.now();
    if (now - this.lastCount > 5000) {
      // The outbox is the truth (other nodes, replays, purges): re-count now and then.
      this.pending = await this.store.pendingCount();
      this.lastCount = now;
    }
    const due = await this.store.dueRooms(now, ROOMS_PER_ROUND);
    this.backingOff = due.nextAt !== null;
    const idle = due.nextAt !== null ? Math.max(1, Math.min(due.nextAt - now, IDLE_POLL_MS)) : this.cluster || this.pending > 0 ? IDLE_POLL_MS : null;
    if (due.rooms.length === 0) return idle;
    const rooms = this.cluster ? await this.store.leaseRooms(this.cfg.nodeId, due.rooms, now, now + LEASE_MS) : due.rooms;
    if (rooms.length === 0) return idle;
    let batch = await this.store.pendingOf(rooms, this.cfg.webhookBatch);
    if (batch.length === 0) return idle;
    if (this.solo.size > 0) {
      const one = batch.find((e) => this.solo.has(e.id));
      if (one !== undefined) batch = [one];
    }
    const ids = batch.map((e) => e.id);
    const outcome = await this.send(batch);
    if (this.stopped) return null; // shutting down: what was in flight stays pending
    const after = Date.now();
    if (outcome.ok) {
      await this.store.delivered(ids, after);
      this.receiverOk();
      for (const e of batch) this.observe(after - e.at);
      this.done(ids, 'delivered');
      return 0;
    }
    this.failing(outcome.error, after);
    if (!outcome.retry) {
      if (batch.length > 1) {
        // One of them is refused: find it by sending them one at a time.
        for (const id of ids) this.solo.add(id);
        return 0;
      }
      await this.store.deadLetter(ids, outcome.error, after);
      this.done(ids, 'deadLettered');
      return 0;
    }
    const attempts = Math.max(...batch.map((e) => e.attempts)) + 1;
    const dead = await this.store.failed(ids, outcome.error, after + this.backoff(attempts), this.cfg.webhookMaxAttempts, after);
    this.counts.retried += ids.length - dead;
    this.counts.deadLettered += dead;
    this.pending = Math.max(0, this.pending - dead);
    if (dead > 0) for (const id of ids) this.solo.delete(id);
    return 0;
  }

  /** POST one batch; never throws. */
  private async send(batch: StoredEvent[]): Promise<Outcome> {
    const body = '{"events":[' + batch.map(eventJson).join(',') + ']}';
    const ts = String(Math.floor(Date.now() / 1000));
    const abort = (this.inflight = new AbortController());
    try {
      const res = await fetch(this.cfg.webhookUrl!, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(this.cfg.webhookTimeoutMs)]),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'uchat-webhooks',
          'x-chat-event-ids': batch.map((e) => e.id).join(','),
          'x-chat-timestamp': ts,
          'x-chat-signature': signature(this.cfg.webhookSecret!, ts, body),
        },
        body,
      });
      // The answer's body is not read: release the connection.
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { ok: true };
      const retry = res.status === 429 || res.status >= 500;
      return { ok: false, retry, error: `HTTP ${res.status}` };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      const why = e.name === 'TimeoutError' ? `timeout after ${this.cfg.webhookTimeoutMs} ms` : e.cause?.code ?? e.message;
      return { ok: false, retry: true, error: why };
    } finally {
      this.inflight = null;
    }
  }

  /** Exponential from CHAT_WEBHOOK_RETRY, capped, with jitter (half to all of it). */
  private backoff(attempts: number): number {
    const full = Math.min(this.cfg.webhookRetryMaxMs, this.cfg.webhookRetryMs * 2 ** Math.min(30, attempts - 1));
    return Math.ceil(full / 2 + Math.random() * (full / 2));
  }

  private done(ids: number[], how: 'delivered' | 'deadLettered'): void {
    this.counts[how] += ids.length;
    this.pending = Math.max(0, this.pending - ids.length);
    for (const id of ids) this.solo.delete(id);
  }

  private receiverOk(): void {
    this.failingSince = null;
  }

  private failing(error: string, now: number): void {
    this.lastError = error;
    this.failingSince ??= now;
  }

  private observe(ms: number): void {
    let i = 0;
    while (i < HOOK_LATENCY_BUCKETS_MS.length && ms > HOOK_LATENCY_BUCKETS_MS[i]) i++;
    this.latency[i]++;
    this.latencySum += ms;
  }

  private async purge(): Promise<void> {
    if (this.stopped) return;
    try {
      const n = await this.store.purgeEvents(Date.now() - this.cfg.webhookKeepMs, PURGE_BATCH);
      if (n === PURGE_BATCH) setImmediate(() => void this.purge());
    } catch {
      // The store is down; the next interval tries again.
    }
  }
}
