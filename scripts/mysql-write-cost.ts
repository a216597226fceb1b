// Micro-benchmark: what the persistence actor's MySQL/MariaDB writes cost the server per message,
// on the real MysqlStore (its schema and statements): per group commit, one findByCids of the
// batch's cids (all new, as in a run) and one commit, for a `direct`-like load (1,000 new
// two-member rooms, 2,000 senders). Run it on an empty database and on a big one (`--prefill`'s
// data: bench/lib/prefill.ts) to compare what the store's size changes.
//   node --import tsx scripts/mysql-write-cost.ts mysql://root@127.0.0.1:3306/DB [batch=100] [messages=20000]
// Reports, per message, for the lookup and for the commit: InnoDB page visits (buffer pool read
// requests), pages read from disk, handler calls (rows read by key, rows written, rows updated); and
// the server's CPU per message when MARIADB_PID names its process on this box. The counters are
// the server's global ones: run it while nothing else uses that server.
import { readFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { IdGenerator } from '../workers/ids.ts';
import { MysqlStore } from '../workers/stores/mysql/store.ts';
import type { NewMessage } from '../workers/stores/store.ts';

const url = process.argv[2];
if (!url?.startsWith('mysql://')) throw new Error('usage: mysql-write-cost.ts mysql://user@host:port/database [batch=100] [messages=20000]');
const batch = Number(process.argv[3] ?? 100);
const N = Number(process.argv[4] ?? 20_000);
const ROOMS = 1000;
const COUNTERS = ['Innodb_buffer_pool_read_requests', 'Innodb_buffer_pool_reads', 'Handler_read_key', 'Handler_read_next', 'Handler_write', 'Handler_update'];
const pid = process.env.MARIADB_PID;

const store = await MysqlStore.open(url);
const admin = await mysql.createConnection(url);
async function counters(): Promise<number[]> {
  const [rows] = await admin.query<(mysql.RowDataPacket & { Variable_name: string; Value: string })[]>('SHOW GLOBAL STATUS WHERE Variable_name IN (?)', [COUNTERS]);
  const byName = new Map(rows.map((r) => [r.Variable_name, Number(r.Value)]));
  return COUNTERS.map((c) => byName.get(c) ?? NaN);
}
/** The server's CPU time in ms (utime + stime), or NaN without MARIADB_PID. */
function serverCpuMs(): number {
  if (pid === undefined) return NaN;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10; // clock ticks of 10 ms (CLK_TCK 100)
}

const ids = new IdGenerator(0);
const prefix = `wc${Date.now().toString(36)}.`; // new rooms on every run, as a bench step has
for (let r = 0; r < ROOMS; r++) {
  await store.createRoom({ id: `${prefix}${r}`, kind: 'public', name: null, subject: null, epoch: ids.next().id, lastSeq: 0, createdAt: Date.now(), dmKey: null, deleted: false, createdBy: null }, []);
}
const seqs = new Array<number>(ROOMS).fill(0);
const sent = new Array<number>(2 * ROOMS).fill(0);
const text = 'x'.repeat(64);
function make(): NewMessage {
  const sender = Math.floor(Math.random() * 2 * ROOMS);
  const r = sender >> 1;
  const { tsid, id } = ids.next();
  return { tsid, id, room: `${prefix}${r}`, seq: ++seqs[r], type: 'CHAT', fromId: `u${sender}`, fromName: 'nick', text, at: Date.now(), cid: `${sent[sender]++}.${Date.now() * 1000}`, target: null };
}

const lookup = new Array<number>(COUNTERS.length).fill(0);
const commit = new Array<number>(COUNTERS.length).fill(0);
const add = (to: number[], a: number[], b: number[]): void => { for (let i = 0; i < to.length; i++) to[i] += b[i] - a[i]; };
const cpu0 = serverCpuMs();
for (let done = 0; done < N; done += batch) {
  const ms: NewMessage[] = [];
  for (let j = 0; j < batch; j++) ms.push(make());
  const c0 = await counters();
  await store.findByCids(ms.map((m) => [m.fromId, m.cid!]));
  const c1 = await counters();
  const last = new Map<string, number>();
  for (const m of ms) last.set(m.room, m.seq);
  await store.commit(ms, last, []);
  add(lookup, c0, c1);
  add(commit, c1, await counters());
}
const cpu = serverCpuMs() - cpu0;
const per = (v: number[]): Record<string, number> => Object.fromEntries(COUNTERS.map((c, i) => [c, +(v[i] / N).toFixed(2)]));
const database = new URL(url).pathname.slice(1);
const [[size]] = await admin.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM messages');
console.log(JSON.stringify({
  database, messagesInStore: Number(size.n), batch, messages: N,
  lookupPerMsg: per(lookup), commitPerMsg: per(commit),
  // the SHOW GLOBAL STATUS calls between the statements are in it too (the same on every database)
  serverCpuUsPerMsg: Number.isNaN(cpu) ? null : Math.round(cpu * 1000 / N),
}));
await admin.end();
await store.close();
