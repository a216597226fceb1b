// The cluster suites' shared frame (test/cluster.test.ts and test/cluster.solo.test.ts): a private
// redis-server and a fresh MariaDB database per file, clusters stopped after each test (their
// nodes' output printed when it failed), and the stream checks the tests share.

import { execFile } from 'node:child_process';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { seqProblem, streamOf } from './cluster-helpers.ts';
import type { Client, Frame } from './support/client.ts';
import { Cluster, PrivateRedis, REDIS_HOST, type ClusterNode } from './support/cluster.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

/**
 * A private Redis (the suites stop it under traffic) and MariaDB: null when one is missing (a loud
 * skip; under CI=true a missing one throws).
 */
export async function clusterServices(): Promise<PrivateRedis | null> {
  const redis = await PrivateRedis.open();
  if (redis === null) return null;
  if (await mysqlAvailable()) return redis;
  await redis.close();
  return null;
}

export function runRedis(redis: PrivateRedis, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', REDIS_HOST, '-p', String(redis.port), ...args], (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

/** Fire `n` sends from `c` to `room`; returns their cids. */
export function sendMany(c: Client, room: string, tag: string, n: number): string[] {
  const cids: string[] = [];
  for (let i = 0; i < n; i++) {
    const cid = `${tag}-${i}`;
    c.send({ op: 'send', room, text: `${tag} #${i}`, cid });
    cids.push(cid);
  }
  return cids;
}

/** The member's stream of `room` is: no msg before joined, one joined, then joined.seq+1 .. `last`, each once. */
export function expectGapless(c: Client, room: string, last: number, who: string): Frame[] {
  const s = streamOf(c, room);
  expect(s.strays, `${who}: frames of ${room} outside the stream (msg before joined, or a second joined)`).toEqual([]);
  const seqs = s.live.map((m) => m.seq as number);
  expect(seqProblem(seqs, s.joined.seq + 1), `${who}: live stream of ${room} after joined.seq=${s.joined.seq}`).toBeNull();
  expect(s.joined.seq + seqs.length, `${who}: last seq of ${room}`).toBe(last);
  return s.live;
}

export function countOf(msgs: Frame[], type: string, user: string): number {
  return msgs.filter((m) => m.type === type && m.from?.id === user).length;
}

/** Every message of `room` this connection received: joined.messages, then live msgs. */
export function everything(c: Client, room: string): Frame[] {
  const s = streamOf(c, room);
  return [...(s.joined.messages as Frame[]), ...s.live];
}


export interface ClusterSuite {
  /** The file's database. */
  readonly dbUrl: string;
  /** A cluster on the file's database and Redis; stopped after the test. */
  cluster(env?: Record<string, string>): Cluster;
  /** Two nodes without ENTER/QUIT, and one member of `room` on each (a on the first, b on the second). */
  pair(ids: [number, number], room: string, users: [string, string]): Promise<{ n1: ClusterNode; n2: ClusterNode; a: Client; b: Client }>;
}

/** Call inside the file's describe: the database, the per-test cleanup, Redis closed at the end. */
export function useClusterSuite(redis: PrivateRedis): ClusterSuite {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  const clusters: Cluster[] = [];
  const cluster = (env: Record<string, string> = {}): Cluster => {
    const c = new Cluster(db.url, env, redis);
    clusters.push(c);
    return c;
  };
  beforeAll(async () => { db = await freshDatabase(); });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') {
      for (const cl of clusters) {
        for (const n of cl.nodes) {
          console.error(`--- node ${n.id} (${cl.prefix}) exit=${n.proc.exitCode} signal=${n.proc.signalCode}\nstdout: ${n.stdout.join('').slice(-1500)}\nstderr: ${n.stderr.join('').slice(-1500)}`);
        }
      }
    }
    await Promise.all(clusters.splice(0).map((c) => c.stop()));
  });
  afterAll(async () => {
    await db?.drop();
    await redis.close();
  });
  return {
    get dbUrl() { return db.url; },
    cluster,
    pair: async (ids, room, users) => {
      const cl = cluster({ CHAT_ENTER_QUIT: 'off' });
      const [n1, n2] = await cl.start(ids);
      return { n1, n2, a: await cl.member(n1, users[0], room), b: await cl.member(n2, users[1], room) };
    },
  };
}
