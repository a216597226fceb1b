// Beside a bench run, once a second: the disk's writes (vda), InnoDB's dirty pages, pages written
// and checkpoint age, mariadbd's CPU (MARIADB_PID), the latency of a tiny InnoDB commit made every
// 100 ms (database maria_wt_probe, created if missing), and, when an engine started from this
// checkout (src/cli.ts) is listening, its commits' p50/p99 and batch over the last second and its
// threads' event-loop lag (GET /api/stats).
//   MARIADB_PID=$(pgrep -x mariadbd) node --import tsx bench/results/2026-12-05/maria-deep/monitor.mts [seconds=600]
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import mysql from 'mysql2/promise';

const dur = Number(process.argv[2] ?? 600) * 1000;
const MPID = process.env.MARIADB_PID;
const ticks = (): number => {
  if (!MPID) return NaN;
  const f = readFileSync(`/proc/${MPID}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
};
const disk = (): { ops: number; sectors: number } => {
  const f = readFileSync('/sys/block/vda/stat', 'utf8').trim().split(/\s+/).map(Number);
  return { ops: f[4], sectors: f[6] };
};
const admin = await mysql.createConnection('mysql://root@127.0.0.1:3306/');
await admin.query('CREATE DATABASE IF NOT EXISTS maria_wt_probe');
const probe = await mysql.createConnection({ uri: 'mysql://root@127.0.0.1:3306/maria_wt_probe', multipleStatements: true });
await probe.query('CREATE TABLE IF NOT EXISTS t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB');
const innodb = async (): Promise<Record<string, number>> => {
  const [r] = await admin.query<mysql.RowDataPacket[]>("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_buffer_pool_pages_dirty', 'Innodb_checkpoint_age', 'Innodb_pages_written')");
  return Object.fromEntries(r.map((x) => [x.Variable_name as string, Number(x.Value)]));
};

/** The port of an engine started from this checkout, if one is listening. */
function enginePort(): number | null {
  const here = process.cwd();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('src/cli.ts') || readlinkSync(`/proc/${d}/cwd`) !== here) continue;
      const line = execFileSync('ss', ['-Htlnp'], { encoding: 'utf8' }).split('\n').find((l) => l.includes(`pid=${d},`));
      const port = line?.match(/127\.0\.0\.1:(\d+)/)?.[1];
      if (port) return Number(port);
    } catch { /* the process is gone */ }
  }
  return null;
}
type Window = { p50: number | null; p99: number | null; n: number };
let port: number | null = null;
async function engine(): Promise<string> {
  port ??= enginePort();
  if (port === null) return '';
  try {
    const j = await (await fetch(`http://127.0.0.1:${port}/api/stats`, { signal: AbortSignal.timeout(500) })).json() as
      { loopLagMs: number; actorLagMs: number; rssBytes: number; latency: { commitMs: { lastSecond: Window }; commitBatch: { lastSecond: Window } } };
    const c = j.latency.commitMs.lastSecond, b = j.latency.commitBatch.lastSecond;
    return ` | engine commits ${c.n} p50 ${c.p50?.toFixed(1) ?? '-'} p99 ${c.p99?.toFixed(1) ?? '-'} ms batch p50 ${b.p50?.toFixed(0) ?? '-'} | lag front ${j.loopLagMs.toFixed(0)} actor ${j.actorLagMs.toFixed(0)} ms | rss ${(j.rssBytes / 1048576).toFixed(0)} MB`;
  } catch {
    port = null;
    return ' | engine ?';
  }
}

const t0 = Date.now();
let lat: number[] = [];
let probing = true;
const probeLoop = (async () => {
  while (probing) {
    const a = performance.now();
    await probe.query("START TRANSACTION; INSERT INTO t (v) VALUES ('x'); COMMIT");
    lat.push(performance.now() - a);
    await new Promise((r) => setTimeout(r, 100));
  }
})();
let prev = { d: disk(), k: ticks(), st: await innodb(), at: Date.now() };
while (Date.now() - t0 < dur) {
  await new Promise((r) => setTimeout(r, 1000));
  const now = { d: disk(), k: ticks(), st: await innodb(), at: Date.now() };
  const sec = (now.at - prev.at) / 1000;
  lat.sort((x, y) => x - y);
  const mb = ((now.d.sectors - prev.d.sectors) * 512 / 1048576 / sec).toFixed(1);
  const written = ((now.st.Innodb_pages_written - prev.st.Innodb_pages_written) / sec).toFixed(0);
  console.log(`${new Date().toISOString().slice(11, 19)} disk ${mb} MB/s ${((now.d.ops - prev.d.ops) / sec).toFixed(0)} w/s | dirty ${now.st.Innodb_buffer_pool_pages_dirty} written ${written}/s ckpt ${(now.st.Innodb_checkpoint_age / 1048576).toFixed(1)} MB | mariadbd ${((now.k - prev.k) / sec).toFixed(0)}% | probe commit p50 ${(lat[lat.length >> 1] ?? NaN).toFixed(1)} max ${(lat.at(-1) ?? NaN).toFixed(1)} ms${await engine()}`);
  lat = [];
  prev = now;
}
probing = false;
await probeLoop;
await probe.end();
await admin.end();
