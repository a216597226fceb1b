// The long reliability runs that do not fit in CI (see RELIABILITY.md):
//
//   npm run crash -- --cycles 50 --store sqlite                    # kill -9 under load, 50 times
//   npm run crash -- --cycles 50 --store mysql                     # the same on MariaDB/MySQL
//   npm run crash -- --cycles 50 --store cluster                   # 2 nodes on MariaDB + Redis, one killed per cycle
//   node --import tsx scripts/crash-cycles.ts --fuzz 100000        # 100,000 hostile frames + HTTP
//   node --import tsx scripts/crash-cycles.ts --idle 10000         # 10,000 idle connections
//
// Options: --clients 50 --rooms 10 --rate 2000 (sends/s) --kill-after 1500 (acks per cycle before
// the kill) --seed N (the kill delays; printed in the summary, so a run replays) --store
// sqlite|mysql|cluster (mysql: a fresh database next to CHAT_TEST_MYSQL_URL's, dropped at the end;
// cluster: --nodes N (default 2) nodes on such a database and the local Redis under a prefix of
// their own; every room has members on every node; cycle n kills node (n - 1) % N, the others run
// on and their members must catch up with every message the database holds). Prints a JSON summary on stdout; exits 1 when a guarantee is broken.

import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';
import { dropRedisKeys, nodeEnv, redisAvailable, REDIS_URL, uniquePrefix } from '../test/support/cluster.ts';
import { auditBroken, CORE, CrashRun, type CrashOptions, fdCount, fuzzConnection, fuzzHttp, metric, newFuzzStats, rng, rssMb, socketFdCount, type AuditResult } from '../test/reliability-helpers.ts';
import { startEngine, tempDir } from '../test/support/engine.ts';
import { openMany } from '../test/support/raw-ws.ts';
import { until } from '../test/support/wait.ts';
import { freshDatabase } from '../test/mysql-helpers.ts';

const { values: a } = parseArgs({
  options: {
    cycles: { type: 'string', default: '0' },
    clients: { type: 'string', default: '50' },
    rooms: { type: 'string', default: '10' },
    rate: { type: 'string', default: '2000' },
    'kill-after': { type: 'string', default: '1500' },
    fuzz: { type: 'string', default: '0' },
    idle: { type: 'string', default: '0' },
    seed: { type: 'string', default: String(Date.now() % 1e9) },
    store: { type: 'string', default: 'sqlite' },
    nodes: { type: 'string', default: '2' },
  },
});
if (a.store !== 'sqlite' && a.store !== 'mysql' && a.store !== 'cluster') {
  process.stderr.write(`--store must be sqlite, mysql or cluster, not ${a.store}\n`);
  process.exit(2);
}
const num = (k: keyof typeof a): number => Number(a[k]);
const log = (line: string): void => { process.stderr.write(`${new Date().toISOString()} ${line}\n`); };
let failed = false;
const summary: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, seed: num('seed') };

async function crash(cycles: number): Promise<void> {
  const db = a.store === 'sqlite' ? null : await freshDatabase();
  const prefix = uniquePrefix();
  try {
    if (a.store !== 'cluster') return await crashOn(cycles, { env: db ? { CHAT_STORE: db.url } : {} });
    if (!(await redisAvailable())) throw new Error(`--store cluster needs Redis at ${REDIS_URL}`);
    const nodes = num('nodes');
    const conn = await mysql.createConnection({ uri: db!.url });
    try {
      const storedLastSeqs = async (rooms: string[]): Promise<Map<string, number>> => {
        const [rows] = await conn.query('SELECT room, MAX(seq) AS last FROM messages WHERE room IN (?) GROUP BY room', [rooms]);
        return new Map((rows as { room: string; last: number }[]).map((r) => [r.room, Number(r.last)]));
      };
      await crashOn(cycles, { nodes, storedLastSeqs, start: (i) => startEngine(nodeEnv(db!.url, prefix, i + 1, CORE)) });
    } finally {
      await conn.end();
    }
  } finally {
    await db?.drop();
    if (a.store === 'cluster') await dropRedisKeys(prefix);
  }
}

async function crashOn(cycles: number, store: Pick<CrashOptions, 'env' | 'nodes' | 'start' | 'storedLastSeqs'>): Promise<void> {
  const run = new CrashRun(tempDir(), { clients: num('clients'), rooms: num('rooms'), rate: num('rate'), killAfterAcks: num('kill-after'), ...store, log, random: rng(num('seed')) });
  const t0 = Date.now();
  const audits: AuditResult[] = [];
  for (let n = 1; n <= cycles; n++) {
    const audit = await run.cycle(n);
    audits.push(audit);
    if (n > 1) log(`  audit after restart ${n - 1}: acked ${audit.acked}, stored ${audit.stored}, lost ${audit.lost}, duplicates ${audit.duplicates}, gaps ${audit.gaps}, phantom ${audit.phantom}`);
  }
  const { before, after, stopCode } = await run.finish();
  audits.push(before);
  const bad = audits.concat(after).filter(auditBroken);
  summary.crash = {
    store: a.store, ...(a.store === 'cluster' ? { nodes: num('nodes') } : {}), cycles, clients: num('clients'), rooms: num('rooms'), offeredRate: num('rate'), killAfterAcks: num('kill-after'),
    sent: run.sent, retriedAfterRestart: run.retried, kills: run.kills,
    acked: before.acked, stored: before.stored, lost: before.lost, duplicates: before.duplicates, seqGaps: before.gaps,
    receivedNotStored: before.phantom, ackIdMismatch: before.mismatched, streamBreaks: after.streamBreaks,
    ...(a.store === 'cluster' ? { survivorsBehind: after.survivorsBehind } : {}),
    afterRetries: { acked: after.acked, stored: after.stored, lost: after.lost, duplicates: after.duplicates, unacked: run.pending.size },
    messagesReceivedByClients: run.seen.size, errors: Object.fromEntries(run.errors), stopCode,
    problems: [...new Set(bad.flatMap((x) => x.problems))].slice(0, 30),
    seconds: Math.round((Date.now() - t0) / 1000),
  };
  if (bad.length || stopCode !== 0) failed = true;
}

async function fuzz(frames: number): Promise<void> {
  const token = 'reliability-admin-token-0123456789';
  const eng = await startEngine({ ...CORE, CHAT_ADMIN_TOKEN: token });
  const rooms = ['fz-a', 'fz-b', 'fz-c'];
  const stats = newFuzzStats();
  const conns = 5; // 3 JSON, 2 msgpack
  const t0 = Date.now();
  const rss0 = rssMb(eng.proc.pid!);
  await Promise.all(Array.from({ length: conns }, (_, i) =>
    fuzzConnection(eng.url, `fz-${i}`, i >= 3, Math.ceil(frames / conns), num('seed') + i, rooms, stats)));
  const http = await fuzzHttp(eng.port, token, num('seed'), Math.max(500, Math.floor(frames / 20)));
  const alive = eng.proc.exitCode === null;
  summary.fuzz = { ...stats, http, engineAlive: alive, rssStartMb: Math.round(rss0), rssEndMb: Math.round(rssMb(eng.proc.pid!)), seconds: Math.round((Date.now() - t0) / 1000) };
  if (!alive || stats.unanswered > 0 || http.fiveHundreds.length > 0 || http.wellFormedUnanswered.length > 0) failed = true;
  await eng.stop();
}

async function idle(n: number): Promise<void> {
  const eng = await startEngine({ ...CORE, CHAT_IDLE_TIMEOUT: '8' });
  const pid = eng.proc.pid!;
  const base = fdCount(pid);
  const baseSockets = socketFdCount(pid);
  const t0 = Date.now();
  const conns = await openMany(eng.port, n, { query: (i) => `user=idle-${i}`, silent: true });
  const openedMs = Date.now() - t0;
  const peakFd = fdCount(pid);
  const peakConns = await metric(eng.http, 'chat_connections');
  const peakRss = rssMb(pid);
  await until('every idle connection closed by the server', () => (conns.every((c) => c.isClosed) ? true : undefined), 60_000, 200);
  const closedMs = Date.now() - t0;
  const socketsAfter = await until('socket fds back to the baseline', () => { const f = socketFdCount(pid); return f <= baseSockets + 2 ? f : undefined; }, 30_000, 200);
  summary.idle = { connections: n, openedMs, closedByServerAfterMs: closedMs, fdBaseline: base, fdPeak: peakFd, fdAfter: fdCount(pid), socketFdBaseline: baseSockets, socketFdAfter: socketsAfter, peakConnections: peakConns, connectionsAfter: await metric(eng.http, 'chat_connections'), peakRssMb: Math.round(peakRss) };
  await eng.stop();
}

if (num('cycles') > 0) await crash(num('cycles'));
if (num('fuzz') > 0) await fuzz(num('fuzz'));
if (num('idle') > 0) await idle(num('idle'));
if (num('cycles') === 0 && num('fuzz') === 0 && num('idle') === 0) {
  log('nothing to do: give --cycles N, --fuzz N and/or --idle N');
  process.exit(2);
}
process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
if (failed) log('FAILED: a reliability guarantee was broken (see the summary above)');
process.exit(failed ? 1 : 0);
