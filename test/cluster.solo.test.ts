// Cluster mode, what is bounded in time (solo project: alone on the box, so a neighbour's CPU does
// not move the figures): a killed node's users QUIT within CHAT_NODE_TIMEOUT + 3 s, members catch
// up within 5 s of Redis being back, a node that only receives catches up from the store while
// Redis is down, a message goes over the bus (not a store sweep) after the command connection is
// killed, and a room's channel is kept for its idle time. Same frame as test/cluster.test.ts.

import { describe, expect, it } from 'vitest';
import { awaitAcks, awaitBus, awaitSeq, health, lastSeq, online, seqProblem, storedMessages, streamOf } from './cluster-helpers.ts';
import { getJson, type Client, type Frame } from './support/client.ts';
import { NODE_TIMEOUT_MS, type ClusterNode } from './support/cluster.ts';
import { until } from './support/wait.ts';
import { clusterServices, countOf, everything, expectGapless, runRedis, sendMany, useClusterSuite } from './cluster-suite.ts';

const REDIS = await clusterServices();

describe.runIf(REDIS !== null)('cluster mode, bounded in time (MariaDB, Redis)', () => {
  const redis = REDIS!;
  const suite = useClusterSuite(redis);
  const { cluster, pair } = suite;

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
    const rows = await storedMessages(suite.dbUrl, [room]);
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
    const rows = await storedMessages(suite.dbUrl, [room]);
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

  it('a node whose Redis command connection alone is killed comes back up and publishes again', async () => {
    const room = 'kill-conn';
    const { n2, a, b } = await pair([81, 82], room, ['ka', 'kb']);
    // Kill node 82's command connection (not its subscriber): a proxy or NAT reset does this.
    const list = await runRedis(redis, ['CLIENT', 'LIST']);
    const line = list.split('\n').find((l) => l.includes('name=chat-node-82 '));
    expect(line, 'node 82 names its command connection').toBeDefined();
    const addr = /addr=(\S+)/.exec(line!)![1];
    await runRedis(redis, ['CLIENT', 'KILL', addr]);
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

  it('a node listens to a room\'s channel only while it serves the room: joins add it, the last leave drops it after the idle time, a room that does not exist is never kept', async () => {
    const cl = cluster({ CHAT_ENTER_QUIT: 'off' });
    const [a, b] = await cl.start([31, 32]);
    const subscribers = async (room: string): Promise<number> => Number((await runRedis(redis, ['PUBSUB', 'NUMSUB', `${cl.prefix}:r:${room}`])).trim().split('\n')[1]);
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
});
