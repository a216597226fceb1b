// Webhooks in a cluster (two engine processes, MariaDB, Redis) and one real receiver: every event
// is delivered by exactly one node, each room's in order, and a message's recipients leave out
// members joined on the other node (presence is Redis's).

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, redisAvailable } from './support/cluster.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';
import { inRoomOrder, Receiver } from './webhook-receiver.ts';

const HAVE_SERVICES = (await redisAvailable()) && (await mysqlAvailable());
const ADMIN = 'test-admin-token-0123456789';
const SECRET = 'webhook-secret-0123456789abcdef';

describe.runIf(HAVE_SERVICES)('webhooks in a cluster (2 nodes, MariaDB, Redis)', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let receiver: Receiver;
  let cl: Cluster | null = null;

  beforeAll(async () => {
    db = await freshDatabase();
    receiver = await Receiver.start(SECRET);
  });
  afterEach(async () => { await cl?.stop(); });
  afterAll(async () => {
    await receiver?.close();
    await db?.drop();
  });

  it('delivers each event once from one node, in room order, recipients from cluster-wide presence', async () => {
    cl = new Cluster(db.url, { CHAT_ENTER_QUIT: 'off', CHAT_ADMIN_TOKEN: ADMIN, CHAT_HTTP_RATE: '0', CHAT_WEBHOOK_URL: receiver.url, CHAT_WEBHOOK_SECRET: SECRET });
    const [n1, n2] = await cl.start([1, 2]);
    for (const id of ['g', 'h']) {
      const r = await fetch(`${n1.http}/api/rooms`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ id, kind: 'group', members: ['ann', 'ben', 'cleo'] }) });
      expect(r.status).toBe(201);
    }
    const ann = await cl.connect(n1, 'ann');
    const ben = await cl.connect(n2, 'ben');
    for (const room of ['g', 'h']) {
      expect((await ann.request({ op: 'join', room })).op).toBe('joined');
      expect((await ben.request({ op: 'join', room })).op).toBe('joined');
    }
    for (let i = 0; i < 50; i++) {
      for (const room of ['g', 'h']) {
        ann.send({ op: 'send', room, text: `a${i}`, cid: `a-${room}-${i}` });
        ben.send({ op: 'send', room, text: `b${i}`, cid: `b-${room}-${i}` });
      }
    }
    for (let i = 0; i < 50; i++) {
      for (const room of ['g', 'h']) {
        await ann.op('ack', (f) => f.cid === `a-${room}-${i}`, 30_000);
        await ben.op('ack', (f) => f.cid === `b-${room}-${i}`, 30_000);
      }
    }
    const msgs = (): number => [...receiver.deliveredById().values()].filter((e) => e.type === 'message.created').length;
    await receiver.waitFor('200 message events', () => msgs() === 200, 60_000);
    expect(receiver.requests.every((r) => r.verified && r.status === 200)).toBe(true);
    const delivered = receiver.delivered();
    expect(delivered.length, 'no event delivered twice (no attempt failed)').toBe(new Set(delivered.map((e) => e.id)).size);
    expect(inRoomOrder(delivered)).toBe(true);
    for (const room of ['g', 'h']) {
      const evts = delivered.filter((e) => e.type === 'message.created' && e.room === room).sort((x, y) => Number(x.id) - Number(y.id));
      expect(evts.map((e) => e.message.seq), `${room}: event ids follow seq`).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      // Each sender's partner is joined on the other node: only cleo gets the push.
      expect(new Set(evts.map((e) => JSON.stringify(e.recipients)))).toEqual(new Set([JSON.stringify(['cleo'])]));
    }
  }, 120_000);
});
