// A piscina worker: history pages and directory lookups that must touch the disk, on a read-only
// SQLite connection, so the front thread never blocks on I/O. WAL lets it read while the actor
// commits.

import { workerData } from 'node:worker_threads';
import type { MyRoomsResult, PageResult, ReaderInit, ReadTask, RoomsResult, SeqResult, SinceResult } from './contract.ts';
import { tsidToBigInt } from './ids.ts';
import { SqliteReader } from './sqlite-store.ts';

const reader = new SqliteReader((workerData as ReaderInit).path);

export default function read(task: ReadTask): PageResult | SinceResult | SeqResult | RoomsResult | MyRoomsResult {
  switch (task.kind) {
    case 'page':
      return {
        messages: reader.page({
          room: task.room,
          before: task.before === undefined ? undefined : tsidToBigInt(task.before),
          after: task.after === undefined ? undefined : tsidToBigInt(task.after),
          limit: task.limit,
          notBefore: task.notBefore,
        }),
      };
    case 'since': {
      const since = tsidToBigInt(task.since);
      const sinceSeq = reader.seqOf(task.room, since);
      if (sinceSeq === null) return { sinceSeq, messages: [] };
      return { sinceSeq, messages: reader.page({ room: task.room, after: since, limit: task.max, notBefore: task.notBefore }) };
    }
    case 'seqAt':
      return { seq: reader.seqAt(task.room, tsidToBigInt(task.id)) };
    case 'subject':
      return { rooms: reader.roomsBySubject(task.subject) };
    case 'myRooms':
      return { rooms: reader.myRooms(task.user, task.notBefore) };
  }
}
