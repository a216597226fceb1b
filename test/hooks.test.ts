// The test hooks themselves (CHAT_TEST_HOOKS=1): each hold point stops its operation, reports it
// waiting, and lets it go on release; without the setting the routes do not exist.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, getJson, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';

const post = (url: string): Promise<Response> => fetch(url, { method: 'POST' });

/** A `pong` proves every frame the engine wrote to this connection before it has arrived. */
async function barrier(c: Client): Promise<void> {
  await c.request({ op: 'ping' });
}

describe('test hooks', () => {
  let e: EngineProc;
  beforeAll(async () => {
    e = await startEngine({ CHAT_TEST_HOOKS: '1', CHAT_WINDOW: '100', ...SEND_LIMITS_OFF, CHAT_ENTER_QUIT: 'off' });
  });
  afterAll(async () => {
    await e?.stop();
  });

  it('commit: a send is not acked while the commit is held, and is once released', async () => {
    const c = await Client.connect(e.url, { user: 'hk1' });
    await c.request({ op: 'join', room: 'hooks-commit' });
    expect((await post(`${e.http}/_test/hold/commit`)).status).toBe(200);
    c.send({ op: 'send', room: 'hooks-commit', text: 'held', cid: 'c1' });
    expect((await getJson(`${e.http}/_test/waiting/commit?n=1`)).body).toEqual({ waiting: 1 });
    await barrier(c);
    expect(c.frames.filter((f) => f.op === 'ack' || f.op === 'msg')).toEqual([]);
    await post(`${e.http}/_test/release/commit`);
    const ack = await c.op('ack');
    expect(ack.cid).toBe('c1');
    expect((await getJson(`${e.http}/_test/waiting/commit?n=0`)).body).toEqual({ waiting: 0 });
    await c.close();
  });

  it('read: a join with since does not answer while the store read is held', async () => {
    const c = await Client.connect(e.url, { user: 'hk2' });
    await c.request({ op: 'join', room: 'hooks-read' });
    // One message more than the hot window: a since before the window is read from the store.
    for (let i = 0; i < 101; i++) c.send({ op: 'send', room: 'hooks-read', text: `m${i}`, cid: `r${i}` });
    const acks: Frame[] = [];
    for (let i = 0; i < 101; i++) acks.push(await c.op('ack'));
    await c.request({ op: 'leave', room: 'hooks-read' });
    await post(`${e.http}/_test/hold/read`);
    c.send({ op: 'join', room: 'hooks-read', since: acks[0].id, ref: 'j' });
    await getJson(`${e.http}/_test/waiting/read?n=1`);
    await barrier(c);
    expect(c.frames.some((f) => f.ref === 'j')).toBe(false);
    await post(`${e.http}/_test/release/read`);
    const joined = await c.waitFor((f) => f.ref === 'j');
    expect(joined).toMatchObject({ op: 'joined', recovered: true, seq: acks[100].seq });
    expect(joined.messages).toHaveLength(100);
    await c.close();
  });

  it('join: a held join has not answered nor subscribed; released, it answers and continues gaplessly', async () => {
    const a = await Client.connect(e.url, { user: 'hk3' });
    const b = await Client.connect(e.url, { user: 'hk4' });
    await a.request({ op: 'join', room: 'hooks-join' });
    await post(`${e.http}/_test/hold/join`);
    b.send({ op: 'join', room: 'hooks-join', ref: 'jb' });
    await getJson(`${e.http}/_test/waiting/join?n=1`);
    // A message committed while b's join waits: b gets it in joined.messages or live, once.
    a.send({ op: 'send', room: 'hooks-join', text: 'during', cid: 'd1' });
    const ack = await a.op('ack');
    await barrier(b);
    expect(b.frames.some((f) => f.ref === 'jb' || f.op === 'msg')).toBe(false);
    await post(`${e.http}/_test/release/join`);
    const joined = await b.waitFor((f) => f.ref === 'jb');
    expect(joined.op).toBe('joined');
    expect(joined.seq).toBeGreaterThanOrEqual(ack.seq);
    expect(joined.messages.map((m: { id: string }) => m.id)).toContain(ack.id);
    await a.close();
    await b.close();
  });

  it('an unknown point is a 400', async () => {
    expect((await post(`${e.http}/_test/hold/nothing`)).status).toBe(400);
  });
});

describe('test hooks: a full collection in every thread', () => {
  it('POST /_test/gc collects the front thread, the actor and each reader once, then reports memory', async () => {
    const e = await startEngine({ CHAT_TEST_HOOKS: '1', CHAT_READERS: '3', CHAT_WINDOW: '100', ...SEND_LIMITS_OFF });
    try {
      const c = await Client.connect(e.url, { user: 'gc1' });
      await c.request({ op: 'join', room: 'hooks-gc' });
      const ids: string[] = [];
      for (let i = 0; i < 130; i++) ids.push((await c.request({ op: 'send', room: 'hooks-gc', text: `m${i}`, cid: `g${i}` })).id as string);
      // pages older than the hot window come from the readers
      for (let i = 0; i < 6; i++) expect(await c.request({ op: 'history', room: 'hooks-gc', before: ids[30 - i], limit: 20 })).toMatchObject({ op: 'history' });
      const res = await post(`${e.http}/_test/gc`);
      expect(res.status).toBe(200);
      const m = await res.json() as { rss: number; heapUsed: number; threads: { thread: string; threadId: number; heapUsedBefore: number; heapUsedAfter: number }[] };
      expect(m.rss).toBeGreaterThan(m.heapUsed);
      expect(m.threads.map((t) => t.thread)).toEqual(['front', 'actor', 'reader', 'reader', 'reader']);
      // each reader ran exactly one of the pool's gc tasks: five different threads
      expect(new Set(m.threads.map((t) => t.threadId)).size).toBe(5);
      // every thread had garbage (start-up, the sends, the reads) and a full collection freed it
      for (const t of m.threads) expect(t.heapUsedAfter, `${t.thread} ${t.threadId}`).toBeLessThan(t.heapUsedBefore);
      await c.close();
    } finally {
      await e.stop();
    }
  });
});

describe('without CHAT_TEST_HOOKS', () => {
  it('serves no /_test/ route', async () => {
    const e = await startEngine();
    try {
      expect((await post(`${e.http}/_test/hold/commit`)).status).toBe(404);
      expect((await post(`${e.http}/_test/gc`)).status).toBe(404);
    } finally {
      await e.stop();
    }
  });
});
