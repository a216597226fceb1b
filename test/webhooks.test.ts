// Webhooks against a real engine (SQLite) and a real local HTTP receiver (webhook-receiver.ts),
// every request's signature checked with the code docs/webhooks.md shows. Receiver failures are
// switched by the test (503, 400, held requests), never waited out with sleeps.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, tempDir, type EngineProc } from './support/engine.ts';
import { until } from './support/wait.ts';
import { docsVerify, inRoomOrder, Receiver, type Evt } from './webhook-receiver.ts';

const ADMIN = 'test-admin-token-0123456789';
const SECRET = 'webhook-secret-0123456789abcdef';
const auth = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

function env(receiver: Receiver, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CHAT_ADMIN_TOKEN: ADMIN, ...SEND_LIMITS_OFF, CHAT_HTTP_RATE: '0', CHAT_ENTER_QUIT: 'off',
    CHAT_WEBHOOK_URL: receiver.url, CHAT_WEBHOOK_SECRET: SECRET, CHAT_WEBHOOK_RETRY: '20ms', CHAT_WEBHOOK_RETRY_MAX: '200ms',
    ...extra,
  };
}

async function api(eng: EngineProc, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(eng.http + path, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function group(eng: EngineProc, id: string, members: string[]): Promise<void> {
  expect((await api(eng, 'POST', '/api/rooms', { id, kind: 'group', members })).status).toBe(201);
}

/** Send `texts` to `room` as `c`, pipelined, and wait for every ack. */
async function sendAll(c: Client, room: string, texts: string[], tag: string): Promise<void> {
  texts.forEach((text, i) => c.send({ op: 'send', room, text, cid: `${tag}-${i}` }));
  for (let i = 0; i < texts.length; i++) await c.op('ack', (f) => f.cid === `${tag}-${i}`, 30_000);
}

async function metric(eng: EngineProc, name: string): Promise<number> {
  const text = await (await fetch(eng.http + '/metrics')).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

const messages = (evts: Evt[], room?: string): Evt[] => evts.filter((e) => e.type === 'message.created' && (room === undefined || e.room === room));

describe('webhooks', () => {
  let receiver: Receiver;
  let eng: EngineProc | null = null;
  const clients: Client[] = [];

  beforeAll(async () => { receiver = await Receiver.start(SECRET); });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await eng?.stop('SIGKILL');
    eng = null;
    receiver.answer = () => 200;
    receiver.requests.length = 0;
  });
  afterAll(async () => { await receiver.close(); });

  it("the docs' verify.mjs accepts a signed body and refuses a changed one, a wrong key and an old timestamp", async () => {
    const verify = await docsVerify();
    const { signature } = await import('../workers/persistence/webhooks.ts');
    const body = Buffer.from('{"events":[]}');
    const ts = String(Math.floor(Date.now() / 1000));
    const headers = { 'x-chat-timestamp': ts, 'x-chat-signature': signature(SECRET, ts, body.toString()) };
    expect(verify(SECRET, headers, body)).toBe(true);
    expect(verify(SECRET, headers, Buffer.from('{"events":[1]}'))).toBe(false);
    expect(verify('another-secret-0123456789', headers, body)).toBe(false);
    expect(verify(SECRET, headers, body, Number(ts) + 301)).toBe(false);
  });

  it('delivers every event of a 1,000-message run, signed, in order per room, with the members not joined as recipients', async () => {
    eng = await startEngine(env(receiver));
    const rooms = ['r1', 'r2', 'r3', 'r4'];
    for (const r of rooms) await group(eng, r, ['ann', 'ben', 'cleo', 'dan']);
    const ann = await Client.connect(eng.url, { user: 'ann', name: 'Ann' });
    const ben = await Client.connect(eng.url, { user: 'ben', name: 'Ben' });
    clients.push(ann, ben);
    for (const r of rooms) {
      expect((await ann.request({ op: 'join', room: r })).op).toBe('joined');
      expect((await ben.request({ op: 'join', room: r })).op).toBe('joined');
    }
    await Promise.all(rooms.map((r) => sendAll(ann, r, Array.from({ length: 250 }, (_, i) => `${r} #${i}`), r)));
    await receiver.waitFor('1,000 message events', () => messages([...receiver.deliveredById().values()]).length === 1000);

    expect(receiver.requests.every((r) => r.verified), 'every request verifies with the docs code').toBe(true);
    expect(receiver.requests.every((r) => r.ids.join(',') === r.events.map((e) => e.id).join(',')), 'X-Chat-Event-Ids names the body\'s events').toBe(true);
    const all = receiver.delivered();
    expect(inRoomOrder(all)).toBe(true);
    for (const r of rooms) {
      const msgs = messages([...receiver.deliveredById().values()], r);
      expect(msgs.map((e) => e.message.seq)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
      expect(msgs.every((e) => e.message.text === `${r} #${e.message.seq - 1}` && e.message.from.id === 'ann')).toBe(true);
      // ann sent, ben was joined: the push goes to cleo and dan.
      expect(new Set(msgs.map((e) => JSON.stringify(e.recipients)))).toEqual(new Set([JSON.stringify(['cleo', 'dan'])]));
    }
    const created = [...receiver.deliveredById().values()].filter((e) => e.type === 'room.created');
    expect(created.map((e) => e.room).sort()).toEqual(rooms);
    expect(created[0]).toMatchObject({ kind: 'group', members: ['ann', 'ben', 'cleo', 'dan'], by: null });
    await until('the delivered counter', async () => ((await metric(eng!, 'chat_webhook_delivered_total')) >= 1004 ? true : undefined));
    expect(await metric(eng, 'chat_webhook_delivery_seconds_count')).toBeGreaterThanOrEqual(1004);
  }, 120_000);

  it('writes room, member and block events in order, and none for a public room by default', async () => {
    eng = await startEngine(env(receiver));
    await group(eng, 'g', ['ann', 'ben']);
    expect((await api(eng, 'POST', '/api/rooms/g/members', { users: ['cleo', 'ben'] })).status).toBe(200);
    expect((await api(eng, 'DELETE', '/api/rooms/g/members/ben')).status).toBe(200);
    const ann = await Client.connect(eng.url, { user: 'ann', name: 'Ann' });
    clients.push(ann);
    expect((await ann.request({ op: 'join', room: 'plaza' })).op).toBe('joined');
    await sendAll(ann, 'plaza', ['in public'], 'p');
    expect((await fetch(`${eng.http}/api/me/blocks/dan?user=ann&name=Ann`, { method: 'PUT' })).status).toBe(200);
    expect((await fetch(`${eng.http}/api/me/blocks/dan?user=ann&name=Ann`, { method: 'DELETE' })).status).toBe(200);
    expect((await api(eng, 'DELETE', '/api/rooms/g')).status).toBe(200);
    await receiver.waitFor('room.deleted', () => [...receiver.deliveredById().values()].some((e) => e.type === 'room.deleted'));
    const evts = [...receiver.deliveredById().values()].sort((a, b) => Number(a.id) - Number(b.id));
    expect(evts.map((e) => [e.type, e.room, e.user ?? e.blocker ?? null])).toEqual([
      ['room.created', 'g', null],
      ['member.added', 'g', 'cleo'], // ben was a member already: no event for him
      ['member.removed', 'g', 'ben'],
      ['room.created', 'plaza', null],
      ['user.blocked', null, 'ann'],
      ['user.unblocked', null, 'ann'],
      ['room.deleted', 'g', null],
    ]);
    expect(evts[4]).toMatchObject({ blocker: 'ann', blocked: 'dan' });
  });

  it('leaves out of recipients the members who block the sender; a SYSTEM message names every member not joined; public rooms with CHAT_WEBHOOK_PUBLIC', async () => {
    eng = await startEngine(env(receiver, { CHAT_WEBHOOK_PUBLIC: '1' }));
    await group(eng, 'g', ['ann', 'ben', 'cleo']);
    expect((await fetch(`${eng.http}/api/me/blocks/ann?user=cleo&name=Cleo`, { method: 'PUT' })).status).toBe(200);
    const ann = await Client.connect(eng.url, { user: 'ann', name: 'Ann' });
    clients.push(ann);
    expect((await ann.request({ op: 'join', room: 'g' })).op).toBe('joined');
    expect((await ann.request({ op: 'join', room: 'plaza' })).op).toBe('joined');
    await sendAll(ann, 'g', ['hi'], 'g');
    await sendAll(ann, 'plaza', ['hello all'], 'p');
    expect((await api(eng, 'POST', '/api/rooms/g/messages', { text: 'maintenance' })).status).toBe(201);
    await receiver.waitFor('three message events', () => messages([...receiver.deliveredById().values()]).length === 3);
    const m = messages([...receiver.deliveredById().values()]).sort((a, b) => Number(a.id) - Number(b.id));
    expect(m.map((e) => [e.room, e.message.type, e.recipients])).toEqual([
      ['g', 'CHAT', ['ben']], // cleo blocks ann: no push for her
      ['plaza', 'CHAT', []],
      ['g', 'SYSTEM', ['ben', 'cleo']], // ann is joined
    ]);
  });

  it('keeps nothing from a receiver that is down: retried, then all delivered in room order, /healthz failing meanwhile with 200', async () => {
    // Retries every 200 ms at most: 10 s down takes ~50 attempts, which must not dead-letter anything.
    eng = await startEngine(env(receiver, { CHAT_WEBHOOK_MAX_ATTEMPTS: '1000' }));
    for (const r of ['a', 'b', 'c']) await group(eng, r, ['ann', 'ben']);
    await receiver.waitFor('the room events', () => receiver.deliveredById().size === 3);
    receiver.answer = () => 503;
    const ann = await Client.connect(eng.url, { user: 'ann', name: 'Ann' });
    clients.push(ann);
    await Promise.all(['a', 'b', 'c'].map((r) => sendAll(ann, r, Array.from({ length: 60 }, (_, i) => `${r}${i}`), r)));
    // Down for 10 s by the receiver's own clock: the engine keeps retrying with backoff meanwhile.
    const failed = (): number[] => receiver.requests.filter((q) => q.status === 503).map((q) => q.at);
    await receiver.waitFor('10 s of failed attempts', () => { const f = failed(); return f.length > 0 && f[f.length - 1] - f[0] >= 10_000; }, 60_000);
    const health = await fetch(eng.http + '/healthz');
    expect(health.status).toBe(200);
    await until('healthz says failing', async () => {
      const h = (await (await fetch(eng!.http + '/healthz')).json()) as { webhooks?: { receiver: string; lastError: string } };
      return h.webhooks?.receiver === 'failing' ? h.webhooks : undefined;
    }).then((w) => expect(w.lastError).toBe('HTTP 503'));
    expect(messages(receiver.delivered())).toHaveLength(0);
    receiver.answer = () => 200;
    await receiver.waitFor('180 message events', () => messages([...receiver.deliveredById().values()]).length === 180);
    expect(inRoomOrder(receiver.delivered())).toBe(true);
    for (const r of ['a', 'b', 'c']) expect(messages([...receiver.deliveredById().values()], r).map((e) => e.message.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(await metric(eng, 'chat_webhook_retried_total')).toBeGreaterThan(0);
    await until('healthz ok again', async () => {
      const h = (await (await fetch(eng!.http + '/healthz')).json()) as { webhooks?: { receiver: string } };
      return h.webhooks?.receiver === 'ok' ? true : undefined;
    });
    expect(await metric(eng, 'chat_webhook_dead_lettered_total')).toBe(0);
  }, 90_000);

  it('a delete and an edit are events too, and erase the old text from every event not yet delivered', async () => {
    eng = await startEngine(env(receiver));
    await group(eng, 'g', ['ann', 'ben']);
    await receiver.waitFor('room.created', () => receiver.deliveredById().size === 1);
    receiver.answer = () => 503; // everything stays pending
    const ann = await Client.connect(eng.url, { user: 'ann', name: 'Ann' });
    clients.push(ann);
    await ann.request({ op: 'join', room: 'g' });
    const sent = await ann.request({ op: 'send', room: 'g', text: 'call me at 010-1234', cid: 'p1' });
    expect(sent.op).toBe('ack');
    expect((await ann.request({ op: 'edit', room: 'g', id: sent.id, text: 'call me at 010-9999', cid: 'e1' })).op).toBe('ack');
    const pending = async (): Promise<string> => JSON.stringify((await api(eng!, 'GET', '/api/webhooks/events?from=0&limit=100')).body.events);
    // The edit erased the first text from the message.created row; the edited text is in message.edited.
    expect(await pending()).not.toContain('010-1234');
    expect(await pending()).toContain('010-9999');
    expect((await ann.request({ op: 'delete', room: 'g', id: sent.id, cid: 'd1' })).op).toBe('ack');
    expect(await pending()).not.toContain('010-9999');
    receiver.answer = () => 200;
    await receiver.waitFor('message.deleted', () => [...receiver.deliveredById().values()].some((e) => e.type === 'message.deleted'));
    const evts = [...receiver.deliveredById().values()].filter((e) => e.room === 'g' && e.type.startsWith('message.'));
    expect(evts.map((e) => e.type)).toEqual(['message.created', 'message.edited', 'message.deleted']);
    expect(evts[0].message).toMatchObject({ id: sent.id, text: '' });
    expect(evts[1]).toMatchObject({ message: { id: sent.id, text: '' }, by: 'ann' });
    expect(evts[2]).toMatchObject({ message: { id: sent.id }, by: 'ann' });
    // (attempts refused with 503 before the edit did carry the text: the receiver saw it, and refused)
    expect(JSON.stringify(receiver.delivered())).not.toMatch(/010-(1234|9999)/);
  });

  it('dead-letters the one event a receiver refuses with a 4xx, and its room keeps flowing; it can be listed and replayed', async () => {
    eng = await startEngine(env(receiver));
    await group(eng, 'g', ['ann', 'ben']);
    await receiver.waitFor('room.created', () => receiver.deliveredById().size === 1);
    let refuse = true;
    receiver.answer = (evts) => (refuse && evts.some((e) => e.message?.text === 'poison') ? 400 : 200);
    const ann = await Client.connect(eng.url, { user: 'ann', name: 'Ann' });
    clients.push(ann);
    await sendAll(ann, 'g', ['m1', 'poison', 'm2', 'm3'], 'x');
    await receiver.waitFor('m3', () => messages([...receiver.deliveredById().values()]).some((e) => e.message.text === 'm3'));
    const texts = messages([...receiver.deliveredById().values()]).map((e) => e.message.text);
    expect(texts).toEqual(['m1', 'm2', 'm3']);
    const dead = await api(eng, 'GET', '/api/webhooks/dead');
    expect(dead.status).toBe(200);
    const list = dead.body.events as { id: string; state: string; error: string; event: Evt }[];
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ state: 'dead', error: 'HTTP 400', event: { type: 'message.created', message: { text: 'poison' } } });
    // Listing from an id, and replaying the dead event once the receiver takes it.
    const from = await api(eng, 'GET', `/api/webhooks/events?from=${list[0].id}&limit=2`);
    expect((from.body.events as { id: string }[]).map((e) => e.id)).toEqual([list[0].id, String(Number(list[0].id) + 1)]);
    refuse = false;
    expect((await api(eng, 'POST', '/api/webhooks/replay', { ids: [list[0].id] })).body).toEqual({ replayed: 1 });
    await receiver.waitFor('the replayed event', () => receiver.deliveredById().has(list[0].id));
    expect((await api(eng, 'GET', '/api/webhooks/dead')).body.events).toEqual([]);
    // Bad input is a 400, not a crash.
    expect((await api(eng, 'POST', '/api/webhooks/replay', { from: 'x' })).status).toBe(400);
    expect((await api(eng, 'GET', '/api/webhooks/events?state=lost')).status).toBe(400);
  });

  it('dead-letters an event after CHAT_WEBHOOK_MAX_ATTEMPTS failed attempts, and the room goes on', async () => {
    eng = await startEngine(env(receiver, { CHAT_WEBHOOK_MAX_ATTEMPTS: '3' }));
    await group(eng, 'g', ['ann', 'ben']);
    await receiver.waitFor('room.created', () => receiver.deliveredById().size === 1);
    receiver.answer = (evts) => (evts.some((e) => e.message?.text === 'flaky') ? 503 : 200);
    const ann = await Client.connect(eng.url, { user: 'ann', name: 'Ann' });
    clients.push(ann);
    await sendAll(ann, 'g', ['flaky'], 'f');
    await until('the dead-letter list', async () => {
      const d = (await api(eng!, 'GET', '/api/webhooks/dead')).body.events as { attempts: number; error: string }[];
      return d.length === 1 ? d[0] : undefined;
    }).then((d) => expect(d).toMatchObject({ attempts: 3, error: 'HTTP 503' }));
    expect(receiver.requests.filter((q) => q.status === 503)).toHaveLength(3);
    await sendAll(ann, 'g', ['after'], 'a');
    await receiver.waitFor('the next event', () => messages(receiver.delivered()).some((e) => e.message.text === 'after'));
  });

  it('past CHAT_WEBHOOK_MAX_PENDING messages are still accepted and their events dead-lettered, counted', async () => {
    eng = await startEngine(env(receiver, { CHAT_WEBHOOK_MAX_PENDING: '5' }));
    await group(eng, 'g', ['ann', 'ben']);
    await receiver.waitFor('room.created', () => receiver.deliveredById().size === 1);
    receiver.answer = () => 503;
    const ann = await Client.connect(eng.url, { user: 'ann', name: 'Ann' });
    clients.push(ann);
    await sendAll(ann, 'g', Array.from({ length: 20 }, (_, i) => `m${i}`), 'o');
    await until('the overflow counter', async () => ((await metric(eng!, 'chat_webhook_overflow_total')) === 15 ? true : undefined));
    const dead = (await api(eng, 'GET', '/api/webhooks/dead')).body.events as { error: string; event: Evt }[];
    expect(dead.map((d) => d.event.message.text)).toEqual(Array.from({ length: 15 }, (_, i) => `m${i + 5}`));
    expect(dead.every((d) => d.error.startsWith('overflow'))).toBe(true);
    expect(await metric(eng, 'chat_webhook_pending')).toBe(5);
    receiver.answer = () => 200;
    await receiver.waitFor('the five pending', () => messages([...receiver.deliveredById().values()]).length === 5);
  });

  it('delivers events pending at a SIGKILL after the restart, with the same ids', async () => {
    const dir = tempDir();
    eng = await startEngine(env(receiver), dir);
    await group(eng, 'g', ['ann', 'ben']);
    await receiver.waitFor('room.created', () => receiver.deliveredById().size === 1);
    receiver.answer = () => 'hold';
    const ann = await Client.connect(eng.url, { user: 'ann', name: 'Ann' });
    await sendAll(ann, 'g', Array.from({ length: 50 }, (_, i) => `k${i}`), 'k');
    await receiver.waitFor('an attempt in flight', () => receiver.requests.length >= 2);
    const inFlight = receiver.requests[1].ids;
    await eng.stop('SIGKILL');
    receiver.release();
    receiver.answer = () => 200;
    eng = await startEngine(env(receiver), dir);
    await receiver.waitFor('50 message events', () => messages([...receiver.deliveredById().values()]).length === 50);
    const byId = receiver.deliveredById();
    // The events the killed engine was sending come again under the same ids.
    for (const id of inFlight) expect(byId.get(id)?.type).toBe('message.created');
    expect(messages([...byId.values()]).map((e) => e.message.text)).toEqual(Array.from({ length: 50 }, (_, i) => `k${i}`));
    expect(inRoomOrder(receiver.delivered())).toBe(true);
  }, 60_000);

  it('refuses CHAT_WEBHOOK_URL without a secret or not http(s), and answers 404 to the admin calls when webhooks are off', async () => {
    await expect(startEngine({ CHAT_WEBHOOK_URL: 'http://127.0.0.1:9/x' })).rejects.toThrow(/CHAT_WEBHOOK_SECRET/);
    await expect(startEngine({ CHAT_WEBHOOK_URL: 'ftp://127.0.0.1/x', CHAT_WEBHOOK_SECRET: SECRET })).rejects.toThrow(/CHAT_WEBHOOK_URL must be an http/);
    eng = await startEngine({ CHAT_ADMIN_TOKEN: ADMIN });
    expect((await api(eng, 'GET', '/api/webhooks/dead')).status).toBe(404);
  });
});
