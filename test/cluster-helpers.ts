// Cluster-mode test helpers: several real engine processes sharing one MariaDB database and a
// Redis: the local one (127.0.0.1:6379, or the port in CHAT_TEST_REDIS_PORT), or a private
// redis-server a suite starts on a port of its own (`PrivateRedis`: a suite that stops or pauses
// Redis must own it, or it would pull Redis from under the suites running beside it); each cluster
// under its own CHAT_REDIS_PREFIX; per-member stream audits (gapless, in seq order, after `joined`).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { Client, getJson, ROOT, SEND_LIMITS_OFF, startEngine, type EngineProc, type Frame } from './helpers.ts';
import { until } from './reliability-helpers.ts';

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

export { until };

// ---- Redis, the real server ---------------------------------------------------------------------

/** One PING over a raw socket: true on +PONG, false on refusal, error or timeout. */
export function redisPing(timeoutMs = 1000, at: RedisAt = SHARED_REDIS): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(at.port, REDIS_HOST);
    let buf = '';
    const done = (ok: boolean): void => { clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (d: Buffer) => { buf += d.toString(); if (buf.includes('\r\n')) done(buf.startsWith('+PONG')); });
    s.once('error', () => done(false));
  });
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
  const r = new Redis({ host: REDIS_HOST, port: at.port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
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
    CHAT_STORE: dbUrl,
    CHAT_REDIS_URL: redisUrl(redis),
    CHAT_REDIS_PREFIX: prefix,
    CHAT_NODE_ID: String(id),
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
    await Promise.all(this.nodes.map(async (n) => {
      if (n.proc.exitCode !== null || n.proc.signalCode !== null) return;
      n.proc.kill('SIGTERM');
      const t = setTimeout(() => n.proc.kill('SIGKILL'), 3000);
      await n.exited;
      clearTimeout(t);
    }));
    await dropRedisKeys(this.prefix, this.redis);
  }
}

// ---- ids ----------------------------------------------------------------------------------------

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A canonical 13-character TSID as its 64-bit integer. */
export function tsidOf(id: string): bigint {
  if (!/^[0-9A-F][0-9A-HJKMNP-TV-Z]{12}$/.test(id)) throw new Error(`not a canonical TSID: ${id}`);
  let n = 0n;
  for (const c of id) n = (n << 5n) | BigInt(CROCKFORD.indexOf(c));
  return n;
}

/** The node bits of a TSID: 42 bits time, 10 bits node, 12 bits counter. */
export function nodeOf(tsid: bigint | string): number {
  const n = typeof tsid === 'bigint' ? tsid : /^\d+$/.test(tsid) ? BigInt(tsid) : tsidOf(tsid);
  return Number((n >> 12n) & 1023n);
}

// ---- streams ------------------------------------------------------------------------------------

export interface Stream {
  /** The first `joined` for the room on this connection. */
  joined: Frame;
  /** `msg` frames of the room after it, in arrival order. */
  live: Frame[];
  /** Frames of the room that should not be there: `msg` before `joined`, or any later `joined`. */
  strays: Frame[];
}

export function streamOf(c: Client, room: string): Stream {
  const at = c.frames.findIndex((f) => f.op === 'joined' && f.room === room);
  if (at < 0) throw new Error(`no joined for ${room}`);
  const strays = c.frames.slice(0, at).filter((f) => f.op === 'msg' && f.room === room);
  const live: Frame[] = [];
  for (const f of c.frames.slice(at + 1)) {
    if (f.room !== room) continue;
    if (f.op === 'msg') live.push(f);
    else if (f.op === 'joined') strays.push(f);
  }
  return { joined: c.frames[at], live, strays };
}

/** The first place `seqs` stops being first, first+1, first+2, ...; null when it never does. */
export function seqProblem(seqs: number[], first: number): string | null {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== first + i) {
      return `expected seq ${first + i} at position ${i}, got ${seqs[i]} (around: ${JSON.stringify(seqs.slice(Math.max(0, i - 3), i + 4))})`;
    }
  }
  return null;
}

/** Highest seq of `room` this connection has (joined or msg). */
export function lastSeq(c: Client, room: string): number {
  let s = -1;
  for (const f of c.frames) {
    if (f.room !== room) continue;
    if (f.op === 'msg' && f.seq > s) s = f.seq;
    if (f.op === 'joined' && f.seq > s) s = f.seq;
  }
  return s;
}

/** Wait until the connection has a `msg` of `room` with seq >= `seq`; on timeout say where it stands. */
export async function awaitSeq(c: Client, room: string, seq: number, timeoutMs: number, who: string): Promise<void> {
  if (lastSeq(c, room) >= seq) return;
  try {
    await c.waitFor((f) => f.op === 'msg' && f.room === room && f.seq >= seq, timeoutMs, `seq ${seq}`);
  } catch (err) {
    const s = c.frames.some((f) => f.op === 'joined' && f.room === room) ? streamOf(c, room) : null;
    const seqs = s?.live.map((m) => m.seq as number) ?? [];
    throw new Error(`${who}: waited ${timeoutMs} ms for seq ${seq} of ${room}; joined.seq=${s?.joined.seq}, got ${seqs.length} live msgs, last ${JSON.stringify(seqs.slice(-8))}` +
      `${s ? `, order: ${seqProblem(seqs, s.joined.seq + 1) ?? 'gapless'}` : ''} (${(err as Error).message.slice(0, 200)})`);
  }
}

/** Wait for an ack of every cid; an `error` carrying one of them fails at once with the frame. */
export async function awaitAcks(c: Client, cids: string[], timeoutMs: number, who: string): Promise<Map<string, Frame>> {
  const want = new Set(cids);
  const acks = new Map<string, Frame>();
  await until(`${who}: acks for ${cids.length} sends`, () => {
    for (const f of c.frames) {
      if (!want.has(f.cid)) continue;
      if (f.op === 'error') throw new Error(`${who}: send ${f.cid} refused: ${JSON.stringify(f)}`);
      if (f.op === 'ack') acks.set(f.cid, f);
    }
    return acks.size === want.size ? true : undefined;
  }, timeoutMs, 20).catch((err: Error) => {
    if (err.message.startsWith('timed out')) {
      const missing = cids.filter((cid) => !acks.has(cid));
      throw new Error(`${err.message}: ${missing.length} without ack, e.g. ${JSON.stringify(missing.slice(0, 5))}; connection ${c.closeCode === null ? 'open' : `closed ${c.closeCode}`}`);
    }
    throw err;
  });
  return acks;
}

// ---- HTTP and the database ----------------------------------------------------------------------

/** GET /api/rooms/:room/online on a node: the user ids (asserts the documented shape). */
export async function online(node: ClusterNode, room: string): Promise<string[]> {
  const { status, body } = await getJson(`${node.http}/api/rooms/${room}/online`);
  if (status !== 200 || body.room !== room || !Array.isArray(body.online)) {
    throw new Error(`GET /api/rooms/${room}/online on node ${node.id}: ${status} ${JSON.stringify(body)}`);
  }
  return body.online as string[];
}

export interface Row { tsid: string; id: string; room: string; seq: number; type: string; from_id: string; cid: string | null }

/** Every stored message of these rooms, by room then seq; tsid as a decimal string (no precision loss). */
export async function storedMessages(dbUrl: string, rooms: string[]): Promise<Row[]> {
  const c = await mysql.createConnection({ uri: dbUrl, supportBigNumbers: true, bigNumberStrings: true });
  try {
    const [rows] = await c.query<(Row & mysql.RowDataPacket)[]>(
      'SELECT CAST(tsid AS CHAR) AS tsid, id, room, CAST(seq AS SIGNED) AS seq, type, from_id, cid FROM messages WHERE room IN (?) ORDER BY room, seq, tsid', [rooms]);
    return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
  } finally {
    await c.end();
  }
}

// ---- processes ----------------------------------------------------------------------------------

/**
 * Run the CLI with this environment (no sqlite default) and wait for it to exit, killing it after
 * `timeoutMs` (an engine that should have refused to start would otherwise serve forever).
 */
export function runBounded(env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; stderr: string; stdout: string; ms: number; timedOut: boolean }> {
  const t0 = Date.now();
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts'], {
    cwd: ROOT,
    env: { ...process.env, CHAT_PORT: '0', CHAT_HOST: '127.0.0.1', CHAT_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  proc.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timer = setTimeout(() => { timedOut = true; proc.kill('SIGKILL'); }, timeoutMs);
  process.once('exit', () => proc.kill('SIGKILL'));
  return new Promise((res) => proc.once('exit', (code) => { clearTimeout(timer); res({ code, stdout, stderr, ms: Date.now() - t0, timedOut }); }));
}

export async function health(node: ClusterNode): Promise<Frame> {
  const { status, body } = await getJson(`${node.http}/healthz`);
  if (status !== 200) throw new Error(`healthz of node ${node.id}: ${status} ${JSON.stringify(body)}`);
  return body;
}

/** Wait until the node's /healthz reports its bus `up` or `down`. */
export async function awaitBus(node: ClusterNode, state: 'up' | 'down', timeoutMs: number): Promise<void> {
  await until(`healthz of node ${node.id} to say bus ${state}`, async () => ((await health(node)).cluster?.bus === state ? true : undefined), timeoutMs);
}
