// GET /metrics: Prometheus text exposition of the engine's counters. Rendering happens only when
// scraped; the hot path only bumps plain number fields (free when nobody scrapes).

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { ErrorCode } from './errors.ts';
import type { Config } from './config.ts';
import type { Engine } from './engine.ts';

/** Millisecond buckets (upper bounds) shared by every latency histogram. */
export const LATENCY_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
export const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/** A fixed-bucket histogram: observe() is a short scan and an increment, nothing allocated. */
export class Histogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly buckets: number[]) {
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

/** Counters and histograms read by /metrics and /healthz; the hot path only bumps fields. */
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
  actorLagMs = 0;
  refused: Partial<Record<ErrorCode, number>> = {};
  readonly commitMs = new Histogram(LATENCY_BUCKETS_MS);
  readonly commitBatch = new Histogram(BATCH_BUCKETS);
  readonly acceptToCommitMs = new Histogram(LATENCY_BUCKETS_MS);
  readonly acceptToDeliverMs = new Histogram(LATENCY_BUCKETS_MS);
  readonly loop: IntervalHistogram;

  constructor() {
    this.loop = monitorEventLoopDelay({ resolution: 10 });
    this.loop.enable();
  }

  refuse(code: ErrorCode): void {
    this.refused[code] = (this.refused[code] ?? 0) + 1;
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

export function renderMetrics(engine: Engine, cfg: Config): string {
  const s = engine.stats;
  const lines: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number, labels = ''): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${value}`);
  };
  metric('chat_connections', 'gauge', 'Open WebSocket connections.', s.connections);
  metric('chat_connections_total', 'counter', 'WebSocket connections accepted since start.', s.connectionsTotal);
  metric('chat_rooms_active', 'gauge', 'Rooms loaded on the front thread.', engine.rooms.size);
  metric('chat_messages_accepted_total', 'counter', 'Sends handed to the persistence actor.', s.accepted);
  metric('chat_messages_delivered_total', 'counter', 'Messages published to their room topic.', s.delivered);
  metric('chat_messages_acked_total', 'counter', 'Acks sent (each after a durable commit).', s.acked);
  metric('chat_messages_duplicate_total', 'counter', 'Retried sends answered with the original ack.', s.duplicates);
  lines.push('# HELP chat_frames_refused_total Frames refused, by error code.', '# TYPE chat_frames_refused_total counter');
  for (const [code, n] of Object.entries(s.refused)) lines.push(`chat_frames_refused_total{code="${code}"} ${n}`);
  metric('chat_slow_consumer_disconnects_total', 'counter', 'Connections closed for passing the backpressure limit.', s.slowConsumerCloses);
  metric('chat_write_buffer_messages', 'gauge', 'Sends accepted and not yet committed.', engine.inflight);
  metric('chat_write_buffer_bytes', 'gauge', 'Bytes of sends accepted and not yet committed (upper bound).', engine.inflightByteCount);
  metric('chat_write_buffer_max_messages', 'gauge', 'Write buffer cap in messages.', cfg.bufferMaxMessages);
  metric('chat_commits_total', 'counter', 'Group commits (transactions) completed.', s.commits);
  metric('chat_committed_messages_total', 'counter', 'Messages written by group commits.', s.committedMessages);
  metric('chat_commit_last_batch', 'gauge', 'Messages in the last group commit.', s.lastBatch);
  metric('chat_commit_last_seconds', 'gauge', 'Duration of the last group commit.', s.lastCommitMs / 1000);
  metric('chat_store_up', 'gauge', '1 while the store accepts commits.', engine.storeOk ? 1 : 0);
  const hist = (name: string, help: string, h: Histogram, scale = 1): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    let cum = 0;
    h.buckets.forEach((b, i) => { cum += h.counts[i]; lines.push(`${name}_bucket{le="${b / scale}"} ${cum}`); });
    cum += h.counts[h.buckets.length];
    lines.push(`${name}_bucket{le="+Inf"} ${cum}`, `${name}_sum ${h.sum / scale}`, `${name}_count ${h.count}`);
  };
  hist('chat_commit_duration_seconds', 'Duration of each group commit.', s.commitMs, 1000);
  hist('chat_commit_batch_messages', 'Messages per group commit.', s.commitBatch);
  hist('chat_accept_to_commit_seconds', 'From accepting a send to its durable commit reaching the front thread.', s.acceptToCommitMs, 1000);
  hist('chat_accept_to_deliver_seconds', 'From accepting a send to publishing it to the room.', s.acceptToDeliverMs, 1000);
  metric('chat_event_loop_lag_seconds', 'gauge', 'Front thread event-loop delay, p99 since start.', s.loop.percentile(99) / 1e9);
  metric('chat_actor_event_loop_lag_seconds', 'gauge', 'Persistence actor event-loop delay, p99 over the last second.', s.actorLagMs / 1000);
  const mem = process.memoryUsage();
  metric('process_resident_memory_bytes', 'gauge', 'Resident set size.', mem.rss);
  return lines.join('\n') + '\n';
}
