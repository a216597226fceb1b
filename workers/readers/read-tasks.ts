// The read tasks, for any MessageReader: run in the piscina workers for SQLite, and on the front
// thread against a connection pool for MySQL (whose reads do not block the event loop).

import type { DirChangesResult, LastSeqsResult, MyRoomsResult, PageResult, RangeResult, ReadTask, RoomsResult, SeqResult, SinceResult, UnreadResult } from '../contract.ts';
import { tsidToBigInt } from '../ids.ts';
import type { MessageReader } from '../stores/store.ts';

export type ReadResult = PageResult | SinceResult | SeqResult | RoomsResult | MyRoomsResult | UnreadResult | RangeResult | LastSeqsResult | DirChangesResult;

export async function runRead(reader: MessageReader, task: ReadTask): Promise<ReadResult> {
  switch (task.kind) {
    case 'page':
      return {
        messages: await reader.page({
          room: task.room,
          before: task.before === undefined ? undefined : tsidToBigInt(task.before),
          after: task.after === undefined ? undefined : tsidToBigInt(task.after),
          limit: task.limit,
          notBefore: task.notBefore,
        }),
      };
    case 'since': {
      const since = tsidToBigInt(task.since);
      const sinceSeq = await reader.seqOf(task.room, since);
      if (sinceSeq === null) return { sinceSeq, messages: [] };
      // Too far behind to recover (the front thread answers recovered:false): read no rows.
      if (task.lastSeq - sinceSeq > task.max) return { sinceSeq, messages: [] };
      return { sinceSeq, messages: await reader.page({ room: task.room, after: since, limit: task.max, notBefore: task.notBefore }) };
    }
    case 'seqAt':
      return { seq: await reader.seqAt(task.room, tsidToBigInt(task.id)) };
    case 'subject':
      return { rooms: await reader.roomsBySubject(task.subject) };
    case 'myRooms':
      return { rooms: await reader.myRooms(task.user, task.notBefore, task.blocked) };
    case 'unread':
      return { unread: await reader.unread(task.room, task.after, task.upTo, task.notBefore, task.blocked) };
    case 'range':
      return { messages: await reader.range(task.room, task.from, task.to) };
    case 'lastSeqs':
      return { seqs: [...(await reader.lastSeqs(task.rooms))] };
    case 'dirChanges':
      return reader.dirChanges(task.since, task.limit);
  }
}
