// What the engine counts. The hot path only bumps plain number fields and fixed-bucket histograms
// (a few ns a call, nothing allocated); prometheus.ts turns them into /metrics and /api/stats when
// asked, so nobody scraping costs nothing.

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { HookStats } from '../../workers/contract.ts';
import { ERRORS, type ErrorCode } from '../protocol/errors.ts';

/** Millisecond buckets (upper bounds) shared by every latency histogram. */
export const LATENCY_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
/** Webhook cause-to-delivery buckets (ms): retries make minutes and hours normal. */
export const HOOK_LATENCY_BUCKETS_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000];
export const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
/** monitorEventLoopDelay's timer period; Node 20 records the whole period, so it is subtracted. */
export const LOOP_RESOLUTION_MS = 10;

/** A fixed-bucket histogram: observe() is a short scan and an increment, nothing allocated. */
export class Histogram {
  /** counts[i] = observations in (buckets[i-1], buckets[i]]; the last slot is (last bucket, +Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Float64Array(buckets.length + 1);
  }
  observe(v: number): void {
    let i = 0;
    const b = this.buckets;
    while (i < b.length && v > b[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

/**
 * The q-quantile (0..1) of per-bucket counts, interpolated linearly inside the bucket it falls in
 * (as Prometheus' histogram_quantile does: the first bucket starts at 0; past the last finite
 * bound the answer is that bound). NaN when there are no observations.
 */
export function quantile(buckets: readonly number[], counts: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (total === 0) return NaN;
  const rank = q * total;
  let cum = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (c > 0 && cum + c >= rank) {
      if (i === buckets.length) return buckets[buckets.length - 1];
      const lo = i === 0 ? 0 : buckets[i - 1];
      return lo + (buckets[i] - lo) * Math.max(0, rank - cum) / c;
    }
    cum += c;
  }
  return buckets[buckets.length - 1];
}

/** p50/p99 over some span, and how many observations they rest on. */
export interface Quantiles {
  p50: number | null;
  p99: number | null;
  n: number;
}

export function quantiles(buckets: readonly number[], counts: ArrayLike<number>): Quantiles {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i];
  const p = (q: number): number | null => (n === 0 ? null : quantile(buckets, counts, q));
  return { p50: p(0.5), p99: p(0.99), n };
}

/**
 * A histogram's last completed second: Stats' ticker copies the counts once a second and keeps
 * the difference, so /api/stats can show a live p50/p99 however many pages poll it.
 */
export class LastSecond {
  private readonly prev: Float64Array;
  readonly last: Float64Array;
  constructor(readonly h: Histogram) {
    this.prev = new Float64Array(h.counts.length);
    this.last = new Float64Array(h.counts.length);
  }
  tick(): void {
    const c = this.h.counts;
    for (let i = 0; i < c.length; i++) {
      this.last[i] = c[i] - this.prev[i];
      this.prev[i] = c[i];
    }
  }
  quantiles(): Quantiles {
    return quantiles(this.h.buckets, this.last);
  }
}

/** What /metrics shows of the cluster bus. */
export interface BusCounters {
  readonly published: number;
  readonly received: number;
  readonly up: boolean;
  readonly subscriptions: number;
}

/** Counters and histograms read by /metrics, /api/stats and /healthz; the hot path only bumps fields. */
export class Stats {
  connections = 0;
  connectionsTotal = 0;
  accepted = 0;
  delivered = 0;
  acked = 0;
  duplicates = 0;
  slowConsumerCloses = 0;
  commits = 0;
  committedMessages = 0;
  lastBatch = 0;
  lastCommitMs = 0;
  /** Persistence actor event-loop delay, p99 of its last second (the actor reports it). */
  actorLagMs = 0;
  /** Front thread event-loop delay, p99 of the last completed second. */
  loopLagMs = 0;
  /** One slot per error code, all present from the start (a fixed shape; a zero series is a series). */
  readonly refused: Record<ErrorCode, number>;
  /** Cluster: seq gaps filled from the store (the bus lost or delayed something). */
  gapFills = 0;
  /** Cluster: the bus's counters; null on a single node. */
  bus: BusCounters | null = null;
  /** SQLite checkpoints run on a reader thread (CHAT_SQLITE_CHECKPOINT), and those that failed. */
  checkpoints = 0;
  checkpointFailures = 0;
  /** WAL frames in the log at the last checkpoint (0 right after the WAL restarted). */
  walFrames = 0;
  /** Webhooks on: the deliverer's figures, as the actor reports them once a second; null otherwise. */
  hooks: HookStats | null = null;
  /** Webhooks: cause to delivery, copied from the actor's cumulative counts. */
  readonly hookLatencyMs = new Histogram(HOOK_LATENCY_BUCKETS_MS);
  /** Tasks waiting in the reader pool; server.ts points it at piscina's queueSize. */
  readerQueue: () => number = () => 0;
  readonly commitMs = new Histogram(LATENCY_BUCKETS_MS);
  readonly commitBatch = new Histogram(BATCH_BUCKETS);
  readonly acceptToCommitMs = new Histogram(LATENCY_BUCKETS_MS);
  readonly acceptToDeliverMs = new Histogram(LATENCY_BUCKETS_MS);
  readonly loop: IntervalHistogram;
  readonly windows: { commitMs: LastSecond; commitBatch: LastSecond; acceptToCommitMs: LastSecond; acceptToDeliverMs: LastSecond };
  private readonly ticker: NodeJS.Timeout;

  constructor() {
    this.refused = Object.fromEntries(Object.keys(ERRORS).map((c) => [c, 0])) as Record<ErrorCode, number>;
    this.windows = {
      commitMs: new LastSecond(this.commitMs),
      commitBatch: new LastSecond(this.commitBatch),
      acceptToCommitMs: new LastSecond(this.acceptToCommitMs),
      acceptToDeliverMs: new LastSecond(this.acceptToDeliverMs),
    };
    this.loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.loop.enable();
    // Once a second, off the hot path: close the one-second windows. unref: never keeps the process up.
    this.ticker = setInterval(() => this.tick(), 1000);
    this.ticker.unref();
  }

  private tick(): void {
    this.loopLagMs = this.loop.count > 0 ? Math.max(0, this.loop.percentile(99) / 1e6 - LOOP_RESOLUTION_MS) : 0;
    this.loop.reset();
    this.windows.commitMs.tick();
    this.windows.commitBatch.tick();
    this.windows.acceptToCommitMs.tick();
    this.windows.acceptToDeliverMs.tick();
  }

  /** Stop the ticker and the event-loop monitor (tests; the engine's Stats lives as long as the process). */
  close(): void {
    clearInterval(this.ticker);
    this.loop.disable();
  }

  /** The actor's webhook figures (once a second). */
  setHooks(h: HookStats | null): void {
    this.hooks = h;
    if (h === null) return;
    const l = this.hookLatencyMs;
    let n = 0;
    for (let i = 0; i < l.counts.length; i++) n += l.counts[i] = h.latencyCounts[i] ?? 0;
    l.count = n;
    l.sum = h.latencySum;
  }

  refuse(code: ErrorCode): void {
    this.refused[code]++;
  }
  observeCommit(batch: number, ms: number): void {
    this.commits++;
    this.committedMessages += batch;
    this.lastBatch = batch;
    this.lastCommitMs = ms;
    this.commitMs.observe(ms);
    this.commitBatch.observe(batch);
  }
  observeCommitted(ms: number): void {
    this.acceptToCommitMs.observe(ms);
  }
  observeDeliver(ms: number): void {
    this.acceptToDeliverMs.observe(ms);
  }
}

