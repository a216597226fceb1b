// History reads off the hot path. SQLite: a piscina pool of worker threads, each with a read-only
// connection (SQLite reads block, so they never run on the front thread). MySQL: a connection pool
// on the front thread (mysql2 reads are asynchronous I/O; a thread hop would only add latency).

import { Piscina } from 'piscina';
import { workerStart, type CheckpointResult, type CheckpointTask, type GcTask, type ReaderInit, type ReadTask } from '../workers/contract.ts';
import type { ThreadGc } from '../workers/full-gc.ts';
import { MysqlReader } from '../workers/stores/mysql/reader.ts';
import { runRead } from '../workers/readers/read-tasks.ts';
import type { Config } from './config.ts';

export interface ReadPool {
  run(task: ReadTask): Promise<unknown>;
  /** Reads waiting for a reader. */
  readonly queueSize: number;
  /** SQLite: a PASSIVE checkpoint on a reader thread (see workers/readers/reader.ts); null for MySQL. */
  readonly checkpoint: (() => Promise<CheckpointResult>) | null;
  /** Test hook: collect every reader thread's heap in full (nothing to do for MySQL's readers). */
  collect(): Promise<ThreadGc[]>;
  close(): Promise<void>;
}

/** Bounded: a flood of cold history requests queues here, not in memory without limit. */
const MAX_QUEUE = 10_000;

export function openReaders(cfg: Config): ReadPool {
  if (cfg.store.kind === 'mysql') {
    const reader = new MysqlReader(cfg.store.url, Math.max(2, cfg.readers * 2));
    let waiting = 0;
    return {
      run: (task) => {
        if (waiting >= MAX_QUEUE) return Promise.reject(new Error('reader queue is full'));
        waiting++;
        return runRead(reader, task).finally(() => { waiting--; });
      },
      get queueSize() { return waiting; },
      checkpoint: null,
      collect: () => Promise.resolve([]),
      close: () => Promise.resolve(reader.close()),
    };
  }
  const start = workerStart('readers/reader');
  const init: ReaderInit = { __entry: start.entry, path: cfg.store.path };
  const pool = new Piscina({ filename: start.file.href, workerData: init, minThreads: cfg.readers, maxThreads: cfg.readers, maxQueue: MAX_QUEUE });
  return {
    run: (task) => pool.run(task) as Promise<unknown>,
    get queueSize() { return pool.queueSize; },
    checkpoint: () => pool.run({ kind: 'checkpoint' } satisfies CheckpointTask) as Promise<CheckpointResult>,
    collect: () => {
      const arrived = new Int32Array(new SharedArrayBuffer(4));
      const threads = cfg.readers;
      return Promise.all(Array.from({ length: threads }, () => pool.run({ kind: 'gc', arrived, threads } satisfies GcTask) as Promise<ThreadGc>));
    },
    close: () => pool.destroy(),
  };
}
