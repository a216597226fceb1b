// Clusters of real engine processes for tests, sharing one MariaDB database and a Redis: the local
// one (127.0.0.1:6379, or the port in CHAT_TEST_REDIS_PORT), or a private redis-server a suite
// starts on a port of its own (`PrivateRedis`: a suite that stops or pauses Redis must own it, or
// it would pull Redis from under the suites running beside it); each cluster under its own
// CHAT_REDIS_PREFIX. The node settings and the Redis clean-up are the bench's (bench/lib/cluster.ts).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { dropRedisPrefix, nodeEnv as clusterNodeEnv, redisCommand } from '../../bench/lib/cluster.ts';
import { Client, type Frame } from './client.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './engine.ts';
import { until } from './wait.ts';

const run = promisify(execFile);
const IN_CI = process.env.CI === 'true';

export const REDIS_HOST = '127.0.0.1';
export const REDIS_PORT = Number(process.env.CHAT_TEST_REDIS_PORT ?? 6379);
export const REDIS_URL = `redis://${REDIS_HOST}:${REDIS_PORT}`;

/** Where a Redis listens (on REDIS_HOST). */
export interface RedisAt {
  port: number;
}

/** The local Redis every suite may share (never stopped or paused by a suite). */
export const SHARED_REDIS: RedisAt = { port: REDIS_PORT };

export const redisUrl = (at: RedisAt): string => `redis://${REDIS_HOST}:${at.port}`;
/** CHAT_NODE_TIMEOUT of every test cluster. */
export const NODE_TIMEOUT_MS = 2000;

// ---- Redis, the real server ---------------------------------------------------------------------

/** One PING: true on PONG, false on refusal, error or timeout. */
export async function redisPing(timeoutMs = 1000, at: RedisAt = SHARED_REDIS): Promise<boolean> {
  return (await redisCommand(redisUrl(at), ['PING'], timeoutMs).catch(() => '')) === '+PONG';
}

/** Redis is required under CI=true (throws); elsewhere a missing server skips, loudly. */
export async function redisAvailable(): Promise<boolean> {
  if (await redisPing(2000)) return true;
  // Down: start the local one, as the README says (no persistence, loopback only).
  try {
    await startRedis();
    if (await redisPing(2000)) return true;
  } catch {
    // no redis-server here: fall through to fail (CI) or skip (elsewhere)
  }
  if (IN_CI) throw new Error(`Redis at ${REDIS_URL} is required under CI=true (cluster suite); start it with: redis-server --daemonize yes --bind 127.0.0.1 --port ${REDIS_PORT} --save "" --appendonly no`);
  console.warn(`\n*** cluster suite SKIPPED: no Redis at ${REDIS_URL}. Start it with: redis-server --daemonize yes --bind 127.0.0.1 --port ${REDIS_PORT} --save "" --appendonly no. Under CI=true this fails. ***\n`);
  return false;
}

/** `redis-cli -p <port> shutdown nosave`, then wait until the port no longer answers. */
export async function stopRedis(at: RedisAt = SHARED_REDIS): Promise<void> {
  // redis-cli exits non-zero when the server drops the connection mid-reply; the port check decides.
  await run('redis-cli', ['-h', REDIS_HOST, '-p', String(at.port), 'shutdown', 'nosave']).catch(() => undefined);
  await until('Redis to stop answering', async () => ((await redisPing(300, at)) ? undefined : true), 10_000, 50);
}

/** Start the local Redis as the contract says, and wait until it answers PING. */
export async function startRedis(): Promise<void> {
  await run('redis-server', ['--daemonize', 'yes', '--bind', REDIS_HOST, '--port', String(REDIS_PORT), '--save', '', '--appendonly', 'no']);
  await until('Redis to answer PING', async () => ((await redisPing(300)) ? true : undefined), 10_000, 50);
}

/** Make sure Redis is up (for finally blocks and afterAll after a failed restart test). */
export async function ensureRedis(): Promise<void> {
  if (!(await redisPing(500))) await startRedis();
}

/** Delete every key a cluster left under its prefix (best effort; Redis may be down). */
export async function dropRedisKeys(prefix: string, at: RedisAt = SHARED_REDIS): Promise<void> {
  if (!(await redisPing(500, at))) return;
  await dropRedisPrefix(redisUrl(at), prefix);
}

/** A port free right now on REDIS_HOST (the kernel picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, REDIS_HOST, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Private redis-servers still running when the test process exits are killed with it. */
const privateServers = new Set<ChildProcess>();
process.once('exit', () => { for (const p of privateServers) if (p.exitCode === null) p.kill('SIGKILL'); });

/**
 * A redis-server of this suite's own, on a port of its own, run as a child process (no
 * persistence, loopback only). `stop()` shuts it down, `start()` starts it again on the same port,
 * `close()` at the end of the suite.
 */
export class PrivateRedis implements RedisAt {
  private proc: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  get url(): string {
    return redisUrl(this);
  }

  /** A running private Redis; null (after a loud warning) when redis-server is missing, except under CI=true (throws). */
  static async open(): Promise<PrivateRedis | null> {
    const r = new PrivateRedis(await freePort());
    try {
      await r.start();
      return r;
    } catch (err) {
      if (IN_CI) throw new Error(`a private redis-server is required under CI=true: ${(err as Error).message}`);
      console.warn(`\n*** suite SKIPPED: could not start a private redis-server (${(err as Error).message}). Install redis-server. Under CI=true this fails. ***\n`);
      return null;
    }
  }

  async start(): Promise<void> {
    if (this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null) return;
    const proc = spawn('redis-server', ['--bind', REDIS_HOST, '--port', String(this.port), '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
    privateServers.add(proc);
    proc.once('exit', () => privateServers.delete(proc));
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', reject);
      proc.once('exit', (code) => reject(new Error(`redis-server on port ${this.port} exited (${code})`)));
    });
    failed.catch(() => undefined);
    this.proc = proc;
    await Promise.race([until(`Redis on port ${this.port} to answer PING`, async () => ((await redisPing(300, this)) ? true : undefined), 10_000, 50), failed]);
  }

  /** Shut it down (as an operator would: SHUTDOWN NOSAVE) and wait for the process to exit. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    await stopRedis(this);
    await exited;
  }

  /** Running again if a failed test left it stopped. */
  async ensure(): Promise<void> {
    if (!(await redisPing(500, this))) await this.start();
  }

  async close(): Promise<void> {
    const proc = this.proc;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    await exited;
  }
}

/** A prefix no other cluster (test, file, or concurrent run) uses: [A-Za-z0-9], fixed length. */
export function uniquePrefix(): string {
  return `ct${process.pid.toString(36).padStart(5, '0')}x${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}`;
}

// ---- the cluster --------------------------------------------------------------------------------

export interface ClusterNode extends EngineProc {
  /** CHAT_NODE_ID of this node. */
  id: number;
}

/** The pipeline in isolation: no send rate limits (ENTER/QUIT chosen per test). */
export const NO_RATE = SEND_LIMITS_OFF;

export function nodeEnv(dbUrl: string, prefix: string, id: number, extra: Record<string, string> = {}, redis: RedisAt = SHARED_REDIS): Record<string, string> {
  return {
    ...(clusterNodeEnv(dbUrl, { redisUrl: redisUrl(redis), prefix, id }) as Record<string, string>),
    CHAT_NODE_TIMEOUT: `${NODE_TIMEOUT_MS / 1000}s`,
    ...NO_RATE,
    ...extra,
  };
}

/**
 * One cluster of real engine processes, plus every client a test opened on it. `stop()` kills
 * the nodes (SIGTERM, SIGKILL after 3 s), drops the clients and the cluster's Redis keys.
 */
export class Cluster {
  readonly prefix = uniquePrefix();
  readonly nodes: ClusterNode[] = [];
  readonly clients: Client[] = [];

  constructor(readonly dbUrl: string, readonly env: Record<string, string> = {}, readonly redis: RedisAt = SHARED_REDIS) {}

  async startNode(id: number, extra: Record<string, string> = {}): Promise<ClusterNode> {
    const eng = await startEngine(nodeEnv(this.dbUrl, this.prefix, id, { ...this.env, ...extra }, this.redis));
    const node = Object.assign(eng, { id });
    this.nodes.push(node);
    return node;
  }

  /**
   * Start nodes with these ids, all at once (on a new database they race to migrate the schema:
   * one does, the others wait for its lock).
   */
  async start(ids: number[]): Promise<ClusterNode[]> {
    return Promise.all(ids.map((id) => this.startNode(id)));
  }

  async connect(node: ClusterNode, user: string, name = user): Promise<Client> {
    const c = await Client.connect(node.url, { user, name });
    this.clients.push(c);
    return c;
  }

  /** Connect and join `room` (the `joined` reply is the first frame of the room in `frames`). */
  async member(node: ClusterNode, user: string, room: string, extra: Frame = {}): Promise<Client> {
    const c = await this.connect(node, user);
    const j = await c.request({ op: 'join', room, ...extra });
    if (j.op !== 'joined') throw new Error(`join ${room} on node ${node.id} as ${user}: ${JSON.stringify(j)}`);
    return c;
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.ws.terminate();
    await Promise.all(this.nodes.map((n) => n.stop('SIGTERM', 3000)));
    await dropRedisKeys(this.prefix, this.redis);
  }
}
