// Per-user quotas and block rules, enforced by the persistence actor against the store, with the
// refusal each client sees; and GET /api/me/rooms leaving out what the caller must not see counted
// (messages of users they block, expired messages). Real engines on SQLite and on MariaDB.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, getJson, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

const ADMIN = 'quota-admin-token-0123456789';
const adminHeaders = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
const userHeaders = { 'content-type': 'application/json' };

async function api(eng: EngineProc, method: string, path: string, body?: unknown, headers: Record<string, string> = adminHeaders): Promise<{ status: number; body: Frame }> {
  const r = await fetch(`${eng.http}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Frame) : {} };
}

const HAVE_MYSQL = await mysqlAvailable();
const stores: [string, () => Promise<{ env: Record<string, string>; drop: () => Promise<void> }>][] = [['sqlite', async () => ({ env: {}, drop: async () => {} })]];
if (HAVE_MYSQL) {
  stores.push(['mariadb', async () => {
    const db = await freshDatabase();
    return { env: { CHAT_STORE: db.url }, drop: db.drop };
  }]);
}

describe.each(stores)('quotas (%s)', (_name, makeStore) => {
  let eng: EngineProc;
  let store: Awaited<ReturnType<typeof makeStore>>;
  // A window of 100 messages: a `read` far enough back counts partly in the store.
  const settings = { CHAT_ADMIN_TOKEN: ADMIN, ...SEND_LIMITS_OFF, CHAT_ENTER_QUIT: 'off', CHAT_MAX_ROOMS_PER_USER: '2', CHAT_MAX_MEMBERS: '3', CHAT_MAX_BLOCKS: '2', CHAT_WINDOW: '100' };
  beforeAll(async () => {
    store = await makeStore();
    eng = await startEngine({ ...settings, ...store.env });
  });
  afterAll(async () => {
    expect(await eng.stop()).toBe(0);
    await store.drop();
  });

  it('rooms per user: POST /api/rooms and new public rooms by joining or sending count; past the quota forbidden everywhere; the host app and other users are not held back; a restart keeps the count', async () => {
    const created = await api(eng, 'POST', '/api/rooms?user=qu', { kind: 'group', members: ['qx'] }, userHeaders);
    expect(created.status).toBe(201);
    const qu = await Client.connect(eng.url, { user: 'qu' });
    expect((await qu.request({ op: 'join', room: 'qu-new1' })).op).toBe('joined');
    // The third room: by joining, by sending, by the API.
    expect(await qu.request({ op: 'join', room: 'qu-new2' })).toMatchObject({ op: 'error', code: 'forbidden', message: expect.stringMatching(/room quota reached.*2.*CHAT_MAX_ROOMS_PER_USER/) });
    expect(await qu.request({ op: 'send', room: 'qu-new3', text: 'x', cid: 'q3' })).toMatchObject({ op: 'error', code: 'forbidden', cid: 'q3', message: expect.stringMatching(/room quota reached/) });
    const third = await api(eng, 'POST', '/api/rooms?user=qu', { kind: 'direct', members: ['qy'] }, userHeaders);
    expect(third).toMatchObject({ status: 403, body: { error: { code: 'forbidden', message: expect.stringMatching(/room quota reached/) } } });
    expect((await getJson(`${eng.http}/api/rooms/qu-new2/messages`)).status, 'nothing was created').toBe(404);
    // Rooms that exist are used as before; another user and the host app create theirs.
    expect(await qu.request({ op: 'send', room: 'qu-new1', text: 'still here', cid: 'q1' })).toMatchObject({ op: 'ack' });
    const qv = await Client.connect(eng.url, { user: 'qv' });
    expect((await qv.request({ op: 'join', room: 'qu-new2' })).op).toBe('joined');
    expect((await qu.request({ op: 'join', room: 'qu-new2' })).op).toBe('joined');
    expect((await api(eng, 'POST', '/api/rooms', { kind: 'group', members: ['qu'] })).status).toBe(201);
    await Promise.all([qu.close(), qv.close()]);

    // The count is the store's: a restart keeps it; deleting one of the user's rooms frees a place.
    expect(await eng.stop()).toBe(0);
    eng = await startEngine({ ...settings, ...store.env }, eng.dir);
    const again = await Client.connect(eng.url, { user: 'qu' });
    expect(await again.request({ op: 'join', room: 'qu-new4' })).toMatchObject({ op: 'error', code: 'forbidden' });
    expect((await api(eng, 'DELETE', `/api/rooms/${created.body.id}`)).status).toBe(200);
    expect((await again.request({ op: 'join', room: 'qu-new4' })).op).toBe('joined');
    expect(await again.request({ op: 'join', room: 'qu-new5' })).toMatchObject({ op: 'error', code: 'forbidden' });
    await again.close();
  });

  it('members of a group room: never more than CHAT_MAX_MEMBERS, at creation or when adding (invalid, naming the limit)', async () => {
    const tooMany = await api(eng, 'POST', '/api/rooms', { kind: 'group', members: ['m1', 'm2', 'm3', 'm4'] });
    expect(tooMany).toMatchObject({ status: 400, body: { error: { code: 'invalid', message: expect.stringMatching(/at most 3 members \(CHAT_MAX_MEMBERS\)/) } } });
    // A user's own room counts the user, added to the list.
    expect((await api(eng, 'POST', '/api/rooms?user=m0', { kind: 'group', members: ['m1', 'm2', 'm3'] }, userHeaders)).status).toBe(400);
    const room = (await api(eng, 'POST', '/api/rooms', { kind: 'group', members: ['m1', 'm2'] })).body.id as string;
    expect((await api(eng, 'POST', `/api/rooms/${room}/members`, { users: ['m3', 'm4'] })).status).toBe(400);
    expect((await api(eng, 'POST', `/api/rooms/${room}/members`, { users: ['m1', 'm3'] })).body.members).toEqual(['m1', 'm2', 'm3']);
    expect((await api(eng, 'POST', `/api/rooms/${room}/members`, { users: ['m4'] })).body.error.message).toMatch(/CHAT_MAX_MEMBERS/);
    expect((await api(eng, 'DELETE', `/api/rooms/${room}/members/m1`)).status).toBe(200);
    expect((await api(eng, 'POST', `/api/rooms/${room}/members`, { users: ['m4'] })).body.members).toEqual(['m2', 'm3', 'm4']);
  });

  it('blocks per user: at most CHAT_MAX_BLOCKS (invalid past it); blocking someone already blocked, and unblocking, always work', async () => {
    const put = (u: string) => api(eng, 'PUT', `/api/me/blocks/${u}?user=bq`, undefined, {});
    expect((await put('b1')).status).toBe(200);
    expect((await put('b2')).body).toEqual({ blocked: ['b1', 'b2'] });
    expect(await put('b3')).toMatchObject({ status: 400, body: { error: { code: 'invalid', message: expect.stringMatching(/at most 2 users \(CHAT_MAX_BLOCKS\)/) } } });
    expect((await put('b1')).body).toEqual({ blocked: ['b1', 'b2'] });
    expect((await api(eng, 'DELETE', '/api/me/blocks/b1?user=bq', undefined, {})).body).toEqual({ blocked: ['b2'] });
    expect((await put('b3')).body).toEqual({ blocked: ['b2', 'b3'] });
  });

  it('a user blocked by someone cannot create a direct or group room with them; the blocker and the host app can', async () => {
    expect((await api(eng, 'PUT', '/api/me/blocks/ben?user=amy', undefined, {})).status).toBe(200);
    for (const body of [{ kind: 'direct', members: ['amy'] }, { kind: 'group', members: ['amy', 'cat'] }]) {
      expect(await api(eng, 'POST', '/api/rooms?user=ben', body, userHeaders), JSON.stringify(body)).toMatchObject({ status: 403, body: { error: { code: 'forbidden', message: expect.stringMatching(/blocks you/) } } });
    }
    const dm = await api(eng, 'POST', '/api/rooms?user=amy', { kind: 'direct', members: ['ben'] }, userHeaders);
    expect(dm.status).toBe(201);
    // The room between them exists now: ben still cannot open it as his.
    expect((await api(eng, 'POST', '/api/rooms?user=ben', { kind: 'direct', members: ['amy'] }, userHeaders)).status).toBe(403);
    expect((await api(eng, 'POST', '/api/rooms', { kind: 'group', members: ['amy', 'ben'] })).status).toBe(201);
    expect((await api(eng, 'POST', '/api/rooms?user=ben', { kind: 'group', members: ['cat'] }, userHeaders)).status).toBe(201);
  });

  it('GET /api/me/rooms: last and unread leave out the messages of users the caller blocks', async () => {
    const room = (await api(eng, 'POST', '/api/rooms', { kind: 'group', members: ['me1', 'pal', 'foe'] })).body.id as string;
    const pal = await Client.connect(eng.url, { user: 'pal' });
    const foe = await Client.connect(eng.url, { user: 'foe' });
    await pal.request({ op: 'join', room });
    await foe.request({ op: 'join', room });
    const sent: Frame[] = [];
    for (const [c, text] of [[pal, 'p1'], [foe, 'f1'], [pal, 'p2'], [foe, 'f2']] as const) sent.push(await c.request({ op: 'send', room, text, cid: text }));
    const mine = async (): Promise<Frame> => (await getJson(`${eng.http}/api/me/rooms?user=me1`)).body.rooms.find((r: Frame) => r.id === room);
    expect(await mine()).toMatchObject({ unread: 4, last: { id: sent[3].id, text: 'f2' } });
    expect((await api(eng, 'PUT', '/api/me/blocks/foe?user=me1', undefined, {})).status).toBe(200);
    expect(await mine()).toMatchObject({ unread: 2, last: { id: sent[2].id, text: 'p2' } });
    // Read up to p1: only p2 is left.
    const me = await Client.connect(eng.url, { user: 'me1' });
    await me.request({ op: 'read', room, upTo: sent[0].id });
    expect(await mine()).toMatchObject({ unread: 1, last: { text: 'p2' } });
    expect((await api(eng, 'DELETE', '/api/me/blocks/foe?user=me1', undefined, {})).status).toBe(200);
    expect(await mine()).toMatchObject({ unread: 3, last: { text: 'f2' } });
    await Promise.all([pal.close(), foe.close(), me.close()]);
  });

  it('the read reply\'s unread leaves out the same messages as GET /api/me/rooms: in the window and older than it', async () => {
    const room = (await api(eng, 'POST', '/api/rooms', { kind: 'group', members: ['me2', 'pal2', 'foe2'] })).body.id as string;
    const pal = await Client.connect(eng.url, { user: 'pal2' });
    const foe = await Client.connect(eng.url, { user: 'foe2' });
    await pal.request({ op: 'join', room });
    await foe.request({ op: 'join', room });
    // 120 messages, pal2's and foe2's in turn: the room's window holds the newest 100.
    const sent: Frame[] = [];
    for (let i = 0; i < 120; i++) sent.push(await (i % 2 === 0 ? pal : foe).request({ op: 'send', room, text: `m${i}`, cid: `m${i}` }));
    expect((await api(eng, 'PUT', '/api/me/blocks/foe2?user=me2', undefined, {})).status).toBe(200);
    const mine = async (): Promise<number> => ((await getJson(`${eng.http}/api/me/rooms?user=me2`)).body.rooms.find((r: Frame) => r.id === room) as Frame).unread as number;
    const me = await Client.connect(eng.url, { user: 'me2' });
    const read = async (upTo: number): Promise<number> => ((await me.request({ op: 'read', room, upTo: sent[upTo].id })) as Frame).unread as number;
    // After m0: m1..m119, of which pal2's are m2, m4 .. m118 (m2 .. m18 older than the window).
    expect(await read(0)).toBe(59);
    expect(await mine()).toBe(59);
    // After m109: m110..m119, all in the window; pal2's are m110, m112 .. m118.
    expect(await read(109)).toBe(5);
    expect(await mine()).toBe(5);
    // Nobody blocked: every message counts.
    expect((await api(eng, 'DELETE', '/api/me/blocks/foe2?user=me2', undefined, {})).status).toBe(200);
    expect(await read(109)).toBe(10);
    expect(await mine()).toBe(10);
    await Promise.all([pal.close(), foe.close(), me.close()]);
  });
});

describe('GET /api/me/rooms with retention', () => {
  it('expired messages are neither last nor unread', async () => {
    const eng = await startEngine({ CHAT_RETENTION: '5s', ...SEND_LIMITS_OFF, CHAT_ADMIN_TOKEN: ADMIN });
    try {
      const room = (await api(eng, 'POST', '/api/rooms', { kind: 'group', members: ['rm', 'rs'] })).body.id as string;
      const s = await Client.connect(eng.url, { user: 'rs' });
      await s.request({ op: 'join', room });
      await s.request({ op: 'send', room, text: 'old 1', cid: 'o1' });
      await s.request({ op: 'send', room, text: 'old 2', cid: 'o2' });
      const mine = async (): Promise<Frame> => (await getJson(`${eng.http}/api/me/rooms?user=rm`)).body.rooms.find((r: Frame) => r.id === room);
      // Poll the observable state until both have expired (history shows none), bounded.
      const deadline = Date.now() + 30_000;
      while ((await getJson(`${eng.http}/api/rooms/${room}/messages?user=rm`)).body.messages.length > 0) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(await mine(), 'both stored, both expired').toMatchObject({ unread: 0, last: null });
      // The read reply counts as GET /api/me/rooms does: nothing expired.
      const r = await Client.connect(eng.url, { user: 'rm' });
      expect(await r.request({ op: 'read', room, upTo: '0000000000000' })).toMatchObject({ op: 'read', unread: 0 });
      await r.close();
      const fresh = await s.request({ op: 'send', room, text: 'new', cid: 'n1' });
      expect(await mine()).toMatchObject({ unread: 1, last: { id: fresh.id } });
      await s.close();
    } finally {
      expect(await eng.stop()).toBe(0);
    }
  });
});
