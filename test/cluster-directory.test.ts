// Cluster directory changes that heal: a node that never received the control events of a member
// removal, a room deletion and a block (dropped on receipt by a test hook, as a lost subscription
// would lose them) applies them from the store on its next sweep. Real engine processes on MariaDB
// and the local Redis (this file's cluster under its own prefix; Redis itself is not disturbed).

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Frame } from './support/client.ts';
import { Cluster, redisAvailable } from './support/cluster.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

const HAVE_SERVICES = (await redisAvailable()) && (await mysqlAvailable());
const TOKEN = 'cluster-dir-admin-token-0123456789';
const admin = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
type Node = Awaited<ReturnType<Cluster['startNode']>>;

async function hook(node: Node, method: 'GET' | 'POST', path: string): Promise<Frame> {
  const r = await fetch(`${node.http}/_test/${path}`, { method });
  expect(r.status, `${method} /_test/${path} on node ${node.id}`).toBe(200);
  return (await r.json()) as Frame;
}

/** Directory sweeps the node has completed. */
async function sweeps(node: Node): Promise<number> {
  return (await hook(node, 'GET', 'sweeps?n=0')).sweeps as number;
}

/** Hold the node's directory sweeps, and wait until one waits at the hold (none is running then). */
async function holdSweeps(node: Node): Promise<void> {
  await hook(node, 'POST', 'hold/sweep');
  for (let tries = 0; tries < 6; tries++) {
    const r = await fetch(`${node.http}/_test/waiting/sweep?n=1`);
    if (r.status === 200) return;
    expect(r.status, 'the long poll gave up (408): ask again').toBe(408);
  }
  throw new Error(`no sweep of node ${node.id} reached the hold within a minute`);
}

/** Wait until the node has completed `n` directory sweeps (one runs every 10 s while the bus is up). */
async function sweptTo(node: Node, n: number): Promise<void> {
  for (let tries = 0; tries < 6; tries++) {
    const r = await fetch(`${node.http}/_test/sweeps?n=${n}`);
    if (r.status === 200) return;
    expect(r.status, 'the long poll gave up (408): ask again').toBe(408);
  }
  throw new Error(`node ${node.id} did not complete sweep ${n} within a minute`);
}

describe.runIf(HAVE_SERVICES)('cluster: directory changes heal from the store', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  const clusters: Cluster[] = [];
  beforeAll(async () => { db = await freshDatabase(); });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') {
      for (const cl of clusters) for (const n of cl.nodes) console.error(`--- node ${n.id}\nstdout: ${n.stdout.join('').slice(-2000)}\nstderr: ${n.stderr.join('').slice(-2000)}`);
    }
    await Promise.all(clusters.splice(0).map((c) => c.stop()));
  });
  afterAll(async () => { await db?.drop(); });

  it('a node that missed the events of a block, a member removal and a room deletion applies them within one sweep', async () => {
    const cl = new Cluster(db.url, { CHAT_ENTER_QUIT: 'off', CHAT_ADMIN_TOKEN: TOKEN, CHAT_TEST_HOOKS: '1', CHAT_LOG_LEVEL: 'info' });
    clusters.push(cl);
    const [n1, n2] = await cl.start([101, 102]);
    const post = async (path: string, body: unknown): Promise<Frame> => {
      const r = await fetch(`${n1.http}${path}`, { method: 'POST', headers: admin, body: JSON.stringify(body) });
      expect(r.status).toBe(201);
      return (await r.json()) as Frame;
    };
    const group = (await post('/api/rooms', { kind: 'group', members: ['ga', 'gb'] })).id as string;
    const doomed = (await post('/api/rooms', { kind: 'group', members: ['da', 'db'] })).id as string;
    // On node 102: a member of each room, and a user who is about to block someone.
    const gb = await cl.member(n2, 'gb', group);
    const dbm = await cl.member(n2, 'db', doomed);
    const bk = await cl.member(n2, 'bk', 'plaza');
    // On node 101: the user bk blocks.
    const bs = await cl.member(n1, 'bs', 'plaza');

    // Node 102 loses every directory event from now on, and its sweeps wait before reading.
    await hook(n2, 'POST', 'drop/control');
    await holdSweeps(n2);
    // The changes, made on node 101.
    expect((await fetch(`${n1.http}/api/me/blocks/bs?user=bk`, { method: 'PUT' })).status).toBe(200);
    expect((await fetch(`${n1.http}/api/rooms/${group}/members/gb`, { method: 'DELETE', headers: admin })).status).toBe(200);
    expect((await fetch(`${n1.http}/api/rooms/${doomed}`, { method: 'DELETE', headers: admin })).status).toBe(200);
    expect(await hook(n2, 'GET', 'dropped/control?n=3')).toEqual({ dropped: 3 });

    // Node 102 has not applied them: it still lets gb post, serves the deleted room, and hands bk
    // what bs says.
    expect(await gb.request({ op: 'send', room: group, text: 'stale member', cid: 'g1' })).toMatchObject({ op: 'ack' });
    const late = await cl.connect(n2, 'db');
    expect((await late.request({ op: 'join', room: doomed })).op).toBe('joined');
    const before = await bs.request({ op: 'send', room: 'plaza', text: 'before the sweep', cid: 'b1' });
    expect(await bk.op('msg', (f) => f.id === before.id)).toMatchObject({ text: 'before the sweep' });
    expect(dbm.frames.some((f) => f.op === 'left') || gb.frames.some((f) => f.op === 'left')).toBe(false);

    // The next sweep reads the changes from the store and applies all three.
    const done = await sweeps(n2);
    await hook(n2, 'POST', 'release/sweep');
    await sweptTo(n2, done + 1);
    expect(dbm.frames.find((f) => f.op === 'left' && f.room === doomed)).toMatchObject({ reason: 'deleted' });
    expect(gb.frames.find((f) => f.op === 'left' && f.room === group)).toMatchObject({ reason: 'removed' });
    expect(await gb.request({ op: 'send', room: group, text: 'removed now', cid: 'g2' })).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await late.request({ op: 'join', room: doomed })).toMatchObject({ op: 'error', code: 'not_found' });
    const blocked = await bs.request({ op: 'send', room: 'plaza', text: 'after the sweep', cid: 'b2' });
    const other = await cl.member(n1, 'bo', 'plaza');
    const marker = await other.request({ op: 'send', room: 'plaza', text: 'marker', cid: 'm1' });
    await bk.op('msg', (f) => f.id === marker.id);
    expect(bk.frames.some((f) => f.op === 'msg' && f.id === blocked.id), 'bk received bs after the block healed').toBe(false);
    expect(n2.stdout.join('') + n2.stderr.join('')).toMatch(/missed on the bus: applied from the store/);
  }, 90_000);

  it('events that reach a node are applied at once, and its sweeps find nothing left to apply', async () => {
    const cl = new Cluster(db.url, { CHAT_ENTER_QUIT: 'off', CHAT_ADMIN_TOKEN: TOKEN, CHAT_TEST_HOOKS: '1', CHAT_LOG_LEVEL: 'info' });
    clusters.push(cl);
    const [n1, n2] = await cl.start([103, 104]);
    const created = await fetch(`${n1.http}/api/rooms`, { method: 'POST', headers: admin, body: JSON.stringify({ kind: 'group', members: ['ea', 'eb'] }) });
    const room = ((await created.json()) as Frame).id as string;
    const ea = await cl.member(n1, 'ea', room);
    const eb = await cl.member(n2, 'eb', room);
    const bx = await cl.member(n2, 'bx', 'square');
    const by = await cl.member(n1, 'by', 'square');
    const bz = await cl.member(n1, 'bz', 'square');
    // Sweeps wait while the changes are made: the events alone must apply them.
    await Promise.all([holdSweeps(n1), holdSweeps(n2)]);
    // A change on each node, seen on the other.
    expect((await fetch(`${n1.http}/api/rooms/${room}/members/eb`, { method: 'DELETE', headers: admin })).status).toBe(200);
    expect(await eb.op('left', (f) => f.room === room, 5_000)).toMatchObject({ reason: 'removed' });
    expect((await fetch(`${n2.http}/api/rooms/${room}/members/ea`, { method: 'DELETE', headers: admin })).status).toBe(200);
    expect(await ea.op('left', (f) => f.room === room, 5_000)).toMatchObject({ reason: 'removed' });
    // A block made on node 103 reaches node 104 before anything the blocked user sends after it
    // (node 103 publishes both on one connection, node 104 receives them on one).
    expect((await fetch(`${n1.http}/api/me/blocks/by?user=bx`, { method: 'PUT' })).status).toBe(200);
    const hidden = await by.request({ op: 'send', room: 'square', text: 'hidden from bx', cid: 'h1' });
    const marker = await bz.request({ op: 'send', room: 'square', text: 'marker', cid: 'm1' });
    await bx.op('msg', (f) => f.id === marker.id);
    expect(bx.frames.some((f) => f.op === 'msg' && f.id === hidden.id), 'the block reached node 104 on the bus').toBe(false);
    // Then a full sweep on each node: nothing is missing, nothing is applied again.
    for (const n of [n1, n2]) {
      const done = await sweeps(n);
      await hook(n, 'POST', 'release/sweep');
      await sweptTo(n, done + 1);
      expect(n.stdout.join('') + n.stderr.join(''), `node ${n.id} had every change`).not.toMatch(/missed on the bus/);
    }
    expect([...ea.frames, ...eb.frames].filter((f) => f.op === 'left')).toHaveLength(2);
  }, 60_000);
});
