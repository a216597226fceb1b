// Test hooks only (POST /_test/gc): a full, forced garbage collection of the calling thread's V8
// heap, so a memory reading taken after it in every thread measures what is live, not where the
// collector happened to be. Works without `node --expose-gc`: the flag is set at run time and a
// fresh context exposes `gc`. The second call returns the pages the first one emptied to the
// system (one call frees the objects; V8 keeps the emptied pages until the next collection).

import v8 from 'node:v8';
import vm from 'node:vm';
import { threadId } from 'node:worker_threads';

/** One thread's collection: its V8 heap in use before and after (bytes). */
export interface ThreadGc {
  thread: 'front' | 'actor' | 'reader';
  threadId: number;
  heapUsedBefore: number;
  heapUsedAfter: number;
}

let gc: (() => void) | null = null;

export function fullGc(thread: ThreadGc['thread']): ThreadGc {
  if (gc === null) {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  }
  const heapUsedBefore = v8.getHeapStatistics().used_heap_size;
  gc();
  gc();
  return { thread, threadId, heapUsedBefore, heapUsedAfter: v8.getHeapStatistics().used_heap_size };
}
