// --nodes N: engine nodes on a fresh MariaDB database (created before, dropped after), and with
// N >= 2 in cluster mode over Redis (a unique key prefix, its keys deleted after). N = 1 is the
// single-node baseline on the same store, without Redis. Every node is pinned like the single engine.
// The tests' clusters (test/support/cluster.ts) use the same node settings and Redis clean-up.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { startServer, pidsNamed, ServerStartError, type RunningServer } from './proc.ts';
import { prefillMysql } from './prefill.ts';
import type { Teardown } from './teardown.ts';

export interface NodesOptions {
  nodes: number;
  pin: boolean;
  /** Pinned nodes keep V8's GC helper threads (see ServerOptions.parallelGc). */
  parallelGc?: boolean;
  /** The env every node gets on top of the single engine's (e.g. CHAT_ENTER_QUIT=off for STOMP). */
  env?: Record<string, string | undefined>;
  /** Each node profiles into <profileDir>/node-<i>. */
  profileDir?: string;
  /** --prefill: messages written into the fresh database before the nodes start. */
  prefill?: number;
  /** Server URL without a database: mysql://user[:pass]@host:port. */
  mysqlUrl: string;
  redisUrl: string;
  teardown: Teardown;
}

export interface RunningNodes {
  /** e.g. engine/mysql/1-node, engine/mysql+redis/2-nodes */
  label: string;
  urls: string[];
  pids: number[];
  /** The database (and Redis) server processes, when they run on this box: sampled apart from "other load". */
  backendPids: number[];
  database: string;
  redisPrefix?: string;
  /** Each node's cluster counters from /metrics (chat_bus_*_total, commits): read before and after a run, the difference says how messages crossed. */
  counters(): Promise<NodeCounters>;
  stop(): Promise<void>;
}

/** Per node (1-based), counter name without the chat_ prefix and _total suffix -> value. */
export type NodeCounters = Record<string, Record<string, number>>;

const COUNTER = /^chat_(bus_\w+|commits|committed_messages)_total (\d+(?:\.\d+)?(?:e\+?\d+)?)$/gm;

/** Per node, b - a (a run's share of the nodes' counters). */
export function counterDelta(a: NodeCounters, b: NodeCounters): NodeCounters {
  const out: NodeCounters = {};
  for (const [node, xs] of Object.entries(b)) {
    out[node] = {};
    for (const [k, v] of Object.entries(xs)) out[node][k] = v - (a[node]?.[k] ?? 0);
  }
  return out;
}

const isLoopback = (host: string): boolean => host === 'localhost' || host.startsWith('127.') || host === '::1' || host === '[::1]';

/** Runs one statement with the mysql (or mariadb) command-line client; throws with its stderr. */
function mysqlExec(serverUrl: string, sql: string): void {
  const u = new URL(serverUrl);
  const args = ['-u', decodeURIComponent(u.username || 'root'), '-h', u.hostname.replace(/^\[|\]$/g, ''), '-P', u.port || '3306', '--batch', '-e', sql];
  const env = { ...process.env, MYSQL_PWD: decodeURIComponent(u.password) }; // not on the command line
  let r = spawnSync('mysql', args, { env, encoding: 'utf8', timeout: 30_000 });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') r = spawnSync('mariadb', args, { env, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`mysql client: ${r.error.message} (it runs \`mysql -e "${sql}"\`; install the MariaDB client)`);
  if (r.status !== 0) throw new Error(`mysql -h ${u.hostname} -P ${u.port || 3306} -e "${sql}" failed (${r.status}): ${(r.stderr || r.stdout).trim()}`);
}

/** The settings that make an engine a node of a cluster; without Redis, a single node (and no cluster setting of the caller's shell). */
export function nodeEnv(store: string, cluster: { redisUrl: string; prefix: string; id: number } | null): Record<string, string | undefined> {
  return {
    CHAT_STORE: store,
    CHAT_REDIS_URL: cluster?.redisUrl, CHAT_REDIS_PREFIX: cluster?.prefix, CHAT_NODE_ID: cluster ? String(cluster.id) : undefined,
  };
}

/** One Redis command over RESP (single-line replies only: +OK, :n, -ERR); AUTH/SELECT from the URL first. */
export async function redisCommand(url: string, cmd: string[], timeoutMs = 5000): Promise<string> {
  const u = new URL(url);
  const resp = (a: string[]): string => `*${a.length}\r\n` + a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('');
  const pre: string[][] = [];
  if (u.password) pre.push(u.username ? ['AUTH', decodeURIComponent(u.username), decodeURIComponent(u.password)] : ['AUTH', decodeURIComponent(u.password)]);
  const db = u.pathname.replace(/^\//, '');
  if (db) pre.push(['SELECT', db]);
  const sock = net.connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 6379) });
  sock.setTimeout(timeoutMs);
  try {
    const replies = await new Promise<string[]>((resolve, reject) => {
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        const lines = buf.split('\r\n');
        if (lines.length > pre.length + 1) resolve(lines.slice(0, pre.length + 1));
      });
      sock.on('error', reject);
      sock.on('timeout', () => reject(new Error(`no reply within ${timeoutMs} ms`)));
      sock.on('close', () => reject(new Error('connection closed')));
      sock.write([...pre, cmd].map(resp).join(''));
    });
    const bad = replies.find((r) => r.startsWith('-'));
    if (bad) throw new Error(bad.slice(1));
    return replies[replies.length - 1];
  } finally { sock.destroy(); }
}

/** Deletes every key under prefix (KEYS in a script: fine at teardown on a test Redis). */
const DEL_PREFIX = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) n = n + 1 end return n";

/** Deletes every key of a cluster (its CHAT_REDIS_PREFIX). */
export async function dropRedisPrefix(url: string, prefix: string): Promise<void> {
  await redisCommand(url, ['EVAL', DEL_PREFIX, '0', `${prefix}*`]);
}

/** Why a node did not start, in words a person can act on. */
function startFailure(e: unknown, i: number, o: NodesOptions): Error {
  const m = (e as Error).message;
  const head = `engine node ${i} of ${o.nodes} (CHAT_NODE_ID=${i}${o.nodes > 1 ? ', CHAT_REDIS_URL=' + o.redisUrl : ''})`;
  if (e instanceof ServerStartError && e.exitCode === 2 && o.nodes > 1 && /CHAT_REDIS_URL|redis/i.test(e.output)) {
    return new Error(`${head} refused its configuration (exit code 2): its message is below.\n${m}`);
  }
  if (e instanceof ServerStartError && e.exitCode === 2) return new Error(`${head} refused its configuration (exit code 2).\n${m}`);
  return new Error(`${head} failed to start: ${m}`);
}

export async function startNodes(o: NodesOptions): Promise<RunningNodes> {
  const id = randomBytes(5).toString('hex'); // fixed length: no prefix is a prefix of another run's
  const database = `chat_bench_${id}`;
  const cluster = o.nodes > 1;
  const redisPrefix = cluster ? `bench-${id}` : undefined;
  const base = new URL(o.mysqlUrl);
  base.pathname = '';
  const storeUrl = `${base.toString().replace(/\/$/, '')}/${database}`;

  if (cluster) {
    try { await redisCommand(o.redisUrl, ['PING']); }
    catch (e) { throw new Error(`--nodes ${o.nodes}: Redis at ${o.redisUrl} does not answer (${(e as Error).message}); start it (redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no) or pass --redis-url`); }
  }
  try { mysqlExec(o.mysqlUrl, `CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`); }
  catch (e) { throw new Error(`--nodes ${o.nodes}: cannot create the scratch database: ${(e as Error).message}`); }
  const dropStore = o.teardown.add(`drop database ${database}${cluster ? ` and Redis keys ${redisPrefix}*` : ''}`, async () => {
    mysqlExec(o.mysqlUrl, `DROP DATABASE IF EXISTS \`${database}\``);
    if (cluster) await dropRedisPrefix(o.redisUrl, redisPrefix!);
  });
  if (o.prefill) await prefillMysql(storeUrl, o.prefill, (m) => process.stderr.write(m + '\n'));

  const servers: RunningServer[] = [];
  try {
    // one after another: the first creates the schema, the next ones find it
    for (let i = 1; i <= o.nodes; i++) {
      const env = { ...o.env, ...nodeEnv(storeUrl, cluster ? { redisUrl: o.redisUrl, prefix: redisPrefix!, id: i } : null) };
      try {
        servers.push(await startServer({ kind: 'engine', pin: o.pin, parallelGc: o.parallelGc, env, teardown: o.teardown, label: `engine node ${i}`, profileDir: o.profileDir ? `${o.profileDir}/node-${i}` : undefined }));
      } catch (e) { throw startFailure(e, i, o); }
    }
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop()));
    await dropStore();
    throw e;
  }
  const backendNames = [...(isLoopback(base.hostname) ? ['mariadbd', 'mysqld'] : []), ...(cluster && isLoopback(new URL(o.redisUrl).hostname) ? ['redis-server'] : [])];
  return {
    label: cluster ? `engine/mysql+redis/${o.nodes}-nodes` : 'engine/mysql/1-node',
    urls: servers.map((s) => s.url), pids: servers.map((s) => s.pid), backendPids: pidsNamed(backendNames),
    database, redisPrefix,
    async counters() {
      const per = await Promise.all(servers.map(async (s) => {
        try {
          const text = await (await fetch(`http://${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
          const xs: Record<string, number> = {};
          for (const m of text.matchAll(COUNTER)) xs[m[1]] = Number(m[2]);
          return xs;
        } catch { return undefined; } // a node that does not answer: no counters
      }));
      const out: NodeCounters = {};
      per.forEach((xs, i) => { if (xs) out[`node ${i + 1}`] = xs; });
      return out;
    },
    async stop() {
      await Promise.all(servers.map((s) => s.stop()));
      await dropStore();
    },
  };
}
