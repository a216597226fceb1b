// --prefill N: the run starts on a store that already holds N messages (SQLite), so a run on a big
// store can be compared with one on an empty store. The messages are written once into a template
// file by SQLite itself (a recursive CTE, no per-row JavaScript) and copied into each step's fresh
// store. They sit in 1,000 rooms of their own (`pf0`..`pf999`, 2,000 senders, each message with a
// cid, one day old), so the run's rooms are new but every index it writes is N rows deep.
import Database from 'better-sqlite3';
import { copyFileSync, existsSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { migrate, SCHEMA_VERSION } from '../../workers/stores/sqlite/migrations.ts';

const ROOMS = 1000;
const TSID_EPOCH_MS = Date.UTC(2020, 0, 1);
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** The canonical 13-character TSID of integer expression `t`, in SQL (workers/ids.ts tsidToString), as the pieces to concatenate. */
function tsidChars(t: string): string[] {
  const parts = [`substr('${ALPHABET}', ((${t}) >> 60) + 1, 1)`];
  for (let shift = 55; shift >= 0; shift -= 5) parts.push(`substr('${ALPHABET}', (((${t}) >> ${shift}) & 31) + 1, 1)`);
  return parts;
}

/**
 * The SELECT list of prefilled message x (an integer column): 1,000 per ms from baseMs, room
 * x % 1000 (seq x / 1000 + 1), sender x % 2000, cid pf.x. `concat` joins strings in the dialect
 * (SQLite's || binds tighter than %: every arithmetic part is parenthesised).
 */
function messageSelect(x: string, baseMs: number, div: string, concat: (parts: string[]) => string): string {
  const tsid = `((${baseMs - TSID_EPOCH_MS} + ${x} ${div} 1000) << 22) + (${x} % 1000)`;
  return `${tsid}, ${concat(tsidChars(tsid))}, ${concat([`'pf'`, `(${x} % ${ROOMS})`])}, ${x} ${div} ${ROOMS} + 1, 'CHAT', ${concat([`'pfu'`, `(${x} % 2000)`])}, 'prefill',
    'The quick brown fox jumps over the lazy dog; pack my box: 0123456', ${baseMs} + ${x} ${div} 1000, ${concat([`'pf.'`, x])}`;
}

const COLUMNS = 'tsid, id, room, seq, type, from_id, from_name, text, at, cid';
/** Messages per prefilled room (the rooms' last_seq). */
const lastSeq = (n: number, r: number): number => Math.floor(n / ROOMS) + (r < n % ROOMS ? 1 : 0);

/** Path of the template store holding n messages, built on first use (minutes for 10 million). */
export function prefillTemplate(n: number, log: (s: string) => void): string {
  const file = path.join(tmpdir(), `uchat-prefill-s${SCHEMA_VERSION}-${n}.db`);
  if (existsSync(file)) return file;
  const t0 = Date.now();
  log(`[prefill] writing ${n.toLocaleString('en-US')} messages into ${file} (once; later runs reuse it)`);
  const tmp = file + '.part';
  rmSync(tmp, { force: true });
  const db = new Database(tmp);
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -1048576'); // 1 GB: the random index inserts stay in memory
  migrate(db);
  const dayAgo = Date.now() - 86_400_000;
  const baseMs = dayAgo - 60 * 60_000; // the oldest message an hour before that
  db.transaction(() => {
    const rooms = db.prepare("INSERT INTO rooms (id, kind, name, subject, epoch, last_seq, created_at) VALUES (?, 'public', NULL, NULL, 'prefill', ?, ?)");
    for (let r = 0; r < ROOMS; r++) rooms.run(`pf${r}`, lastSeq(n, r), baseMs);
    db.prepare(`WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x + 1 < ?)
      INSERT INTO messages (${COLUMNS}) SELECT ${messageSelect('x', baseMs, '/', (p) => p.join(' || '))} FROM c`).run(n);
  })();
  db.close();
  renameSync(tmp, file);
  log(`[prefill] ${n.toLocaleString('en-US')} messages written in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return file;
}

/** Put a copy of the template into a fresh server's data directory as its store. */
export function prefillInto(template: string, dbFile: string): void {
  copyFileSync(template, dbFile);
}

/**
 * --nodes: the same N messages written into a fresh MariaDB database by the server itself
 * (INSERT ... SELECT over the Sequence engine's seq_0_to_<N-1>), after creating the engine's schema.
 */
export async function prefillMysql(storeUrl: string, n: number, log: (s: string) => void): Promise<void> {
  const mysql = (await import('mysql2/promise')).default;
  const { migrateMysql } = await import('../../workers/stores/mysql/migrations.ts');
  const t0 = Date.now();
  log(`[prefill] writing ${n.toLocaleString('en-US')} messages into ${new URL(storeUrl).pathname.slice(1)}`);
  const c = await mysql.createConnection(storeUrl);
  try {
    await migrateMysql(c);
    const baseMs = Date.now() - 86_400_000 - 60 * 60_000;
    const rows = Array.from({ length: ROOMS }, (_, r) => [`pf${r}`, 'public', null, null, 'prefill', lastSeq(n, r), baseMs]);
    await c.query('INSERT INTO rooms (id, kind, name, subject, epoch, last_seq, created_at) VALUES ?', [rows]);
    // in chunks of a million: one huge transaction would hold the undo log of all of it
    for (let from = 0; from < n; from += 1_000_000) {
      const to = Math.min(n, from + 1_000_000) - 1;
      await c.query(`INSERT INTO messages (${COLUMNS}) SELECT ${messageSelect('seq', baseMs, 'DIV', (p) => `CONCAT(${p.join(', ')})`)} FROM seq_${from}_to_${to}`);
    }
  } finally {
    await c.end();
  }
  log(`[prefill] ${n.toLocaleString('en-US')} messages written in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
