// A piscina worker: history pages and directory lookups that must touch the disk, on a read-only
// SQLite connection, so the front thread never blocks on I/O. WAL lets it read while the actor
// commits.

import { workerData } from 'node:worker_threads';
import type { ReaderInit, ReadTask } from './contract.ts';
import { runRead, type ReadResult } from './read-tasks.ts';
import { SqliteReader } from './sqlite-store.ts';

const reader = new SqliteReader((workerData as ReaderInit).path);

export default function read(task: ReadTask): Promise<ReadResult> {
  return runRead(reader, task);
}
