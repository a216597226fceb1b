// How the engine's counts are read: GET /metrics (prom-client, Prometheus text) and GET /api/stats
// (JSON for the /dashboard page). Every prom-client metric is filled from Stats' plain fields by
// its collect() callback when scraped.

import client from 'prom-client';
import type { Config } from '../config.ts';
import { ENTRY_BYTES } from '../core/window-entry.ts';
import type { ErrorCode } from '../protocol/errors.ts';
import { quantiles, type Histogram, type Quantiles, type Stats, type LastSecond } from './stats.ts';

/** What the metrics read from the engine (Engine satisfies it; tests can pass a stand-in). */
export interface MetricsSource {
  readonly stats: Stats;
  readonly rooms: { readonly size: number };
  /** What every hot window holds together, in entryBytes (src/core/window.ts). */
  readonly windowBytes: number;
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
  windowBytes: number;
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

  constructor(private readonly src: MetricsSource, private readonly cfg: Pick<Config, 'bufferMaxMessages' | 'bufferMaxBytes' | 'redisUrl' | 'webhookUrl'>) {
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
    gauge('chat_window_bytes', `Memory the hot windows hold: each message's JSON bytes plus ${ENTRY_BYTES} (CHAT_WINDOWS_MAX_BYTES caps it).`, () => src.windowBytes);
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
    if (cfg.webhookUrl !== null) {
      gauge('chat_webhook_pending', 'Webhook events waiting for delivery.', () => s.hooks?.pending ?? 0);
      counter('chat_webhook_delivered_total', 'Webhook events the receiver took (2xx).', () => s.hooks?.delivered ?? 0);
      counter('chat_webhook_retried_total', 'Webhook events whose attempt failed (5xx, 429, timeout, refused) and that wait for another.', () => s.hooks?.retried ?? 0);
      counter('chat_webhook_dead_lettered_total', 'Webhook events moved to the dead-letter list (4xx, too many attempts, or the outbox full).', () => s.hooks?.deadLettered ?? 0);
      counter('chat_webhook_overflow_total', 'Webhook events written straight to the dead-letter list because CHAT_WEBHOOK_MAX_PENDING were pending.', () => s.hooks?.overflow ?? 0);
      gauge('chat_webhook_receiver_up', '0 while every recent attempt to reach the receiver failed.', () => (s.hooks?.failingSince == null ? 1 : 0));
      new BucketHistogram('chat_webhook_delivery_seconds', 'From an event\'s cause to its delivery.', s.hookLatencyMs, 1000, reg);
    }
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
    const lat = (h: Histogram, w: LastSecond): { lastSecond: Quantiles; total: Quantiles } => ({ lastSecond: w.quantiles(), total: quantiles(h.buckets, h.counts) });
    return {
      uptimeMs: Math.round(performance.now() - this.started),
      connections: s.connections,
      connectionsTotal: s.connectionsTotal,
      rooms: this.src.rooms.size,
      windowBytes: this.src.windowBytes,
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
