// GET /metrics: Prometheus text exposition of the engine's counters. Rendering happens only when
// scraped; the hot path only bumps plain number fields (free when nobody scrapes).

import type { Config } from './config.ts';
import type { Engine } from './engine.ts';

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
  const mem = process.memoryUsage();
  metric('process_resident_memory_bytes', 'gauge', 'Resident set size.', mem.rss);
  return lines.join('\n') + '\n';
}
