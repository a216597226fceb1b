// Micro-benchmark of SQLite's dedupe window (workers/stores/sqlite/dedupe-window.ts) as the actor
// uses it per message: a lookup of the (sender, cid) pair before the commit, an add after it, and
// the expiry sweep. 2,000 senders, cids as the client library makes them, 12,000 messages per
// simulated second, a 5-minute window; every pair's strings are fresh (as decoded from a batch).
// Prints nanoseconds per message (median of 5 rounds of 1 million) and, after a full collection,
// heap and RSS bytes per remembered pair with the window holding 3.6 million pairs.
//   taskset -c 1 node --expose-gc --import tsx scripts/dedupe-cost.ts [path/to/dedupe-window.ts]
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { nsPerOpRounds } from './rounds.ts';

const file = path.resolve(process.argv[2] ?? 'workers/stores/sqlite/dedupe-window.ts');
const { DedupeWindow } = (await import(pathToFileURL(file).href)) as typeof import('../workers/stores/sqlite/dedupe-window.ts');
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

const SENDERS = 2000;
const RATE = 12_000; // messages per simulated second
const WINDOW_MS = 5 * 60_000;
const senders = Array.from({ length: SENDERS }, (_, i) => `user-${i}`);
let clock = 0;
let tsid = 1n;
let seq = 0;
/** One message: its sender and cid strings made afresh, looked up, stored, the window swept. */
function message(w: InstanceType<typeof DedupeWindow>): number {
  const n = seq++;
  const from = senders[n % SENDERS].slice(0); // a fresh string, as decoded
  const cid = `c${(n / SENDERS) | 0}-${(n * 7919) % 100000}.${n % 977}`;
  const hit = w.get(from, cid) === undefined ? 0 : 1;
  w.add(from, cid, tsid++, clock);
  if (n % 100 === 99) {
    clock += (100 * 1000) / RATE; // time passes per commit of 100
    w.expire();
  }
  return hit;
}

const w = new DedupeWindow(WINDOW_MS, () => clock);
const fill = (RATE * WINDOW_MS) / 1000;
gc();
const heap0 = process.memoryUsage().heapUsed;
const rss0 = process.memoryUsage().rss;
for (let i = 0; i < fill; i++) message(w);
gc();
const heap1 = process.memoryUsage().heapUsed;
const rss1 = process.memoryUsage().rss;
const size = w.size;

const N = 1_000_000;
let hits = 0;
const r = nsPerOpRounds(5, N, () => {
  for (let i = 0; i < N; i++) hits += message(w);
});
if (hits !== 0) throw new Error(`${hits} fresh pairs were found in the window`);
console.log(`${file}:`);
console.log(`  ${r.median.toFixed(0)} ns per message: get + add + sweep (median of 5 x ${N}; rounds ${r.rounds}), ${w.size} pairs held`);
console.log(`  ${size} pairs: heap ${((heap1 - heap0) / size).toFixed(1)} B, RSS ${((rss1 - rss0) / size).toFixed(1)} B per pair`);
