// What the engine counts, and how it is read: GET /metrics (prom-client, Prometheus text) and
// GET /api/stats (JSON for the /dashboard page). The hot path only bumps plain number fields and
// fixed-bucket histograms (a few ns a call, nothing allocated); every prom-client metric below is
// filled from those fields by its collect() callback when scraped, so nobody scraping costs nothing.

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import client from 'prom-client';
import type { Config } from './config.ts';
import { ERRORS, type ErrorCode } from './errors.ts';

/** Millisecond buckets (upper bounds) shared by every latency histogram. */
export const LATENCY_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
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

function quantiles(buckets: readonly number[], counts: ArrayLike<number>): Quantiles {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i];
  const p = (q: number): number | null => (n === 0 ? null : quantile(buckets, counts, q));
  return { p50: p(0.5), p99: p(0.99), n };
}

/**
 * A histogram's last completed second: Stats' ticker copies the counts once a second and keeps
 * the difference, so /api/stats can show a live p50/p99 however many pages poll it.
 */
class Window {
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
  /** Cluster: the bus's counters (server.ts points it at the Bus); null on a single node. */
  bus: { readonly published: number; readonly received: number; readonly up: boolean; readonly subscriptions: number } | null = null;
  /** SQLite checkpoints run on a reader thread (CHAT_SQLITE_CHECKPOINT), and those that failed. */
  checkpoints = 0;
  checkpointFailures = 0;
  /** WAL frames in the log at the last checkpoint (0 right after the WAL restarted). */
  walFrames = 0;
  /** Tasks waiting in the reader pool; server.ts points it at piscina's queueSize. */
  readerQueue: () => number = () => 0;
  readonly commitMs = new Histogram(LATENCY_BUCKETS_MS);
  readonly commitBatch = new Histogram(BATCH_BUCKETS);
  readonly acceptToCommitMs = new Histogram(LATENCY_BUCKETS_MS);
  readonly acceptToDeliverMs = new Histogram(LATENCY_BUCKETS_MS);
  readonly loop: IntervalHistogram;
  readonly windows: { commitMs: Window; commitBatch: Window; acceptToCommitMs: Window; acceptToDeliverMs: Window };
  private readonly ticker: NodeJS.Timeout;

  constructor() {
    this.refused = Object.fromEntries(Object.keys(ERRORS).map((c) => [c, 0])) as Record<ErrorCode, number>;
    this.windows = {
      commitMs: new Window(this.commitMs),
      commitBatch: new Window(this.commitBatch),
      acceptToCommitMs: new Window(this.acceptToCommitMs),
      acceptToDeliverMs: new Window(this.acceptToDeliverMs),
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

/** What the metrics read from the engine (Engine satisfies it; tests can pass a stand-in). */
export interface MetricsSource {
  readonly stats: Stats;
  readonly rooms: { readonly size: number };
  readonly inflight: number;
  readonly inflightByteCount: number;
  readonly storeOk: boolean;
}

/** GET /api/stats: the dashboard's one JSON document. Times in ms, sizes in bytes. */
export interface StatsJson {
  /** Milliseconds since the engine started (monotonic; the page divides counter deltas by it). */
  uptimeMs: number;
  connections: number;
  connectionsTotal: number;
  rooms: number;
  accepted: number;
  delivered: number;
  acked: number;
  duplicates: number;
  refused: Record<ErrorCode, number>;
  slowConsumerCloses: number;
  bufferMessages: number;
  bufferBytes: number;
  bufferMaxMessages: number;
  bufferMaxBytes: number;
  commits: number;
  committedMessages: number;
  storeOk: boolean;
  loopLagMs: number;
  actorLagMs: number;
  readerQueue: number;
  checkpoints: number;
  walFrames: number;
  rssBytes: number;
  /** p50/p99 of the last completed second and since start, interpolated from the buckets. */
  latency: Record<'acceptToDeliverMs' | 'acceptToCommitMs' | 'commitMs' | 'commitBatch', { lastSecond: Quantiles; total: Quantiles }>;
}

/**
 * A prom-client histogram whose buckets are a Stats Histogram's: observe() is never called on it;
 * scraping turns the fixed bucket counts into cumulative `le` samples (values divided by `scale`,
 * e.g. ms to seconds).
 */
class BucketHistogram extends client.Histogram<string> {
  constructor(private readonly id: string, private readonly about: string, private readonly src: Histogram, private readonly scale: number, registry: client.Registry) {
    super({ name: id, help: about, buckets: src.buckets.map((b) => b / scale), registers: [registry] });
  }

  private values(): { metricName: string; labels: Record<string, string | number>; value: number }[] {
    const h = this.src;
    const name = this.id;
    const out: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    let cum = 0;
    for (let i = 0; i < h.buckets.length; i++) {
      cum += h.counts[i];
      out.push({ metricName: `${name}_bucket`, labels: { le: h.buckets[i] / this.scale }, value: cum });
    }
    cum += h.counts[h.buckets.length];
    out.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: cum });
    out.push({ metricName: `${name}_sum`, labels: {}, value: h.sum / this.scale });
    out.push({ metricName: `${name}_count`, labels: {}, value: h.count });
    return out;
  }

  override async get(): Promise<client.MetricObjectWithValues<client.MetricValueWithName<string>>> {
    // The same object shape prom-client's own Histogram returns (type 'histogram', aggregator 'sum').
    return { name: this.id, help: this.about, type: 'histogram' as unknown as client.MetricType, aggregator: 'sum', collect: () => undefined, values: this.values() };
  }

  /** The Registry renders text from this method when a metric has it (prom-client 15). */
  async getForPromString(): Promise<client.MetricObjectWithValues<client.MetricValueWithName<string>>> {
    return this.get();
  }
}

/**
 * The engine's metrics: a prom-client Registry (chat_* metrics plus the default process_* and
 * nodejs_* ones) for GET /metrics, and the JSON snapshot for GET /api/stats. One per server.
 */
export class Metrics {
  readonly registry = new client.Registry();
  private readonly started = performance.now();

  constructor(private readonly src: MetricsSource, private readonly cfg: Pick<Config, 'bufferMaxMessages' | 'bufferMaxBytes' | 'redisUrl'>) {
    const reg = this.registry;
    const s = src.stats;
    const registers = [reg];
    client.collectDefaultMetrics({ register: reg });

    // Counters are plain Stats fields; collect() copies them in at scrape time.
    const counter = (name: string, help: string, read: () => number): void => {
      new client.Counter({ name, help, registers, collect() { this.reset(); this.inc(read()); } });
    };
    const gauge = (name: string, help: string, read: () => number): void => {
      new client.Gauge({ name, help, registers, collect() { this.set(read()); } });
    };

    gauge('chat_connections', 'Open WebSocket connections.', () => s.connections);
    counter('chat_connections_total', 'WebSocket connections accepted since start.', () => s.connectionsTotal);
    gauge('chat_rooms_active', 'Rooms loaded on the front thread.', () => src.rooms.size);
    counter('chat_messages_accepted_total', 'Sends handed to the persistence actor.', () => s.accepted);
    counter('chat_messages_delivered_total', 'Messages published to their room topic.', () => s.delivered);
    counter('chat_messages_acked_total', 'Acks sent (each after a durable commit).', () => s.acked);
    counter('chat_messages_duplicate_total', 'Retried sends answered with the original ack.', () => s.duplicates);
    new client.Counter({
      name: 'chat_frames_refused_total',
      help: 'Frames refused, by error code.',
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const code of Object.keys(s.refused) as ErrorCode[]) this.inc({ code }, s.refused[code]);
      },
    });
    counter('chat_sqlite_checkpoints_total', 'SQLite checkpoints run on a reader thread.', () => s.checkpoints);
    counter('chat_sqlite_checkpoint_failures_total', 'SQLite checkpoints on a reader thread that failed (the writer still checkpoints at 10,000 WAL pages).', () => s.checkpointFailures);
    gauge('chat_sqlite_wal_frames', 'WAL frames in the log at the last checkpoint.', () => s.walFrames);
    counter('chat_slow_consumer_disconnects_total', 'Connections closed for passing the backpressure limit.', () => s.slowConsumerCloses);
    gauge('chat_write_buffer_messages', 'Sends accepted and not yet committed.', () => src.inflight);
    gauge('chat_write_buffer_bytes', 'Bytes of sends accepted and not yet committed (upper bound).', () => src.inflightByteCount);
    gauge('chat_write_buffer_max_messages', 'Write buffer cap in messages.', () => cfg.bufferMaxMessages);
    gauge('chat_write_buffer_max_bytes', 'Write buffer cap in bytes.', () => cfg.bufferMaxBytes);
    counter('chat_commits_total', 'Group commits (transactions) completed.', () => s.commits);
    counter('chat_committed_messages_total', 'Messages written by group commits.', () => s.committedMessages);
    gauge('chat_commit_last_batch', 'Messages in the last group commit.', () => s.lastBatch);
    gauge('chat_commit_last_seconds', 'Duration of the last group commit.', () => s.lastCommitMs / 1000);
    gauge('chat_store_up', '1 while the store accepts commits.', () => (src.storeOk ? 1 : 0));
    new BucketHistogram('chat_commit_duration_seconds', 'Duration of each group commit.', s.commitMs, 1000, reg);
    new BucketHistogram('chat_commit_batch_messages', 'Messages per group commit.', s.commitBatch, 1, reg);
    new BucketHistogram('chat_accept_to_commit_seconds', 'From accepting a send to its durable commit reaching the front thread.', s.acceptToCommitMs, 1000, reg);
    new BucketHistogram('chat_accept_to_deliver_seconds', 'From accepting a send to publishing it to the room.', s.acceptToDeliverMs, 1000, reg);
    gauge('chat_event_loop_lag_seconds', 'Front thread event-loop delay, p99 over the last second.', () => s.loopLagMs / 1000);
    gauge('chat_actor_event_loop_lag_seconds', 'Persistence actor event-loop delay, p99 over the last second.', () => s.actorLagMs / 1000);
    gauge('chat_reader_queue_depth', 'History reads waiting for a reader thread.', () => s.readerQueue());
    if (cfg.redisUrl !== null) {
      counter('chat_bus_published_total', 'Messages this node published to the other nodes.', () => s.bus?.published ?? 0);
      counter('chat_bus_received_total', 'Messages received from the other nodes.', () => s.bus?.received ?? 0);
      counter('chat_bus_gap_fills_total', 'Seq gaps filled from the store (bus late, lost, or down).', () => s.gapFills);
      gauge('chat_bus_up', '1 while Redis is reachable.', () => (s.bus?.up ? 1 : 0));
      gauge('chat_bus_subscriptions', 'Room channels this node is subscribed to.', () => s.bus?.subscriptions ?? 0);
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Prometheus text exposition (version 0.0.4). */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  snapshot(): StatsJson {
    const s = this.src.stats;
    const lat = (h: Histogram, w: Window): { lastSecond: Quantiles; total: Quantiles } => ({ lastSecond: w.quantiles(), total: quantiles(h.buckets, h.counts) });
    return {
      uptimeMs: Math.round(performance.now() - this.started),
      connections: s.connections,
      connectionsTotal: s.connectionsTotal,
      rooms: this.src.rooms.size,
      accepted: s.accepted,
      delivered: s.delivered,
      acked: s.acked,
      duplicates: s.duplicates,
      refused: { ...s.refused },
      slowConsumerCloses: s.slowConsumerCloses,
      bufferMessages: this.src.inflight,
      bufferBytes: this.src.inflightByteCount,
      bufferMaxMessages: this.cfg.bufferMaxMessages,
      bufferMaxBytes: this.cfg.bufferMaxBytes,
      commits: s.commits,
      committedMessages: s.committedMessages,
      storeOk: this.src.storeOk,
      loopLagMs: s.loopLagMs,
      actorLagMs: s.actorLagMs,
      readerQueue: s.readerQueue(),
      checkpoints: s.checkpoints,
      walFrames: s.walFrames,
      rssBytes: process.memoryUsage.rss(),
      latency: {
        acceptToDeliverMs: lat(s.acceptToDeliverMs, s.windows.acceptToDeliverMs),
        acceptToCommitMs: lat(s.acceptToCommitMs, s.windows.acceptToCommitMs),
        commitMs: lat(s.commitMs, s.windows.commitMs),
        commitBatch: lat(s.commitBatch, s.windows.commitBatch),
      },
    };
  }
}
