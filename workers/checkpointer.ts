// The SQLite checkpointer: a thread with its own connection that copies committed WAL frames into
// the database file every few hundred milliseconds. A PASSIVE checkpoint never blocks the writer
// or the readers, so the persistence actor keeps committing while pages are copied and fsynced;
// run by the actor's own connection after a commit, the same work stalled every commit queued
// behind it (25-250 ms once per WAL fill, more on a busy disk). It writes no rows: the actor is
// still the only writer of data. Started and stopped by SqliteStore (workers/sqlite-store.ts).

import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import type { CheckpointerInit } from './contract.ts';

const init = workerData as CheckpointerInit;
const db = new Database(init.path, { fileMustExist: true });
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // SQLITE_BUSY (another checkpoint is running) or a transient I/O error: the next tick retries,
    // and the actor's connection still checkpoints by itself when its WAL passes 10,000 pages.
  }
}, init.everyMs);
parentPort!.on('message', (m: unknown) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort!.close();
});
