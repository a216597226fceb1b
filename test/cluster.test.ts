// Cluster mode (CHAT_REDIS_URL): real engine processes on one MariaDB database and a private
// redis-server this file starts on a port of its own (it stops Redis under traffic: a shared one
// would vanish from under the suites running beside it), each test's cluster under its own
// CHAT_REDIS_PREFIX and node ids. Cross-node delivery, ordering
// under concurrent load (audited in the database), cluster-wide presence, a node killed with
// SIGKILL, Redis shut down and started again under traffic, and the start-up refusals.
// Needs redis-server (the binary) and MariaDB (CHAT_TEST_MYSQL_URL): under CI=true a missing one
// fails the file; elsewhere the file skips with a loud warning.

import { execFile } from 'node:child_process';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { getJson, tempDir, type Client, type Frame } from './helpers.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';
import { metric } from './reliability-helpers.ts';
import {
  awaitAcks, awaitBus, awaitSeq, Cluster, health, lastSeq, nodeEnv, nodeOf, NODE_TIMEOUT_MS, online, PrivateRedis, REDIS_HOST,
  runBounded, seqProblem, storedMessages, streamOf, tsidOf, until, type ClusterNode,
} from './cluster-helpers.ts';

const REDIS = await PrivateRedis.open();
const HAVE_SERVICES = REDIS !== null && (await mysqlAvailable());
/** This file's Redis (only used when HAVE_SERVICES). */
const redis = REDIS!;

function runRedis(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', REDIS_HOST, '-p', String(redis.port), ...args], (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

/** Fire `n` sends from `c` to `room`; returns their cids. */
function sendMany(c: Client, room: string, tag: string, n: number): string[] {
  const cids: string[] = [];
  for (let i = 0; i < n; i++) {
    const cid = `${tag}-${i}`;
    c.send({ op: 'send', room, text: `${tag} #${i}`, cid });
    cids.push(cid);
  }
  return cids;
}

/** The member's stream of `room` is: no msg before joined, one joined, then joined.seq+1 .. `last`, each once. */
function expectGapless(c: Client, room: string, last: number, who: string): Frame[] {
  const s = streamOf(c, room);
  expect(s.strays, `${who}: frames of ${room} outside the stream (msg before joined, or a second joined)`).toEqual([]);
  const seqs = s.live.map((m) => m.seq as number);
  expect(seqProblem(seqs, s.joined.seq + 1), `${who}: live stream of ${room} after joined.seq=${s.joined.seq}`).toBeNull();
  expect(s.joined.seq + seqs.length, `${who}: last seq of ${room}`).toBe(last);
  return s.live;
}

function countOf(msgs: Frame[], type: string, user: string): number {
  return msgs.filter((m) => m.type === type && m.from?.id === user).length;
}

/** Every message of `room` this connection received: joined.messages, then live msgs. */
function everything(c: Client, room: string): Frame[] {
  const s = streamOf(c, room);
  return [...(s.joined.messages as Frame[]), ...s.live];
}

describe.runIf(HAVE_SERVICES)('cluster mode (3 nodes, MariaDB, Redis)', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  const clusters: Cluster[] = [];
  const cluster = (env: Record<string, string> = {}): Cluster => {
    const c = new Cluster(db.url, env, redis);
    clusters.push(c);
    return c;
  };
  /** Two nodes without ENTER/QUIT, and one member of `room` on each (a on the first, b on the second). */
  const pair = async (ids: [number, number], room: string, users: [string, string]): Promise<{ n1: ClusterNode; n2: ClusterNode; a: Client; b: Client }> => {
    const cl = cluster({ CHAT_ENTER_QUIT: 'off' });
    const [n1, n2] = await cl.start(ids);
    return { n1, n2, a: await cl.member(n1, users[0], room), b: await cl.member(n2, users[1], room) };
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
  });

  it('delivers every message to the members on every node, in seq order, gapless, each send acked', async () => {
    const cl = cluster({ CHAT_ENTER_QUIT: 'off' });
    const nodes = await cl.start([11, 12, 13]);
    const room = 'x1';
    const members = await Promise.all(nodes.map((n) => cl.member(n, `x-${n.id}`, room)));
    for (const m of members) expect(streamOf(m, room).joined).toMatchObject({ seq: 0, messages: [] });

    const PER = 8;
    const cids: string[][] = members.map(() => []);
    for (let k = 0; k < PER; k++) members.forEach((m, i) => cids[i].push(...sendMany(m, room, `x${nodes[i].id}.${k}`, 1)));
    const acks = await Promise.all(members.map((m, i) => awaitAcks(m, cids[i], 15_000, `member on node ${nodes[i].id}`)));
    const all = acks.flatMap((a) => [...a.values()]);
    expect(all).toHaveLength(3 * PER);
    expect(all.map((a) => a.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 3 * PER }, (_, i) => i + 1));
    expect(new Set(all.map((a) => a.id)).size).toBe(3 * PER);

    const byCid = new Map(all.map((a) => [a.cid as string, a]));
    const userOfCid = new Map(cids.flatMap((list, i) => list.map((cid) => [cid, `x-${nodes[i].id}`] as const)));
    // Over the bus, promptly: well inside the 10 s a store-only catch-up could take.
    const acked = Date.now();
    for (const [i, m] of members.entries()) {
      await awaitSeq(m, room, 3 * PER, Math.max(1, acked + 3_000 - Date.now()), `member on node ${nodes[i].id} (within 3 s of the last ack)`);
      const live = expectGapless(m, room, 3 * PER, `member on node ${nodes[i].id}`);
      for (const msg of live) {
        const ack = byCid.get(msg.cid);
        expect(ack, `msg ${JSON.stringify(msg)} has no ack`).toBeDefined();
        expect({ id: msg.id, seq: msg.seq, from: msg.from.id, type: msg.type }).toEqual({ id: ack!.id, seq: ack!.seq, from: userOfCid.get(msg.cid), type: 'CHAT' });
      }
    }
    for (const n of nodes) {
      expect(await metric(n.http, 'chat_bus_published_total'), `chat_bus_published_total of node ${n.id}`).toBeGreaterThan(0);
      expect(await metric(n.http, 'chat_bus_received_total'), `chat_bus_received_total of node ${n.id}`).toBeGreaterThan(0);
      expect(await metric(n.http, 'chat_bus_gap_fills_total'), `chat_bus_gap_fills_total of node ${n.id}`).toBeGreaterThanOrEqual(0);
    }
  }, 40_000);

  it('orders concurrent sends from 18 clients on 3 nodes over 4 rooms: gapless streams, seq 1..N in the database, node bits of each id', async () => {
    const cl = cluster({ CHAT_ENTER_QUIT: 'off' });
    const nodes = await cl.start([21, 22, 23]);
    const rooms = ['o0', 'o1', 'o2', 'o3'];
    const SENDERS_PER_NODE = 6;
    const PER_SENDER = 20; // 18 x 20 = 360 messages, 90 per room
    const senders: { c: Client; node: ClusterNode; user: string }[] = [];
    await Promise.all(nodes.flatMap((node) => Array.from({ length: SENDERS_PER_NODE }, async (_, j) => {
      const user = `o-${node.id}-${j}`;
      const c = await cl.connect(node, user);
      for (const room of rooms) expect(await c.request({ op: 'join', room })).toMatchObject({ op: 'joined', room, seq: 0 });
      senders.push({ c, node, user });
    })));

    // Everyone fires at once, round-robin over the rooms (each sender starting at a different room).
    const cidsOf = senders.map(() => [] as string[]);
    for (let k = 0; k < PER_SENDER; k++) {
      senders.forEach((s, i) => {
        const room = rooms[(k + i) % rooms.length];
        cidsOf[i].push(...sendMany(s.c, room, `${s.user}.${k}`, 1));
      });
    }
    const acks = (await Promise.all(senders.map((s, i) => awaitAcks(s.c, cidsOf[i], 25_000, s.user)))).flatMap((a) => [...a.values()]);
    const total = senders.length * PER_SENDER;
    expect(acks).toHaveLength(total);
    const perRoom = new Map(rooms.map((r) => [r, acks.filter((a) => a.room === r)]));
    for (const [room, list] of perRoom) {
      expect(list.map((a) => a.seq).sort((x, y) => x - y), `ack seqs of ${room}`).toEqual(Array.from({ length: list.length }, (_, i) => i + 1));
    }

    for (const s of senders) {
      for (const room of rooms) {
        const n = perRoom.get(room)!.length;
        await awaitSeq(s.c, room, n, 5_000, `${s.user} (node ${s.node.id})`);
        const live = expectGapless(s.c, room, n, `${s.user} (node ${s.node.id})`);
        expect(live.map((m) => m.id)).toEqual(perRoom.get(room)!.sort((x, y) => x.seq - y.seq).map((a) => a.id));
      }
    }

    const rows = await storedMessages(db.url, rooms);
    expect(rows).toHaveLength(total);
    expect(new Set(rows.map((r) => r.id)).size, 'ids unique').toBe(total);
    const nodeOfUser = new Map(senders.map((s) => [s.user, s.node.id]));
    const ackByCid = new Map(acks.map((a) => [`${a.room}/${a.cid}`, a]));
    for (const room of rooms) {
      const rr = rows.filter((r) => r.room === room);
      expect(rr.map((r) => r.seq), `stored seqs of ${room}`).toEqual(Array.from({ length: perRoom.get(room)!.length }, (_, i) => i + 1));
      for (let i = 0; i < rr.length; i++) {
        const r = rr[i];
        expect(r.tsid, `tsid column of ${r.id}`).toBe(tsidOf(r.id).toString());
        expect(nodeOf(r.id), `node bits of ${r.id} (seq ${r.seq}, sent by ${r.from_id})`).toBe(nodeOfUser.get(r.from_id));
        expect(ackByCid.get(`${room}/${r.cid}`), `ack of ${r.cid}`).toMatchObject({ id: r.id, seq: r.seq });
        // the contract: ids are ordered like seq within a room
        if (i > 0) expect(BigInt(r.tsid) > BigInt(rr[i - 1].tsid), `${room}: id of seq ${r.seq} (${r.id}) after id of seq ${rr[i - 1].seq} (${rr[i - 1].id})`).toBe(true);
      }
    }
  }, 50_000);

  it('presence is cluster-wide: one ENTER for a user joined on two nodes, no QUIT until the last connection leaves, then exactly one', async () => {
    const cl = cluster(); // CHAT_ENTER_QUIT default: ENTER/QUIT in public rooms
    const [n1, n2, n3] = await cl.start([31, 32, 33]);
    const room = 'p3';
    const watcher = await cl.member(n3, 'pw', room);
    const a1 = await cl.member(n1, 'pu', room);
    const a2 = await cl.member(n2, 'pu', room);

    for (const n of [n1, n2, n3]) {
      await until(`online of ${room} on node ${n.id} to be [pu, pw]`, async () => {
        const list = await online(n, room);
        return JSON.stringify(list) === JSON.stringify(['pu', 'pw']) ? list : undefined;
      }, 5_000);
    }
    // A marker from the watcher: whatever the two joins posted is before it in the room.
    const m1 = await watcher.request({ op: 'send', room, text: 'marker 1', cid: 'pm1' });
    expect(m1.op).toBe('ack');
    await awaitSeq(watcher, room, m1.seq, 5_000, 'watcher');
    expect(countOf(everything(watcher, room), 'ENTER', 'pu'), 'ENTERs of pu seen by the watcher on node 3').toBe(1);

    expect(await a1.request({ op: 'leave', room })).toMatchObject({ op: 'left', room });
    const m2 = await a1.request({ op: 'send', room, text: 'marker 2', cid: 'pm2' });
    expect(m2.op).toBe('ack');
    await awaitSeq(watcher, room, m2.seq, 5_000, 'watcher');
    expect(countOf(everything(watcher, room), 'QUIT', 'pu'), 'QUIT of pu after leaving on node 1 only').toBe(0);
    for (const n of [n1, n2, n3]) expect(await online(n, room), `online on node ${n.id} with pu still on node 2`).toEqual(['pu', 'pw']);

    expect(await a2.request({ op: 'leave', room })).toMatchObject({ op: 'left', room });
    await watcher.waitFor((f) => f.op === 'msg' && f.room === room && f.type === 'QUIT' && f.from?.id === 'pu', 5_000, 'QUIT of pu');
    for (const n of [n1, n2, n3]) {
      await until(`online of ${room} on node ${n.id} to be [pw]`, async () => {
        const list = await online(n, room);
        return JSON.stringify(list) === JSON.stringify(['pw']) ? list : undefined;
      }, 5_000);
    }
    const m3 = await watcher.request({ op: 'send', room, text: 'marker 3', cid: 'pm3' });
    await awaitSeq(watcher, room, m3.seq, 5_000, 'watcher');
    const seen = everything(watcher, room);
    expectGapless(watcher, room, m3.seq, 'watcher');
    expect({ enter: countOf(seen, 'ENTER', 'pu'), quit: countOf(seen, 'QUIT', 'pu') }, 'ENTER/QUIT of pu seen by the watcher').toEqual({ enter: 1, quit: 1 });
    const rows = await storedMessages(db.url, [room]);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: m3.seq }, (_, i) => i + 1));
    expect(rows.filter((r) => r.from_id === 'pu' && r.type !== 'CHAT').map((r) => r.type), 'stored ENTER/QUIT of pu').toEqual(['ENTER', 'QUIT']);
  }, 40_000);

  it('a node killed with SIGKILL: its clients recover on survivors with since, its users QUIT once after the node timeout, the id is free again', async () => {
    const cl = cluster();
    const [n1, n2, n3] = await cl.start([41, 42, 43]);
    const room = 'd4';
    const watcher = await cl.member(n2, 'dw', room);
    const s1 = await cl.member(n1, 'ds1', room);
    const s2 = await cl.member(n2, 'ds2', room);
    const gone1 = await cl.member(n3, 'dg1', room); // only on the victim; does not come back (until the end)
    const gone2 = await cl.member(n3, 'dg2', room); // only on the victim; never comes back
    const back = await cl.member(n3, 'db', room); // only on the victim; reconnects to node 1 at once
    const bothV = await cl.member(n3, 'dboth', room); // on the victim and on node 1
    const bothL = await cl.member(n1, 'dboth', room);
    const everyone = ['db', 'dboth', 'dg1', 'dg2', 'ds1', 'ds2', 'dw'];
    await until('all 7 users online on node 1', async () => (JSON.stringify(await online(n1, room)) === JSON.stringify(everyone) ? true : undefined), 5_000);

    const a = [...(await awaitAcks(s1, sendMany(s1, room, 'a1', 5), 10_000, 'ds1')).values(), ...(await awaitAcks(s2, sendMany(s2, room, 'a2', 5), 10_000, 'ds2')).values()];
    const seqA = Math.max(...a.map((f) => f.seq));
    for (const c of [gone1, gone2, back, bothV]) await awaitSeq(c, room, seqA, 5_000, 'a victim client');

    // Sends in flight on the survivors while the victim dies.
    const bCids1 = sendMany(s1, room, 'b1', 10);
    const bCids2 = sendMany(s2, room, 'b2', 10);
    const killedAt = Date.now();
    expect(await n3.stop('SIGKILL')).toBeNull();
    await Promise.all([gone1, gone2, back, bothV].map((c) => c.closed));
    await awaitAcks(s1, bCids1, 10_000, 'ds1 (node 3 dying)');
    await awaitAcks(s2, bCids2, 10_000, 'ds2 (node 3 dying)');

    // The victim's clients that come back: join with since = the last id they saw.
    const recover = async (dead: Client, node: ClusterNode, user: string): Promise<Client> => {
      const seen = everything(dead, room);
      const last = seen[seen.length - 1];
      const c = await cl.connect(node, user);
      const j = await c.request({ op: 'join', room, since: last.id });
      expect(j, `${user} joining node ${node.id} since ${last.id} (seq ${last.seq})`).toMatchObject({ op: 'joined', room, recovered: true });
      expect(seqProblem(j.messages.map((m: Frame) => m.seq), last.seq + 1), `${user}: recovered page after seq ${last.seq}`).toBeNull();
      expect(last.seq + j.messages.length, `${user}: recovered page ends at joined.seq`).toBe(j.seq);
      return c;
    };
    const backR = await recover(back, n1, 'db');
    const bothR = await recover(bothV, n2, 'dboth');

    const c1 = await awaitAcks(s1, sendMany(s1, room, 'c1', 5), 10_000, 'ds1');
    const c2 = await awaitAcks(s2, sendMany(s2, room, 'c2', 5), 10_000, 'ds2');
    const cSeq = Math.max(...[...c1.values(), ...c2.values()].map((f) => f.seq));
    for (const [c, who] of [[backR, 'db on node 1'], [bothR, 'dboth on node 2']] as const) await awaitSeq(c, room, cSeq, 5_000, who);

    // Reaping: dg1 and dg2 were online only on the dead node.
    const quitBudget = NODE_TIMEOUT_MS + 3_000;
    for (const u of ['dg1', 'dg2']) {
      await watcher.waitFor((f) => f.op === 'msg' && f.room === room && f.type === 'QUIT' && f.from?.id === u,
        Math.max(1, killedAt + quitBudget - Date.now()), `QUIT of ${u} within ${quitBudget} ms of the kill`);
    }
    const survivorsOnline = ['db', 'dboth', 'ds1', 'ds2', 'dw'];
    for (const n of [n1, n2]) {
      await until(`online on node ${n.id} without dg1, dg2`, async () => (JSON.stringify(await online(n, room)) === JSON.stringify(survivorsOnline) ? true : undefined),
        Math.max(1, killedAt + quitBudget + 1_000 - Date.now()));
    }

    // The dead node's id is free again: a new process with CHAT_NODE_ID=43 starts (its holder is dead).
    const n3b = await cl.startNode(43);
    const g1 = await recover(gone1, n3b, 'dg1');
    const fin = await s1.request({ op: 'send', room, text: 'final', cid: 'dfinal' });
    expect(fin.op).toBe('ack');
    const members: [Client, string][] = [[watcher, 'dw'], [s1, 'ds1'], [s2, 'ds2'], [bothL, 'dboth on node 1'], [backR, 'db (recovered)'], [bothR, 'dboth (recovered)'], [g1, 'dg1 (on the new node 43)']];
    for (const [c, who] of members) {
      await awaitSeq(c, room, fin.seq, 10_000, who);
      expectGapless(c, room, fin.seq, who);
    }
    const seen = everything(watcher, room);
    expect({
      dg1: [countOf(seen, 'ENTER', 'dg1'), countOf(seen, 'QUIT', 'dg1')],
      dg2: [countOf(seen, 'ENTER', 'dg2'), countOf(seen, 'QUIT', 'dg2')],
      db: [countOf(seen, 'ENTER', 'db'), countOf(seen, 'QUIT', 'db')],
      dboth: [countOf(seen, 'ENTER', 'dboth'), countOf(seen, 'QUIT', 'dboth')],
    }, '[ENTER, QUIT] per user seen by the watcher (dg1 came back on the new node: a second ENTER)').toEqual({ dg1: [2, 1], dg2: [1, 1], db: [1, 0], dboth: [1, 0] });
    const rows = await storedMessages(db.url, [room]);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: fin.seq }, (_, i) => i + 1));
    expect(rows.map((r) => r.id)).toEqual(everything(watcher, room).map((m) => m.id));
    expect(lastSeq(watcher, room)).toBe(fin.seq);
  }, 50_000);

  it('Redis shut down and started again under traffic: sends keep their acks, every member ends with the complete stream, presence comes back', async () => {
    const cl = cluster(); // ENTER/QUIT on: a node wrongly reaped during the outage would post QUITs
    const nodes = await cl.start([51, 52, 53]);
    const [n1, n2, n3] = nodes;
    const room = 'r5';
    const m1 = await cl.member(n1, 'r1', room);
    const m2 = await cl.member(n2, 'r2', room);
    const m3 = await cl.member(n3, 'r3', room);
    const members: [Client, string][] = [[m1, 'r1 on node 51'], [m2, 'r2 on node 52'], [m3, 'r3 on node 53']];
    for (const n of nodes) {
      await until(`online on node ${n.id}`, async () => (JSON.stringify(await online(n, room)) === '["r1","r2","r3"]' ? true : undefined), 5_000);
      expect(await health(n)).toMatchObject({ ok: true, cluster: { node: n.id, bus: 'up' } });
    }
    /** m1 (node 51) and m2 (node 52) send `n` each, interleaved; the highest acked seq of each. */
    const phase = async (tag: string, n: number): Promise<{ s1: number; s2: number; max: number }> => {
      const cids1: string[] = [];
      const cids2: string[] = [];
      for (let i = 0; i < n; i++) { cids1.push(...sendMany(m1, room, `${tag}1.${i}`, 1)); cids2.push(...sendMany(m2, room, `${tag}2.${i}`, 1)); }
      const top = (acks: Map<string, Frame>): number => Math.max(...[...acks.values()].map((f) => f.seq));
      const s1 = top(await awaitAcks(m1, cids1, 15_000, `r1, phase ${tag}`));
      const s2 = top(await awaitAcks(m2, cids2, 15_000, `r2, phase ${tag}`));
      return { s1, s2, max: Math.max(s1, s2) };
    };

    const seqA = (await phase('a', 5)).max;
    for (const [c, who] of members) await awaitSeq(c, room, seqA, 5_000, who);

    let seqB = 0;
    try {
      await redis.stop();
      const downAt = Date.now();
      const b = await phase('b', 10);
      seqB = b.max;
      // Down: a sender's node still delivers everything up to its own last commit (it fills the
      // other node's seqs from the database when it sees its own later seq).
      await awaitSeq(m1, room, b.s1, 5_000, 'r1 on node 51 while Redis is down');
      await awaitSeq(m2, room, b.s2, 5_000, 'r2 on node 52 while Redis is down');
      expect(seqProblem(streamOf(m1, room).live.map((m) => m.seq as number), streamOf(m1, room).joined.seq + 1), 'r1 while Redis is down').toBeNull();
      expect(seqProblem(streamOf(m2, room).live.map((m) => m.seq as number), streamOf(m2, room).joined.seq + 1), 'r2 while Redis is down').toBeNull();
      for (const n of nodes) {
        await awaitBus(n, 'down', 5_000);
      }
      // The outage lasts longer than CHAT_NODE_TIMEOUT on purpose: nodes that hear nothing from
      // each other for that long must still not reap each other once Redis is back.
      const rest = downAt + NODE_TIMEOUT_MS + 500 - Date.now();
      if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    } finally {
      await redis.ensure();
    }

    for (const n of nodes) {
      await awaitBus(n, 'up', 10_000);
    }
    // Back: each node sweeps the rooms it serves, so every member catches up on what was committed
    // during the outage without waiting for a later message (node 53 only received, never sent).
    const upAt = Date.now();
    for (const [c, who] of members) await awaitSeq(c, room, seqB, Math.max(1, upAt + 5_000 - Date.now()), `${who}, within 5 s of the bus being up again`);
    for (const n of nodes) {
      await until(`online on node ${n.id} after the restart to be [r1, r2, r3]`, async () => (JSON.stringify(await online(n, room)) === '["r1","r2","r3"]' ? true : undefined), 10_000);
    }
    await phase('c', 5);
    const fin = await m3.request({ op: 'send', room, text: 'final', cid: 'rfinal' });
    expect(fin.op).toBe('ack');
    const rows = await storedMessages(db.url, [room]);
    expect(rows.map((r) => r.seq), 'stored seqs').toEqual(Array.from({ length: fin.seq }, (_, i) => i + 1));
    for (const [c, who] of members) {
      await awaitSeq(c, room, fin.seq, 15_000, who);
      const live = expectGapless(c, room, fin.seq, who);
      const joinedSeq = streamOf(c, room).joined.seq as number;
      expect(live.map((m) => m.id), `${who}: live ids = stored ids after joined.seq`).toEqual(rows.slice(joinedSeq).map((r) => r.id));
    }
    expect(rows.filter((r) => r.type === 'QUIT').map((r) => r.from_id), 'QUITs posted during the Redis outage').toEqual([]);
    expect(rows.filter((r) => r.type === 'ENTER').map((r) => r.from_id).sort()).toEqual(['r1', 'r2', 'r3']);
  }, 55_000);

  it('a gap the store cannot fill (seqs committed, then gone from the store) tells the members to reload: joined with recovered false, then the live stream goes on', async () => {
    const room = 'lost';
    const { n1, n2, a, b } = await pair([71, 72], room, ['ga', 'gb']);
    await awaitAcks(a, sendMany(a, room, 'pre', 2), 5_000, 'ga');
    await awaitSeq(b, room, 2, 5_000, 'gb before the outage');
    try {
      await redis.stop();
      await awaitBus(n2, 'down', 5_000);
      // Seqs 3..5 were committed and are gone (retention, or a host-app purge) before node 72 read
      // them: the room's last seq says 5, the store has nothing after 2.
      const c = await mysql.createConnection({ uri: db.url });
      await c.query('UPDATE rooms SET last_seq = last_seq + 3 WHERE id = ?', [room]);
      await c.end();
      // While the bus is down, node 72 compares its rooms with the store every second.
      const reset = await b.waitFor((f) => f.op === 'joined' && f.room === room && f.recovered === false, 6_000, 'unsolicited joined recovered:false');
      expect(reset.seq).toBe(5);
    } finally {
      await redis.start();
    }
    await awaitBus(n1, 'up', 5_000);
    await awaitAcks(a, sendMany(a, room, 'post', 1), 5_000, 'ga after the outage');
    const after = await b.waitFor((f) => f.op === 'msg' && f.room === room && f.seq === 6, 10_000, 'seq 6 on node 72');
    expect(after.text).toBe('post #0');
    // Nothing of seqs 3..5 reached gb, and nothing was repeated.
    const seen = b.frames.filter((f) => f.op === 'msg' && f.room === room).map((f) => f.seq);
    expect(seen).toEqual([1, 2, 6].filter((q) => q > streamOf(b, room).joined.seq));
  });

  it('a node whose Redis command connection alone is killed comes back up and publishes again', async () => {
    const room = 'kill-conn';
    const { n2, a, b } = await pair([81, 82], room, ['ka', 'kb']);
    // Kill node 82's command connection (not its subscriber): a proxy or NAT reset does this.
    const list = await runRedis(['CLIENT', 'LIST']);
    const line = list.split('\n').find((l) => l.includes('name=chat-node-82 '));
    expect(line, 'node 82 names its command connection').toBeDefined();
    const addr = /addr=(\S+)/.exec(line!)![1];
    await runRedis(['CLIENT', 'KILL', addr]);
    await awaitBus(n2, 'up', 5_000);
    const t0 = Date.now();
    await awaitAcks(b, sendMany(b, room, 'after-kill', 1), 5_000, 'kb');
    await awaitSeq(a, room, 1, 2_000, 'ka on node 81');
    expect(Date.now() - t0, 'delivered over the bus, not by a sweep').toBeLessThan(1_500);
  });

  it('while Redis is down, a node that only receives still gets the other nodes\' messages (from the store, within seconds)', async () => {
    const room = 'down-recv';
    const { n2, a, b } = await pair([83, 84], room, ['da', 'db']);
    try {
      await redis.stop();
      await awaitBus(n2, 'down', 5_000);
      await awaitAcks(a, sendMany(a, room, 'while-down', 2), 5_000, 'da');
      await awaitSeq(b, room, 2, 4_000, 'db on node 84 while Redis is down');
    } finally {
      await redis.start();
    }
  });

  it('a room deleted while a join waits on Redis for its presence: the join gets not_found, and the presence is given back', async () => {
    const token = 'cluster-admin-token-0123456789';
    const admin = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const cl = cluster({ CHAT_ADMIN_TOKEN: token }); // group rooms announce no ENTER (CHAT_ENTER_QUIT=public)
    const [n1] = await cl.start([91]);
    const created = await fetch(`${n1.http}/api/rooms`, { method: 'POST', headers: admin, body: JSON.stringify({ kind: 'group', members: ['gd'] }) });
    expect(created.status).toBe(201);
    const room = ((await created.json()) as Frame).id as string;
    const c = await cl.connect(n1, 'gd');
    // Hold Redis writes (the join's presence script among them) for a moment. Kept well under
    // CHAT_NODE_TIMEOUT: other test files' clusters share this Redis and must not look dead.
    await runRedis(['CLIENT', 'PAUSE', '600', 'WRITE']);
    const reply = c.request({ op: 'join', room });
    await new Promise((r) => setTimeout(r, 150));
    // Meanwhile the room is deleted (here; a delete on another node reaches this one as a control event).
    expect((await fetch(`${n1.http}/api/rooms/${room}`, { method: 'DELETE', headers: admin })).status).toBe(200);
    expect(await reply).toMatchObject({ op: 'error', code: 'not_found' });
    await until('the presence the join took to be given back', async () => {
      const everyone = await runRedis(['HGETALL', `${cl.prefix}:pres:${room}`]);
      const node = await runRedis(['HGETALL', `${cl.prefix}:presn:91`]);
      return everyone.trim() === '' && !node.includes(room) ? true : undefined;
    }, 5_000);
    expect(c.frames.some((f) => f.op === 'joined')).toBe(false);
  });

  it('presence stays exact: a restarted node posts the QUITs of its previous life, two display names of one user, a leave while Redis is down', async () => {
    const cl = cluster();
    const [n1, n2] = await cl.start([85, 86]);
    const room = 'pres-edge';
    const watcher = await cl.member(n2, 'w', room);
    // Two connections of one user with different names on one node: one ENTER, one QUIT.
    const alice = await cl.member(n1, 'pu', room);
    const bob = await cl.connect(n1, 'pu', 'Other Name');
    await bob.request({ op: 'join', room });
    await alice.close();
    await bob.close();
    await watcher.waitFor((f) => f.op === 'msg' && f.type === 'QUIT' && f.from?.id === 'pu', 5_000, 'QUIT of pu');
    await until('pu offline', async () => (JSON.stringify(await online(n2, room)) === '["w"]' ? true : undefined), 5_000);
    // A leave while Redis is down: reconciled when it is back (QUIT posted, not online).
    const carol = await cl.member(n1, 'pc', room);
    await until('pc online', async () => ((await online(n2, room)).includes('pc') ? true : undefined), 5_000);
    try {
      await redis.stop();
      await awaitBus(n1, 'down', 5_000);
      await carol.close();
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      await redis.start();
    }
    await until('pc offline after Redis is back', async () => {
      try {
        return (await online(n2, room)).includes('pc') ? undefined : true;
      } catch {
        return undefined;
      }
    }, 8_000);
    await watcher.waitFor((f) => f.op === 'msg' && f.type === 'QUIT' && f.from?.id === 'pc', 8_000, 'QUIT of pc');
    // A node killed and restarted with its id before anyone reaped it posts its users' QUITs itself.
    await cl.member(n1, 'pd', room);
    await until('pd online', async () => ((await online(n2, room)).includes('pd') ? true : undefined), 5_000);
    await n2.stop('SIGTERM'); // no survivor to reap node 85
    const rows0 = await storedMessages(db.url, [room]);
    expect(rows0.filter((r) => r.type === 'QUIT' && r.from_id === 'pd')).toHaveLength(0);
    await n1.stop('SIGKILL');
    await cl.startNode(85);
    await until('QUIT of pd stored by the restarted node 85', async () => {
      const rows = await storedMessages(db.url, [room]);
      return rows.some((r) => r.type === 'QUIT' && r.from_id === 'pd') ? true : undefined;
    }, 8_000);
  });

  it('a node listens to a room\'s channel only while it serves the room: joins add it, the last leave drops it after the idle time, a room that does not exist is never kept', async () => {
    const cl = cluster({ CHAT_ENTER_QUIT: 'off' });
    const [a, b] = await cl.start([31, 32]);
    const subscribers = async (room: string): Promise<number> => Number((await runRedis(['PUBSUB', 'NUMSUB', `${cl.prefix}:r:${room}`])).trim().split('\n')[1]);
    await cl.member(a, 'sub-a', 'subs1');
    expect(await subscribers('subs1'), 'node 31 serves subs1').toBe(1);
    const onB = await cl.member(b, 'sub-b', 'subs1');
    expect(await subscribers('subs1'), 'nodes 31 and 32 serve subs1').toBe(2);
    await onB.close();
    // node 32 keeps the channel for 5 s after its last member (a quick rejoin reloads nothing), then drops it
    const dropped = Date.now();
    await until('node 32 to drop the channel of subs1', async () => ((await subscribers('subs1')) === 1 ? true : undefined), 20_000, 250);
    expect(Date.now() - dropped, 'dropped after the idle time, not at once').toBeGreaterThanOrEqual(3_000);
    // A read of a room that does not exist subscribes before it loads, learns there is no room, and unsubscribes.
    for (const node of [a, b]) {
      const res = await getJson(`${node.http}/api/rooms/nosuch-${node.id}/messages`);
      expect(res.status, `history of a missing room on node ${node.id}`).toBe(404);
    }
    await until('no node to keep a missing room\'s channel', async () => ((await subscribers('nosuch-31')) + (await subscribers('nosuch-32')) === 0 ? true : undefined), 3_000, 100);
    // and the member on node 31 still has its channel
    expect(await subscribers('subs1')).toBe(1);
  }, 40_000);

  it('refuses to start: sqlite store, no CHAT_NODE_ID, immediate delivery, a node id held by a live node', async () => {
    const cl = cluster();
    const base = nodeEnv(db.url, cl.prefix, 61, {}, redis);
    const [sqlite, noId, immediate] = await Promise.all([
      runBounded({ ...base, CHAT_STORE: `sqlite:${tempDir()}/c.db` }, 15_000),
      runBounded({ ...base, CHAT_NODE_ID: '' }, 15_000), // empty = unset
      runBounded({ ...base, CHAT_DELIVERY: 'immediate' }, 15_000),
    ]);
    expect(sqlite, 'CHAT_REDIS_URL with a sqlite CHAT_STORE').toMatchObject({ code: 2, stderr: expect.stringContaining('CHAT_REDIS_URL') });
    expect(noId, 'CHAT_REDIS_URL without CHAT_NODE_ID').toMatchObject({ code: 2, stderr: expect.stringContaining('CHAT_NODE_ID') });
    expect(immediate, 'CHAT_REDIS_URL with CHAT_DELIVERY=immediate').toMatchObject({ code: 2, stderr: expect.stringContaining('CHAT_DELIVERY') });

    // The same settings with a MySQL store and a node id start (the refusals are about what they name).
    const live = await cl.startNode(61);
    expect(await health(live)).toMatchObject({ ok: true, cluster: { node: 61, bus: 'up' } });
    const dup = await runBounded(nodeEnv(db.url, cl.prefix, 61, {}, redis), NODE_TIMEOUT_MS + 8_000);
    expect(dup.timedOut, `a second node 61 on the same prefix was still running after ${dup.ms} ms: ${dup.stdout.slice(-300)} ${dup.stderr.slice(-300)}`).toBe(false);
    expect(dup.code, `second node 61: stderr ${dup.stderr.slice(-500)}`).toBe(2);
    expect(dup.ms, 'second node 61 exits within CHAT_NODE_TIMEOUT plus a few seconds').toBeLessThan(NODE_TIMEOUT_MS + 5_000);
    expect(await health(live)).toMatchObject({ ok: true, cluster: { node: 61, bus: 'up' } });
    expect(live.proc.exitCode).toBeNull();
    // Other ids on the same prefix, and the same id under another prefix (another cluster), are fine.
    const other = await cl.startNode(62);
    expect(await health(other)).toMatchObject({ cluster: { node: 62 } });
    const elsewhere = cluster();
    const same = await elsewhere.startNode(61);
    expect(await health(same)).toMatchObject({ cluster: { node: 61, bus: 'up' } });
  }, 45_000);
});

afterAll(async () => { await REDIS?.close(); });
