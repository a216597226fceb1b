// Entries that come and go once per message through one long-lived table: the persistence actor's
// sends in flight (workers/persistence/group-commit.ts, each added when accepted and taken out when
// its commit returns, a few at a time), or the same churn through a bare Map. Run with
// node --expose-gc --trace-gc-nvp; test/key-table.solo.test.ts reads the scavenges' survived and
// promoted bytes.
//   node --expose-gc --trace-gc-nvp --import tsx test/support/churn.ts actor|map [entries]
import { Backoff } from '../../workers/persistence/backoff.ts';
import { GroupCommit } from '../../workers/persistence/group-commit.ts';
import type { Pending } from '../../workers/persistence/pending.ts';
import { cidKey, type NewMessage } from '../../workers/stores/store.ts';

const kind = process.argv[2];
const n = Number(process.argv[3] ?? 1_000_000);
if (kind !== 'actor' && kind !== 'map') throw new Error('usage: churn.ts actor|map [entries]');
const gc = (globalThis as { gc?: () => void }).gc!;
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function pending(i: number): Pending {
  const fromId = `user-${i % 2000}`;
  const cid = `c${i}`;
  const msg: NewMessage = { tsid: BigInt(i), id: String(1e12 + i), room: `room-${i % 1000}`, seq: i, type: 'CHAT', fromId, fromName: fromId, text: 'x'.repeat(64) + i, at: i, cid, target: null };
  return { msg, token: i, key: cidKey(fromId, cid), dups: [] };
}

let committed = 0;
if (kind === 'actor') {
  // The group commit with a store that takes every batch at once, and nobody to tell.
  const commits = new GroupCommit(
    { write: () => Promise.resolve() },
    { findByCids: () => Promise.resolve(new Map()) },
    { committed: () => undefined, delete: () => undefined },
    { push: () => undefined, health: () => undefined, flush: () => undefined },
    new Backoff(),
    { delivery: 'after-commit', testCommitDelayMs: 0, commitPaceMs: 0 },
  );
  gc();
  gc(); // the group commit and its table in the old generation, as after any full collection
  for (let i = 0; i < n; i++) {
    const p = pending(i);
    commits.add(p);
    if (commits.inFlight(p.key!) !== p) throw new Error('not in flight');
    if (i % 8 === 7) {
      commits.schedule();
      await tick();
      await tick();
      if (commits.inFlight(p.key!) !== undefined) throw new Error('still in flight after its commit');
      committed += 8;
    }
  }
} else {
  const table = new Map<string, Pending>();
  let batch: Pending[] = [];
  gc();
  gc();
  for (let i = 0; i < n; i++) {
    const p = pending(i);
    table.set(p.key!, p);
    batch.push(p);
    if (batch.length === 8) {
      for (const q of batch) table.delete(q.key!);
      committed += batch.length;
      batch = [];
    }
  }
}
console.log(`entries ${n} committed ${committed}`);
