// Cluster mode (CHAT_REDIS_URL): real engine processes on one MariaDB database and a private
// redis-server (test/cluster-suite.ts), each test's cluster under its own CHAT_REDIS_PREFIX and
// node ids. Cross-node delivery, ordering under concurrent load (audited in the database),
// cluster-wide presence, gaps the store cannot fill, a join racing a room's deletion, presence
// edge cases, and the start-up refusals. What is bounded in time (a node's death noticed within
// the node timeout, catching up after Redis is back, the idle time of a channel) is
// test/cluster.solo.test.ts. Needs redis-server (the binary) and MariaDB (CHAT_TEST_MYSQL_URL):
// under CI=true a missing one fails the file; elsewhere the file skips with a loud warning.

import { describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import { awaitAcks, awaitBus, awaitSeq, health, nodeOf, online, storedMessages, streamOf, tsidOf } from './cluster-helpers.ts';
import { metric } from './reliability-helpers.ts';
import type { Client, Frame } from './support/client.ts';
import { NODE_TIMEOUT_MS, nodeEnv, type ClusterNode } from './support/cluster.ts';
import { runBounded, tempDir } from './support/engine.ts';
import { until } from './support/wait.ts';
import { clusterServices, countOf, everything, expectGapless, runRedis, sendMany, useClusterSuite } from './cluster-suite.ts';

const REDIS = await clusterServices();

describe.runIf(REDIS !== null)('cluster mode (3 nodes, MariaDB, Redis)', () => {
  const redis = REDIS!;
  const suite = useClusterSuite(redis);
  const { cluster, pair } = suite;

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
    for (const [i, m] of members.entries()) {
      await awaitSeq(m, room, 3 * PER, 20_000, `member on node ${nodes[i].id}`);
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
    }
  }, 90_000);

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
        await awaitSeq(s.c, room, n, 20_000, `${s.user} (node ${s.node.id})`);
        const live = expectGapless(s.c, room, n, `${s.user} (node ${s.node.id})`);
        expect(live.map((m) => m.id)).toEqual(perRoom.get(room)!.sort((x, y) => x.seq - y.seq).map((a) => a.id));
      }
    }

    const rows = await storedMessages(suite.dbUrl, rooms);
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
  }, 90_000);

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
      }, 20_000);
    }
    // A marker from the watcher: whatever the two joins posted is before it in the room.
    const m1 = await watcher.request({ op: 'send', room, text: 'marker 1', cid: 'pm1' });
    expect(m1.op).toBe('ack');
    await awaitSeq(watcher, room, m1.seq, 20_000, 'watcher');
    expect(countOf(everything(watcher, room), 'ENTER', 'pu'), 'ENTERs of pu seen by the watcher on node 3').toBe(1);

    expect(await a1.request({ op: 'leave', room })).toMatchObject({ op: 'left', room });
    const m2 = await a1.request({ op: 'send', room, text: 'marker 2', cid: 'pm2' });
    expect(m2.op).toBe('ack');
    await awaitSeq(watcher, room, m2.seq, 20_000, 'watcher');
    expect(countOf(everything(watcher, room), 'QUIT', 'pu'), 'QUIT of pu after leaving on node 1 only').toBe(0);
    for (const n of [n1, n2, n3]) expect(await online(n, room), `online on node ${n.id} with pu still on node 2`).toEqual(['pu', 'pw']);

    expect(await a2.request({ op: 'leave', room })).toMatchObject({ op: 'left', room });
    await watcher.waitFor((f) => f.op === 'msg' && f.room === room && f.type === 'QUIT' && f.from?.id === 'pu', 20_000, 'QUIT of pu');
    for (const n of [n1, n2, n3]) {
      await until(`online of ${room} on node ${n.id} to be [pw]`, async () => {
        const list = await online(n, room);
        return JSON.stringify(list) === JSON.stringify(['pw']) ? list : undefined;
      }, 20_000);
    }
    const m3 = await watcher.request({ op: 'send', room, text: 'marker 3', cid: 'pm3' });
    await awaitSeq(watcher, room, m3.seq, 20_000, 'watcher');
    const seen = everything(watcher, room);
    expectGapless(watcher, room, m3.seq, 'watcher');
    expect({ enter: countOf(seen, 'ENTER', 'pu'), quit: countOf(seen, 'QUIT', 'pu') }, 'ENTER/QUIT of pu seen by the watcher').toEqual({ enter: 1, quit: 1 });
    const rows = await storedMessages(suite.dbUrl, [room]);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: m3.seq }, (_, i) => i + 1));
    expect(rows.filter((r) => r.from_id === 'pu' && r.type !== 'CHAT').map((r) => r.type), 'stored ENTER/QUIT of pu').toEqual(['ENTER', 'QUIT']);
  }, 90_000);

  it('a gap the store cannot fill (seqs committed, then gone from the store) tells the members to reload: joined with recovered false, then the live stream goes on', async () => {
    const room = 'lost';
    const { n1, n2, a, b } = await pair([71, 72], room, ['ga', 'gb']);
    await awaitAcks(a, sendMany(a, room, 'pre', 2), 20_000, 'ga');
    await awaitSeq(b, room, 2, 20_000, 'gb before the outage');
    try {
      await redis.stop();
      await awaitBus(n2, 'down', 20_000);
      // Seqs 3..5 were committed and are gone (retention, or a host-app purge) before node 72 read
      // them: the room's last seq says 5, the store has nothing after 2.
      const c = await mysql.createConnection({ uri: suite.dbUrl });
      await c.query('UPDATE rooms SET last_seq = last_seq + 3 WHERE id = ?', [room]);
      await c.end();
      // While the bus is down, node 72 compares its rooms with the store every second.
      const reset = await b.waitFor((f) => f.op === 'joined' && f.room === room && f.recovered === false, 20_000, 'unsolicited joined recovered:false');
      expect(reset.seq).toBe(5);
    } finally {
      await redis.start();
    }
    await awaitBus(n1, 'up', 20_000);
    await awaitAcks(a, sendMany(a, room, 'post', 1), 20_000, 'ga after the outage');
    const after = await b.waitFor((f) => f.op === 'msg' && f.room === room && f.seq === 6, 10_000, 'seq 6 on node 72');
    expect(after.text).toBe('post #0');
    // Nothing of seqs 3..5 reached gb, and nothing was repeated.
    const seen = b.frames.filter((f) => f.op === 'msg' && f.room === room).map((f) => f.seq);
    expect(seen).toEqual([1, 2, 6].filter((q) => q > streamOf(b, room).joined.seq));
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
    // Hold Redis writes (the join's presence script among them) for a while (this file's own
    // Redis; the one node has no peer to think it dead), and see the join's write wait there.
    await runRedis(redis, ['CLIENT', 'PAUSE', '1500', 'WRITE']);
    const reply = c.request({ op: 'join', room });
    await until('the join\'s presence write to wait on the paused Redis', async () => (/blocked_clients:[1-9]/.test(await runRedis(redis, ['INFO', 'clients'])) ? true : undefined), 1_500, 10);
    // Meanwhile the room is deleted (here; a delete on another node reaches this one as a control event).
    expect((await fetch(`${n1.http}/api/rooms/${room}`, { method: 'DELETE', headers: admin })).status).toBe(200);
    expect(await reply).toMatchObject({ op: 'error', code: 'not_found' });
    await until('the presence the join took to be given back', async () => {
      const everyone = await runRedis(redis, ['HGETALL', `${cl.prefix}:pres:${room}`]);
      const node = await runRedis(redis, ['HGETALL', `${cl.prefix}:presn:91`]);
      return everyone.trim() === '' && !node.includes(room) ? true : undefined;
    }, 20_000);
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
    await until('pu offline', async () => (JSON.stringify(await online(n2, room)) === '["w"]' ? true : undefined), 20_000);
    // A leave while Redis is down: reconciled when it is back (QUIT posted, not online).
    const carol = await cl.member(n1, 'pc', room);
    await until('pc online', async () => ((await online(n2, room)).includes('pc') ? true : undefined), 20_000);
    try {
      await redis.stop();
      await awaitBus(n1, 'down', 20_000);
      await carol.close();
      await until('node 85 to see the close', async () => ((await metric(n1.http, 'chat_connections')) === 0 ? true : undefined), 20_000);
    } finally {
      await redis.start();
    }
    await until('pc offline after Redis is back', async () => {
      try {
        return (await online(n2, room)).includes('pc') ? undefined : true;
      } catch {
        return undefined;
      }
    }, 20_000);
    await watcher.waitFor((f) => f.op === 'msg' && f.type === 'QUIT' && f.from?.id === 'pc', 8_000, 'QUIT of pc');
    // A node killed and restarted with its id before anyone reaped it posts its users' QUITs itself.
    await cl.member(n1, 'pd', room);
    await until('pd online', async () => ((await online(n2, room)).includes('pd') ? true : undefined), 20_000);
    await n2.stop('SIGTERM'); // no survivor to reap node 85
    const rows0 = await storedMessages(suite.dbUrl, [room]);
    expect(rows0.filter((r) => r.type === 'QUIT' && r.from_id === 'pd')).toHaveLength(0);
    await n1.stop('SIGKILL');
    await cl.startNode(85);
    await until('QUIT of pd stored by the restarted node 85', async () => {
      const rows = await storedMessages(suite.dbUrl, [room]);
      return rows.some((r) => r.type === 'QUIT' && r.from_id === 'pd') ? true : undefined;
    }, 20_000);
  });

  it('refuses to start: sqlite store, no CHAT_NODE_ID, immediate delivery, a node id held by a live node', async () => {
    const cl = cluster();
    const base = nodeEnv(suite.dbUrl, cl.prefix, 61, {}, redis);
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
    const dup = await runBounded(nodeEnv(suite.dbUrl, cl.prefix, 61, {}, redis), NODE_TIMEOUT_MS + 8_000);
    expect(dup.timedOut, `a second node 61 on the same prefix was still running after ${dup.ms} ms: ${dup.stdout.slice(-300)} ${dup.stderr.slice(-300)}`).toBe(false);
    expect(dup.code, `second node 61: stderr ${dup.stderr.slice(-500)}`).toBe(2);
    expect(await health(live)).toMatchObject({ ok: true, cluster: { node: 61, bus: 'up' } });
    expect(live.proc.exitCode).toBeNull();
    // Other ids on the same prefix, and the same id under another prefix (another cluster), are fine.
    const other = await cl.startNode(62);
    expect(await health(other)).toMatchObject({ cluster: { node: 62 } });
    const elsewhere = cluster();
    const same = await elsewhere.startNode(61);
    expect(await health(same)).toMatchObject({ cluster: { node: 61, bus: 'up' } });
  }, 90_000);
});
