// Entries that come and go once per message through one long-lived table, as the actor's sends in
// flight do: a Map, or workers/persistence/key-table.ts. Run with node --expose-gc --trace-gc-nvp;
// the test (test/key-table.solo.test.ts) reads the scavenges' survived and promoted bytes.
//   node --expose-gc --trace-gc-nvp --import tsx test/support/churn.ts map|table [entries]
import { KeyTable } from '../../workers/persistence/key-table.ts';

const kind = process.argv[2];
const n = Number(process.argv[3] ?? 1_000_000);
if (kind !== 'map' && kind !== 'table') throw new Error('usage: churn.ts map|table [entries]');
const table: { set(k: string, v: object): unknown; delete(k: string): unknown } = kind === 'map' ? new Map<string, object>() : new KeyTable<object>();
const gc = (globalThis as { gc?: () => void }).gc!;
// The table in the old generation, as a long-lived one is after a full collection.
gc();
gc();
const alive: string[] = [];
let sum = 0;
for (let i = 0; i < n; i++) {
  const key = `user-${i % 2000}\u0000c${i}`;
  const entry = { key, text: 'x'.repeat(64) + i, n: i, parts: [i, i + 1, i + 2] };
  table.set(key, entry);
  alive.push(key);
  if (alive.length > 8) table.delete(alive.shift()!);
  sum += entry.n;
}
console.log(`entries ${n} ${sum > 0}`);
