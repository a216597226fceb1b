// Micro-benchmark: SQLite cost per message of the engine's write path (schema as in
// workers/stores/sqlite/migrations.ts: rowid = tsid, a (room) index, the (sender, cid) unique index), in group
// commits of BATCH messages over 100 rooms and 1,000 senders, with variants. Used for BENCHMARKS.md.
//   taskset -c 0 node --import tsx scripts/sqlite-write-cost.ts <variant> [batch]
// variant: base | nocid (no cid index) | sel (+ the per-message cid SELECT) | lsm (no cid index on messages: pairs
//          kept in memory, written sorted to a `sends` table in chunks, use with nocid) | p1k / p2k (page size)
//          | wr (WITHOUT ROWID clustered on (room, tsid)) | mmap | ck100k (checkpoint every 100,000 pages); combine with '-'

import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
const variant = process.argv[2] ?? 'base'; const batch = +(process.argv[3] ?? 5); const N = 200_000;
const path = `/tmp/sqlite-write-cost-${variant}.db`; for (const s of ['', '-wal', '-shm']) rmSync(path + s, { force: true });
const db = new Database(path);
if (variant.includes('p1k')) db.pragma('page_size = 1024');
if (variant.includes('p2k')) db.pragma('page_size = 2048');
db.pragma('journal_mode = WAL'); db.pragma('synchronous = NORMAL'); db.pragma(`wal_autocheckpoint = ${variant.includes('ck100k') ? 100000 : 10000}`); db.pragma('cache_size = -16384'); if (variant.includes('mmap')) db.pragma('mmap_size = 268435456');
db.exec(`CREATE TABLE rooms (id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
${variant.includes('wr') ? 'CREATE TABLE messages (tsid INTEGER NOT NULL, id TEXT NOT NULL, room TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, from_id TEXT NOT NULL, from_name TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL, cid TEXT, PRIMARY KEY (room, tsid)) WITHOUT ROWID;' : 'CREATE TABLE messages (tsid INTEGER PRIMARY KEY, id TEXT NOT NULL, room TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, from_id TEXT NOT NULL, from_name TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL, cid TEXT); CREATE INDEX messages_room ON messages(room);'}`);
if (!variant.includes('nocid')) db.exec(`CREATE UNIQUE INDEX messages_sender_cid ON messages(from_id, cid) WHERE cid IS NOT NULL;`);
const lsm = variant.includes('lsm');
if (lsm) db.exec(`CREATE TABLE sends (from_id TEXT NOT NULL, cid TEXT NOT NULL, tsid INTEGER NOT NULL, PRIMARY KEY (from_id, cid)) WITHOUT ROWID; CREATE INDEX sends_tsid ON sends(tsid);`);
for (let r = 0; r < 100; r++) db.prepare('INSERT INTO rooms VALUES (?, 0)').run('room-' + r);
const ins = db.prepare('INSERT OR IGNORE INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at, cid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
const sel = lsm ? db.prepare('SELECT m.room, m.seq, m.id, m.at FROM sends s JOIN messages m ON m.tsid = s.tsid WHERE s.from_id = ? AND s.cid = ?')
  : db.prepare('SELECT room, seq, id, at FROM messages WHERE from_id = ? AND cid = ?');
const putSend = lsm ? db.prepare('INSERT OR REPLACE INTO sends (from_id, cid, tsid) VALUES (?, ?, ?)') : null;
// lsm: recent (sender, cid) pairs live in a memory table; every GEN messages it is frozen, sorted,
// and written to \`sends\` in CHUNKS pieces, one piece inside each of the next commits.
const GEN = 50_000; const CHUNKS = 20;
let active = new Map<string, bigint>(); let frozen: [string, string, bigint][] = []; let chunk = 0;
const setSeq = db.prepare('UPDATE rooms SET last_seq = ? WHERE id = ?');
const seqs = new Array(100).fill(0); let tsid = 1n << 40n; const text = 'x'.repeat(64);
const tx = db.transaction((ms: (string | number | bigint)[][]) => { const last = new Map(); for (const m of ms) { ins.run(...m); last.set(m[2], m[3]); } for (const [r, s] of last) setSeq.run(s, r);
  if (lsm && frozen.length > 0) { const per = Math.ceil(frozen.length / CHUNKS); for (const [f, c, t] of frozen.slice(chunk * per, (chunk + 1) * per)) putSend!.run(f, c, t); if (++chunk === CHUNKS) { frozen = []; chunk = 0; } } });
const doSel = variant.includes('sel');
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i += batch) {
  const ms = [];
  for (let j = 0; j < batch; j++) { const r = Math.floor(Math.random() * 100); const u = Math.floor(Math.random() * 1000); tsid += 1000n;
    const cid = `${u}.${Number(tsid)}`; if (doSel && !(lsm && active.has('user-' + u + '\\0' + cid))) sel.get('user-' + u, cid); if (lsm) active.set('user-' + u + '\\0' + cid, tsid);
    ms.push([tsid, 'id' + tsid, 'room-' + r, ++seqs[r], 'CHAT', 'user-' + u, 'nick', text, Date.now(), cid]); }
  tx(ms);
  if (lsm && active.size >= GEN && frozen.length === 0) { frozen = [...active].map(([k, t]) => { const z = k.indexOf('\\0'); return [k.slice(0, z), k.slice(z + 1), t] as [string, string, bigint]; }).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)); active = new Map(); }
}
const us = Number(process.hrtime.bigint() - t0) / 1000 / N;
console.log(variant, 'batch', batch, us.toFixed(1), 'us/msg');
