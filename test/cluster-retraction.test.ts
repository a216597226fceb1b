// Deletes, edits and read receipts in cluster mode: real engine processes on one MariaDB database
// and the local Redis (this suite's own CHAT_REDIS_PREFIX; it never stops Redis). The other node's
// hot window drops the old text too, and receipts reach members on every node.
// Needs Redis and MariaDB: under CI=true a missing one fails the file; elsewhere a loud skip.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, type Frame } from './support/client.ts';
import { Cluster, redisAvailable } from './support/cluster.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

const HAVE_SERVICES = (await redisAvailable()) && (await mysqlAvailable());
const ADMIN = 'cluster-admin-token-0123456789';

describe.runIf(HAVE_SERVICES)('cluster: deletes, edits and read receipts', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let cl: Cluster;
  beforeAll(async () => {
    db = await freshDatabase();
    cl = new Cluster(db.url, { CHAT_ENTER_QUIT: 'off', CHAT_HTTP_RATE: '0', CHAT_ADMIN_TOKEN: ADMIN, CHAT_TEST_HOOKS: '1' });
    await cl.start([41, 42]);
  });
  afterAll(async () => {
    await cl?.stop();
    await db?.drop();
  });

  it("a delete and an edit on one node reach the other node's members, and its hot window no longer has the old text", async () => {
    const [n1, n2] = cl.nodes;
    const a = await cl.member(n1, 'ca', 'cret');
    const b = await cl.member(n2, 'cb', 'cret');
    const m1 = await a.request({ op: 'send', room: 'cret', text: 'secret one', cid: 'c1' });
    const m2 = await a.request({ op: 'send', room: 'cret', text: 'draft', cid: 'c2' });
    await b.msgs('cret', 2);
    // The edit goes through the other node, as the same user.
    const a2 = await cl.connect(n2, 'ca');
    expect(await a2.request({ op: 'edit', room: 'cret', id: m2.id, text: 'final', cid: 'c3' })).toMatchObject({ op: 'ack', target: m2.id, seq: 3 });
    expect(await a.request({ op: 'delete', room: 'cret', id: m1.id })).toMatchObject({ op: 'ack', target: m1.id, seq: 4 });
    expect(await b.request({ op: 'edit', room: 'cret', id: m2.id, text: 'not mine', cid: 'c5' })).toMatchObject({ op: 'error', code: 'forbidden' });
    const events = (await b.msgs('cret', 2)).map((f) => [f.seq, f.type, f.target]);
    expect(events).toEqual([[3, 'EDIT', m2.id], [4, 'DELETE', m1.id]]);
    // A new member on node 2 is served from that node's window: the old texts are gone there too.
    for (const node of [n1, n2]) {
      const c = await cl.member(node, `cc-${node.id}`, 'cret');
      const j = c.frames.find((f) => f.op === 'joined')!;
      const byseq = new Map((j.messages as Frame[]).map((m) => [m.seq, m]));
      expect(byseq.get(1)).toMatchObject({ deleted: true });
      expect(byseq.get(1)!.text).toBeUndefined();
      expect(byseq.get(2)).toMatchObject({ text: 'final', editedAt: expect.any(Number) });
      const texts = (j.messages as Frame[]).map((m) => m.text).filter((t) => t !== undefined);
      expect(texts).not.toContain('secret one');
      expect(texts).not.toContain('draft');
    }
  });

  it('two nodes deleting the same message at once: the later commit stores nothing, and its caller gets the first delete\'s ack', async () => {
    const [n1, n2] = cl.nodes;
    const hook = async (node: typeof n1, path: string): Promise<void> => { expect((await fetch(`${node.http}/_test/${path}`, { method: 'POST' })).status).toBe(200); };
    const a1 = await cl.member(n1, 'dd', 'cdel');
    const a2 = await cl.member(n2, 'dd', 'cdel');
    const m = await a1.request({ op: 'send', room: 'cdel', text: 'say it once', cid: 'x1' });
    await a2.msgs('cdel', 1);
    // Node 1 holds its commits: its delete is accepted (nothing is deleted yet) and waits there.
    await hook(n1, 'hold/commit');
    a1.send({ op: 'delete', room: 'cdel', id: m.id, ref: 'del-1' });
    expect((await getJson(`${n1.http}/_test/waiting/commit?n=1`)).body.waiting).toBe(1);
    // Node 2 deletes the same message meanwhile: it checks the store, finds no DELETE, stores one.
    const first = await a2.request({ op: 'delete', room: 'cdel', id: m.id });
    expect(first).toMatchObject({ op: 'ack', room: 'cdel', seq: 2, target: m.id });
    expect(a1.frames.filter((f) => f.ref === 'del-1'), 'node 1\'s delete waits in its commit').toEqual([]);
    await hook(n1, 'release/commit');
    // Node 1's commit finds the DELETE node 2 stored: the first one's ack, as a repeated delete on
    // one node gets (test/retraction.test.ts).
    expect(await a1.waitFor((f) => f.ref === 'del-1')).toMatchObject({ op: 'ack', id: first.id, seq: 2, at: first.at, target: m.id });
    // One DELETE in the room's log, on both nodes; the next message takes seq 3.
    const next = await a1.request({ op: 'send', room: 'cdel', text: 'after', cid: 'x2' });
    expect(next).toMatchObject({ op: 'ack', seq: 3 });
    for (const node of [n1, n2]) {
      const h = await getJson(`${node.http}/api/rooms/cdel/messages?limit=10`);
      expect((h.body.messages as Frame[]).map((x) => [x.seq, x.type]), `node ${node.id}`).toEqual([[1, 'CHAT'], [2, 'DELETE'], [3, 'CHAT']]);
    }
  });

  it('a read on one node reaches the members on the other as a receipt, and their next join carries it', async () => {
    const [n1, n2] = cl.nodes;
    const r = await fetch(`${n1.http}/api/rooms`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'group', id: 'crcpt', members: ['ra', 'rb'] }) });
    expect(r.status).toBe(201);
    const a = await cl.member(n1, 'ra', 'crcpt');
    const b = await cl.member(n2, 'rb', 'crcpt');
    const m = await a.request({ op: 'send', room: 'crcpt', text: 'read me', cid: 'r1' });
    await b.msgs('crcpt', 1);
    await b.request({ op: 'read', room: 'crcpt', upTo: m.id });
    expect(await a.op('receipt')).toEqual({ op: 'receipt', room: 'crcpt', user: 'rb', seq: 1 });
    const a2 = await cl.member(n1, 'ra', 'crcpt');
    expect(a2.frames.find((f) => f.op === 'joined')!.reads).toEqual({ ra: 0, rb: 1 });
  });
});
