// Micro-benchmark: the persistence actor's store work per message, on the real SqliteStore (its
// schema, statements and pragmas): per group commit, one findByCids of the batch's cids (all new,
// as in a run) and one commit, for a `direct`-like load (ROOMS two-member rooms, 2 x ROOMS senders,
// a message to a random room). Reports CPU us per message for each part and the WAL bytes and pages
// the commits wrote per message (autocheckpoint off while measuring).
//   taskset -c 0 node --import tsx scripts/actor-write-cost.ts [batch=100] [messages=200000] [rooms=1000] [prefill=0]
// A bound, not an option (it loses something the engine needs): VARIANT=nocid, no cid lookup in
// the dedupe window. CACHE_SIZE=-4096: the store's connection with another page cache (a
// cache_size pragma: negative in KiB) instead of the engine's.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { IdGenerator } from '../workers/ids.ts';
import { SqliteStore } from '../workers/stores/sqlite/store.ts';
import type { NewMessage } from '../workers/stores/store.ts';

const batch = Number(process.argv[2] ?? 100);
const N = Number(process.argv[3] ?? 200_000);
const ROOMS = Number(process.argv[4] ?? 1000);
const PREFILL = Number(process.argv[5] ?? 0);
const VARIANT = process.env.VARIANT ?? '';
const dir = mkdtempSync(path.join(tmpdir(), 'actor-write-cost-'));
const file = path.join(dir, 'w.db');
const store = new SqliteStore(file, 'normal');
const db = (store as unknown as { db: import('better-sqlite3').Database }).db;
if (process.env.CACHE_SIZE) db.pragma(`cache_size = ${Number(process.env.CACHE_SIZE)}`);
const ids = new IdGenerator(0);
for (let r = 0; r < ROOMS; r++) {
  store.createRoom({ id: `r${r}`, kind: 'direct', name: null, subject: null, epoch: 'e', lastSeq: 0, createdAt: Date.now(), dmKey: `u${2 * r}|u${2 * r + 1}`, deleted: false, createdBy: null }, [`u${2 * r}`, `u${2 * r + 1}`]);
}
const seqs = new Array<number>(ROOMS).fill(0);
const text = 'x'.repeat(64);
let k = 0;
function make(): NewMessage {
  const r = Math.floor(Math.random() * ROOMS);
  const from = `u${2 * r + (k & 1)}`;
  const { tsid, id } = ids.next();
  k++;
  return { tsid, id, room: `r${r}`, seq: ++seqs[r], type: 'CHAT', fromId: from, fromName: 'nick', text, at: Date.now(), cid: `${k}.${Date.now() * 1000 + k}`, target: null };
}
// CPU time (user + system), not wall time: on a shared box a preempted thread's wait is not its cost
const cpuUs = (): number => { const u = process.cpuUsage(); return u.user + u.system; };
function run(n: number): { lookupUs: number; commitUs: number } {
  let lookup = 0, commit = 0;
  for (let i = 0; i < n; i += batch) {
    const ms: NewMessage[] = [];
    for (let j = 0; j < batch; j++) ms.push(make());
    const t0 = cpuUs();
    if (!VARIANT.includes('nocid')) store.findByCids(ms.map((m) => [m.fromId, m.cid!]));
    const t1 = cpuUs();
    const last = new Map<string, number>();
    for (const m of ms) last.set(m.room, m.seq);
    store.commit(ms, last, []);
    commit += cpuUs() - t1;
    lookup += t1 - t0;
  }
  return { lookupUs: lookup / n, commitUs: commit / n };
}
if (PREFILL > 0) {
  const t = Date.now();
  run(PREFILL);
  process.stderr.write(`prefilled ${PREFILL} messages in ${((Date.now() - t) / 1000).toFixed(0)} s\n`);
}
run(Math.min(N, 20_000)); // warm the cache and the JIT
db.pragma('wal_checkpoint(TRUNCATE)');
db.pragma('wal_autocheckpoint = 0');
const pageSize = db.pragma('page_size', { simple: true }) as number;
const r = run(N);
const walBytes = statSync(file + '-wal').size;
console.log(JSON.stringify({
  variant: VARIANT || 'base', batch, messages: N, rooms: ROOMS, prefill: PREFILL,
  lookupUsPerMsg: +r.lookupUs.toFixed(2), commitUsPerMsg: +r.commitUs.toFixed(2), totalUsPerMsg: +(r.lookupUs + r.commitUs).toFixed(2),
  walBytesPerMsg: Math.round(walBytes / N), walPagesPerMsg: +(walBytes / (pageSize + 24) / N).toFixed(2), pageSize,
}));
store.close();
rmSync(dir, { recursive: true, force: true });
