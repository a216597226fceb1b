// A piscina worker: history pages and directory lookups that must touch the disk, on a read-only
// SQLite connection, so the front thread never blocks on I/O. WAL lets it read while the actor
// commits.
//
// It also runs the engine's checkpoints (CHAT_SQLITE_CHECKPOINT): a PASSIVE checkpoint copies
// committed WAL frames into the database file and fsyncs it without blocking the writer, so the
// persistence actor keeps committing while that I/O happens here. It needs a connection that may
// write the file (a checkpoint writes no rows: the actor stays the only writer of data), opened on
// the first checkpoint. Running it on a reader, rather than on a thread of its own, costs no extra
// V8 isolate (~20-30 MB of RSS each).

import Database from 'better-sqlite3';
import { workerData } from 'node:worker_threads';
import type { CheckpointResult, CheckpointTask, GcTask, ReaderInit, ReadTask } from '../contract.ts';
import { fullGc, type ThreadGc } from '../full-gc.ts';
import { runRead, type ReadResult } from './read-tasks.ts';
import { SqliteReader } from '../stores/sqlite/reader.ts';

const path = (workerData as ReaderInit).path;
const reader = new SqliteReader(path);
let checkpointer: Database.Database | null = null;

export default function read(task: ReadTask | CheckpointTask | GcTask): Promise<ReadResult | CheckpointResult | ThreadGc> {
  if (task.kind === 'checkpoint') return Promise.resolve(checkpoint());
  if (task.kind === 'gc') return Promise.resolve(collect(task));
  return runRead(reader, task);
}

/** Wait (at most 5 s: a reader busy with a long read) for every reader to hold one gc task, then collect. */
function collect(task: GcTask): ThreadGc {
  Atomics.add(task.arrived, 0, 1);
  Atomics.notify(task.arrived, 0);
  const until = Date.now() + 5000;
  for (let n = Atomics.load(task.arrived, 0); n < task.threads && Date.now() < until; n = Atomics.load(task.arrived, 0)) {
    Atomics.wait(task.arrived, 0, n, until - Date.now());
  }
  return fullGc('reader');
}

function checkpoint(): CheckpointResult {
  checkpointer ??= new Database(path, { fileMustExist: true });
  // PASSIVE never waits: if another checkpoint holds the lock it reports busy (the next one retries).
  const [r] = checkpointer.pragma('wal_checkpoint(PASSIVE)') as { log: number }[];
  return { log: r.log };
}
