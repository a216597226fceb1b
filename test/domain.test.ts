// The chat domain over WebSocket and HTTP, against a real engine: room kinds and authorization,
// ENTER/QUIT, blocking, read markers, typing, the host-app API, retention, abuse limits, JWT.

import Database from 'better-sqlite3';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { SignJWT, importPKCS8 } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, getJson, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';

const ADMIN = 'test-admin-token-0123456789';
const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

async function api(eng: EngineProc, method: string, path: string, body?: unknown, headers: Record<string, string> = admin): Promise<{ status: number; body: Frame }> {
  const r = await fetch(`${eng.http}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Frame) : {} };
}

describe('rooms, membership and authorization', () => {
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ CHAT_ADMIN_TOKEN: ADMIN, ...SEND_LIMITS_OFF }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('ENTER on first join (last of joined.messages), no second ENTER for a second tab, QUIT when the last leaves', async () => {
    const a = await Client.connect(eng.url, { user: 'mina', name: 'Mina' });
    const j = await a.request({ op: 'join', room: 'open1' });
    expect(j.messages.at(-1)).toMatchObject({ type: 'ENTER', from: { id: 'mina', name: 'Mina' }, seq: j.seq });
    const b = await Client.connect(eng.url, { user: 'joon', name: 'Joon' });
    const jb = await b.request({ op: 'join', room: 'open1' });
    expect(jb.messages.at(-1)).toMatchObject({ type: 'ENTER', from: { id: 'joon' } });
    expect(await a.op('msg')).toMatchObject({ type: 'ENTER', from: { id: 'joon' }, seq: jb.seq });
    const a2 = await Client.connect(eng.url, { user: 'mina', name: 'Mina' });
    const j2 = await a2.request({ op: 'join', room: 'open1' });
    expect(j2.seq).toBe(jb.seq); // no second ENTER for mina
    await a.request({ op: 'leave', room: 'open1' });
    await a2.close();
    const quit = await b.op('msg', (f) => f.type === 'QUIT');
    expect(quit).toMatchObject({ from: { id: 'mina' }, seq: jb.seq + 1 });
    expect(b.frames.filter((f) => f.op === 'msg' && f.type === 'QUIT')).toHaveLength(1);
    await Promise.all([a.close(), b.close()]);
  });

  it('group rooms: members only, on every path; non-members learn nothing', async () => {
    const created = await api(eng, 'POST', '/api/rooms', { kind: 'group', name: 'Lost wallet', subject: 'article:123', members: ['ann', 'bob'] });
    expect(created.status).toBe(201);
    const room = created.body.id as string;
    expect(created.body).toMatchObject({ kind: 'group', subject: 'article:123', members: ['ann', 'bob'] });
    const ann = await Client.connect(eng.url, { user: 'ann' });
    await ann.request({ op: 'join', room });
    expect(await ann.request({ op: 'send', room, text: 'secret', cid: 's1' })).toMatchObject({ op: 'ack' });
    const eve = await Client.connect(eng.url, { user: 'eve' });
    for (const f of [{ op: 'join', room }, { op: 'history', room }, { op: 'send', room, text: 'x', cid: 'e1' }, { op: 'read', room, upTo: '0000000000000' }]) {
      const r = await eve.request(f);
      expect(r, f.op).toMatchObject({ op: 'error', code: 'forbidden' });
      expect(JSON.stringify(r)).not.toContain('secret');
    }
    expect(await eve.request({ op: 'typing', room })).toMatchObject({ op: 'error', code: 'forbidden' });
    const h = await getJson(`${eng.http}/api/rooms/${room}/messages?user=eve`);
    expect(h.status).toBe(403);
    expect(JSON.stringify(h.body)).not.toContain('secret');
    expect((await getJson(`${eng.http}/api/rooms/${room}/messages?user=bob`)).body.messages.map((m: Frame) => m.text)).toEqual(['secret']);
    // rooms by subject: members (and the host app) see it, others do not
    const second = await api(eng, 'POST', '/api/rooms', { kind: 'group', subject: 'article:123', members: ['carl'] });
    expect(second.status).toBe(201);
    expect((await getJson(`${eng.http}/api/rooms?subject=article:123&user=ann`)).body.rooms.map((r: Frame) => r.id)).toEqual([room]);
    expect((await api(eng, 'GET', '/api/rooms?subject=article:123')).body.rooms.map((r: Frame) => r.id)).toEqual([room, second.body.id]);
    expect((await getJson(`${eng.http}/api/rooms?user=ann`)).status).toBe(400);
    await Promise.all([ann.close(), eve.close()]);
  });

  it('direct rooms: exactly two members, one room per pair and subject', async () => {
    const a = await api(eng, 'POST', '/api/rooms', { kind: 'direct', members: ['stu', 'council'], subject: 'article:9' });
    const b = await api(eng, 'POST', '/api/rooms', { kind: 'direct', members: ['council', 'stu'], subject: 'article:9' });
    expect(a.status).toBe(201);
    expect(b.status).toBe(200);
    expect(b.body.id).toBe(a.body.id);
    const other = await api(eng, 'POST', '/api/rooms', { kind: 'direct', members: ['council', 'stu'], subject: 'article:10' });
    expect(other.body.id).not.toBe(a.body.id);
    expect((await api(eng, 'POST', '/api/rooms', { kind: 'direct', members: ['x1', 'x2', 'x3'] })).status).toBe(400);
    // a student may open a direct room that includes themself (no admin token needed)
    const self = await fetch(`${eng.http}/api/rooms?user=stu2`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'direct', members: ['council'] }) });
    expect(self.status).toBe(201);
    expect(((await self.json()) as Frame).members).toEqual(['council', 'stu2']);
    expect((await api(eng, 'POST', `/api/rooms/${a.body.id}/members`, { users: ['third'] })).status).toBe(400);
  });

  it('blocking: the blocked user cannot post in the direct room, and the blocker receives nothing from them anywhere', async () => {
    const dm = (await api(eng, 'POST', '/api/rooms', { kind: 'direct', members: ['amy', 'ben'] })).body.id as string;
    const amy = await Client.connect(eng.url, { user: 'amy' });
    const ben = await Client.connect(eng.url, { user: 'ben' });
    const cat = await Client.connect(eng.url, { user: 'cat' });
    for (const c of [amy, ben, cat]) await c.request({ op: 'join', room: 'plaza' });
    await amy.request({ op: 'join', room: dm });
    await ben.request({ op: 'join', room: dm });
    expect((await api(eng, 'PUT', '/api/me/blocks/ben?user=amy', undefined, {})).body).toEqual({ blocked: ['ben'] });
    expect(await ben.request({ op: 'send', room: dm, text: 'hey', cid: 'b1' })).toMatchObject({ op: 'error', code: 'forbidden', cid: 'b1' });
    const benSaid = await ben.request({ op: 'send', room: 'plaza', text: 'from ben', cid: 'b2' });
    expect(benSaid.op).toBe('ack');
    await cat.op('msg', (f) => f.cid === 'b2');
    const catSaid = await cat.request({ op: 'send', room: 'plaza', text: 'from cat', cid: 'c1' });
    await amy.op('msg', (f) => f.cid === 'c1'); // amy still gets others, in order, after ben's would have come
    expect(amy.frames.some((f) => f.op === 'msg' && f.cid === 'b2')).toBe(false);
    const h = await amy.request({ op: 'history', room: 'plaza' });
    expect(h.messages.some((m: Frame) => m.from.id === 'ben')).toBe(false);
    expect(h.messages.some((m: Frame) => m.id === catSaid.id)).toBe(true);
    // amy can still write to ben; unblocking restores everything
    expect((await amy.request({ op: 'send', room: dm, text: 'bye', cid: 'a1' })).op).toBe('ack');
    expect((await api(eng, 'DELETE', '/api/me/blocks/ben?user=amy', undefined, {})).body).toEqual({ blocked: [] });
    expect((await ben.request({ op: 'send', room: dm, text: 'sorry', cid: 'b3' })).op).toBe('ack');
    expect(await amy.op('msg', (f) => f.cid === 'b3')).toMatchObject({ text: 'sorry' });
    await ben.request({ op: 'send', room: 'plaza', text: 'back', cid: 'b4' });
    expect(await amy.op('msg', (f) => f.cid === 'b4')).toMatchObject({ text: 'back' });
    expect((await api(eng, 'PUT', '/api/me/blocks/amy?user=amy', undefined, {})).status).toBe(400);
    await Promise.all([amy.close(), ben.close(), cat.close()]);
  });

  it('read markers: read replies with what is left unread; GET /api/me/rooms lists unread and the last message', async () => {
    const room = (await api(eng, 'POST', '/api/rooms', { kind: 'group', name: 'study', members: ['rd1', 'rd2'] })).body.id as string;
    const w = await Client.connect(eng.url, { user: 'rd1' });
    await w.request({ op: 'join', room });
    const acks: Frame[] = [];
    for (let i = 0; i < 5; i++) acks.push(await w.request({ op: 'send', room, text: `n${i}`, cid: `n${i}` }));
    const r = await Client.connect(eng.url, { user: 'rd2' });
    const before = await getJson(`${eng.http}/api/me/rooms?user=rd2`);
    expect(before.body.rooms.find((x: Frame) => x.id === room)).toMatchObject({ unread: 5, last: { text: 'n4' } });
    expect(await r.request({ op: 'read', room, upTo: acks[1].id })).toMatchObject({ op: 'read', room, upTo: acks[1].id, unread: 3 });
    const after = await getJson(`${eng.http}/api/me/rooms?user=rd2`);
    expect(after.body.rooms.find((x: Frame) => x.id === room)).toMatchObject({ unread: 3, name: 'study', kind: 'group' });
    expect(await r.request({ op: 'read', room, upTo: acks[4].id })).toMatchObject({ unread: 0 });
    expect(await r.request({ op: 'read', room, upTo: 'not-an-id' })).toMatchObject({ op: 'error', code: 'invalid' });
    // a public room joined once is one of "my rooms" from then on
    await r.request({ op: 'join', room: 'pubroom' });
    const mine = await getJson(`${eng.http}/api/me/rooms?user=rd2`);
    expect(mine.body.rooms.map((x: Frame) => x.id)).toContain('pubroom');
    await Promise.all([w.close(), r.close()]);
  });

  it('typing is relayed to the other members only, never stored, and rate-limited', async () => {
    const a = await Client.connect(eng.url, { user: 'ty1', name: 'Ty' });
    const b = await Client.connect(eng.url, { user: 'ty2' });
    await a.request({ op: 'join', room: 'typing' });
    await b.request({ op: 'join', room: 'typing' });
    const seq = (await a.request({ op: 'history', room: 'typing' })).messages.length;
    a.send({ op: 'typing', room: 'typing' });
    expect(await b.op('typing')).toEqual({ op: 'typing', room: 'typing', user: { id: 'ty1', name: 'Ty' } });
    a.send({ op: 'typing', room: 'typing' });
    a.send({ op: 'typing', room: 'typing' });
    a.send({ op: 'typing', room: 'typing' });
    expect(await a.op('error')).toMatchObject({ code: 'rate_limited' });
    expect(a.frames.some((f) => f.op === 'typing')).toBe(false);
    expect((await a.request({ op: 'history', room: 'typing' })).messages.length).toBe(seq);
    await Promise.all([a.close(), b.close()]);
  });

  it('host-app API: SYSTEM messages, member removal, room deletion; refused without the admin token', async () => {
    const room = (await api(eng, 'POST', '/api/rooms', { kind: 'group', members: ['h1', 'h2'] })).body.id as string;
    const h1 = await Client.connect(eng.url, { user: 'h1' });
    const h2 = await Client.connect(eng.url, { user: 'h2' });
    await h1.request({ op: 'join', room });
    await h2.request({ op: 'join', room });
    const sys = await api(eng, 'POST', `/api/rooms/${room}/messages`, { text: 'item returned' });
    expect(sys.status).toBe(201);
    expect(await h1.op('msg')).toMatchObject({ type: 'SYSTEM', text: 'item returned', id: sys.body.id, from: { id: 'system' } });
    expect((await api(eng, 'POST', `/api/rooms/${room}/messages`, { text: 'x' }, { 'content-type': 'application/json' })).status).toBe(403);
    expect((await api(eng, 'DELETE', `/api/rooms/${room}`, undefined, {})).status).toBe(403);
    const removed = await api(eng, 'DELETE', `/api/rooms/${room}/members/h2`);
    expect(removed.body.members).toEqual(['h1']);
    expect(await h2.op('left')).toMatchObject({ room, reason: 'removed' });
    expect(await h2.request({ op: 'send', room, text: 'x', cid: 'x' })).toMatchObject({ code: 'forbidden' });
    expect((await api(eng, 'POST', `/api/rooms/${room}/members`, { users: ['h2'] })).body.members).toEqual(['h1', 'h2']);
    expect((await h2.request({ op: 'join', room })).op).toBe('joined');
    expect((await api(eng, 'DELETE', `/api/rooms/${room}`)).status).toBe(200);
    expect(await h1.op('left')).toMatchObject({ room, reason: 'deleted' });
    expect(await h1.request({ op: 'join', room })).toMatchObject({ code: 'not_found' });
    expect((await getJson(`${eng.http}/api/rooms/${room}/messages?user=h1`)).status).toBe(404);
    expect((await api(eng, 'DELETE', `/api/rooms/${room}`)).status).toBe(404);
    await Promise.all([h1.close(), h2.close()]);
  });

  it('hostile strings: SQL injection gets a 4xx or nothing extra, an XSS payload is stored byte-exact', async () => {
    const inj = ["' OR 1=1 --", "'; DROP TABLE messages; --", '" OR ""="', '1; SELECT * FROM rooms'];
    for (const s of inj) {
      const q = encodeURIComponent(s);
      for (const path of [`/api/rooms/${q}/messages`, `/api/rooms/x/messages?before=${q}`, `/api/rooms/x/messages?limit=${q}`, `/api/rooms?subject=${q}`, `/api/me/rooms?user=${q}`, `/api/me/blocks/${q}?user=z`]) {
        const r = await fetch(`${eng.http}${path}`, { method: path.includes('blocks') ? 'PUT' : 'GET' });
        expect(r.status, path).toBeLessThan(500);
        if (r.status === 200) expect(JSON.stringify(await r.json())).not.toMatch(/secret|"kind":"group"/);
      }
    }
    expect((await api(eng, 'POST', '/api/rooms', { kind: "group' OR 1=1" })).status).toBe(400);
    expect((await api(eng, 'POST', '/api/rooms', { kind: 'group', members: ["x' --"] })).status).toBe(400);
    expect((await api(eng, 'POST', '/api/rooms', '{')).status).toBe(400);
    const bad = await fetch(`${eng.http}/api/rooms`, { method: 'POST', headers: admin, body: '{not json' });
    expect(bad.status).toBe(400);
    // Lone surrogates (JSON escapes with no UTF-8 form) in a room name, below in a SYSTEM message: 400.
    const lone = await fetch(`${eng.http}/api/rooms`, { method: 'POST', headers: admin, body: '{"kind":"group","members":["a"],"name":"x\\ud800"}' });
    expect(lone.status).toBe(400);
    const xss = '<img src=x onerror="alert(1)"></script><script>alert(2)</script> & \u00e9\u{1F600}';
    const a = await Client.connect(eng.url, { user: 'xss' });
    const ack = await a.request({ op: 'send', room: 'xssroom', text: xss, cid: 'x1' });
    expect((await api(eng, 'POST', '/api/rooms/xssroom/messages', { text: 'ok' })).status).toBe(201);
    const loneText = await fetch(`${eng.http}/api/rooms/xssroom/messages`, { method: 'POST', headers: admin, body: '{"text":"half \\udc00"}' });
    expect(loneText.status).toBe(400);
    const h = await getJson(`${eng.http}/api/rooms/xssroom/messages`);
    expect(h.body.messages.find((m: Frame) => m.id === ack.id).text).toBe(xss);
    expect((await api(eng, 'GET', '/api/rooms/xssroom/messages')).body.messages.some((m: Frame) => m.text === xss)).toBe(true);
    await a.close();
  });
});

describe('abuse limits', () => {
  let eng: EngineProc;
  beforeAll(async () => {
    eng = await startEngine({ CHAT_SEND_RATE: '5', CHAT_SEND_BURST: '5', CHAT_MAX_ROOMS_PER_CONN: '2', CHAT_MAX_CONNS_PER_USER: '2', CHAT_ALLOWED_ORIGINS: 'https://chat.example.com' });
  });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('rate-limits sends per connection; refused sends are not stored', async () => {
    const a = await Client.connect(eng.url, { user: 'spam' });
    await a.request({ op: 'join', room: 'rl' });
    for (let i = 0; i < 12; i++) a.send({ op: 'send', room: 'rl', text: `s${i}`, cid: `s${i}` });
    const replies: Frame[] = [];
    while (replies.length < 12) replies.push(await a.waitFor((f) => f.op === 'ack' || f.op === 'error'));
    const limited = replies.filter((f) => f.op === 'error');
    expect(limited.length).toBeGreaterThanOrEqual(6);
    for (const e of limited) expect(e).toMatchObject({ code: 'rate_limited', cid: expect.any(String) });
    const stored = (await a.request({ op: 'history', room: 'rl' })).messages.filter((m: Frame) => m.type === 'CHAT').map((m: Frame) => m.cid);
    expect(stored.sort()).toEqual(replies.filter((f) => f.op === 'ack').map((f) => f.cid).sort());
    await a.close();
  });

  it('limits rooms per connection and connections per user; checks the Origin before the upgrade', async () => {
    const a = await Client.connect(eng.url, { user: 'many' });
    await a.request({ op: 'join', room: 'r1' });
    await a.request({ op: 'join', room: 'r2' });
    expect(await a.request({ op: 'join', room: 'r3' })).toMatchObject({ code: 'forbidden' });
    expect((await a.request({ op: 'join', room: 'r1' })).op).toBe('joined');
    const b = await Client.connect(eng.url, { user: 'many' });
    await expect(Client.connect(eng.url, { user: 'many' })).rejects.toThrow(/HTTP 429/);
    await expect(Client.connect(eng.url, { user: 'o1', headers: { origin: 'https://evil.example' } })).rejects.toThrow(/HTTP 403/);
    const ok = await Client.connect(eng.url, { user: 'o2', headers: { origin: 'https://chat.example.com' } });
    await Promise.all([a.close(), b.close(), ok.close()]);
  });
});

describe('retention', () => {
  it('history never returns an expired message and the actor purges them', async () => {
    const eng = await startEngine({ CHAT_RETENTION: '2s', ...SEND_LIMITS_OFF, CHAT_ENTER_QUIT: 'off' });
    const a = await Client.connect(eng.url, { user: 'ret' });
    await a.request({ op: 'join', room: 'ret' });
    const old = await a.request({ op: 'send', room: 'ret', text: 'old', cid: 'old' });
    expect((await getJson(`${eng.http}/api/rooms/ret/messages`)).body.messages).toHaveLength(1);
    // Wait for expiry by polling the observable state (bounded), then check every read path.
    const deadline = Date.now() + 15_000;
    while ((await getJson(`${eng.http}/api/rooms/ret/messages`)).body.messages.length > 0) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 200));
    }
    const fresh = await a.request({ op: 'send', room: 'ret', text: 'new', cid: 'new' });
    const h = await a.request({ op: 'history', room: 'ret' });
    expect(h.messages.map((m: Frame) => m.id)).toEqual([fresh.id]);
    const b = await Client.connect(eng.url, { user: 'ret2' });
    const j = await b.request({ op: 'join', room: 'ret', since: old.id });
    expect(j.recovered).toBe(false);
    expect(j.messages.map((m: Frame) => m.id)).toEqual([fresh.id]);
    // the row itself is gone from the store (purged in batches by the actor)
    const db = new Database(join(eng.dir, 'chat.db'), { readonly: true });
    const purgeDeadline = Date.now() + 15_000;
    while ((db.prepare('SELECT count(*) AS n FROM messages WHERE id = ?').get(old.id) as { n: number }).n > 0) {
      expect(Date.now()).toBeLessThan(purgeDeadline);
      await new Promise((r) => setTimeout(r, 200));
    }
    db.close();
    await Promise.all([a.close(), b.close()]);
    expect(await eng.stop()).toBe(0);
  });
});

describe('jwt identity', () => {
  const secret = 'a-test-secret-that-is-long-enough-0123456789';
  const key = new TextEncoder().encode(secret);
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ CHAT_AUTH: 'jwt', CHAT_JWT_SECRET: secret }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  const sign = (claims: Record<string, unknown>, exp: string | number = '1h'): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(exp).sign(key);

  it('accepts a valid token (query or header) and takes sub and name from it', async () => {
    const t = await sign({ sub: 'u-1', name: 'Mina' });
    const a = await Client.connect(eng.url, { query: `token=${t}` });
    const ack = await a.request({ op: 'send', room: 'no-such', text: 'x', cid: 'c' });
    expect(ack).toMatchObject({ op: 'error', code: 'not_found' }); // jwt mode creates no rooms by joining
    const b = await Client.connect(eng.url, { headers: { authorization: `Bearer ${t}` } });
    await Promise.all([a.close(), b.close()]);
    const h = await fetch(`${eng.http}/api/me/rooms`, { headers: { authorization: `Bearer ${t}` } });
    expect(h.status).toBe(200);
  });

  it('refuses bad, expired, unsigned and wrongly signed tokens with 401 before the upgrade', async () => {
    const expired = await sign({ sub: 'u' }, Math.floor(Date.now() / 1000) - 60); // past the 30 s tolerance
    const noExp = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'HS256' }).sign(key);
    const wrong = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode('another-secret-that-is-long-enough-xx'));
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'u', exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
    for (const t of [expired, noExp, wrong, unsigned, 'garbage', '']) {
      await expect(Client.connect(eng.url, { query: `token=${t}` })).rejects.toThrow(/HTTP 401/);
    }
    await expect(Client.connect(eng.url, { user: 'claimed' })).rejects.toThrow(/HTTP 401/);
    expect((await fetch(`${eng.http}/api/rooms/x/messages`)).status).toBe(401);
  });

  it('closes the socket with 1008 when the token expires mid-session: at exp plus the clock tolerance, not at once', async () => {
    // exp 28 s ago: accepted within the 30 s tolerance, so the connection lives 2 more seconds.
    const t = await sign({ sub: 'short' }, Math.floor(Date.now() / 1000) - 28);
    const a = await Client.connect(eng.url, { query: `token=${t}` });
    expect(await a.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(await a.closed).toBe(1008);
  });

  it('keeps a connection whose token expires beyond setTimeout\'s range (30 and 365 days)', async () => {
    const long = await Promise.all([30, 365].map(async (days) => {
      const t = await sign({ sub: `long-${days}` }, Math.floor(Date.now() / 1000) + days * 86_400);
      return { days, c: await Client.connect(eng.url, { query: `token=${t}` }) };
    }));
    // A token that expires 2 s from now, on a connection opened after them: its 1008 comes from a
    // timer armed after theirs and due later, so the engine has run their timers by then (an
    // out-of-range delay would have fired at once).
    const short = await Client.connect(eng.url, { query: `token=${await sign({ sub: 'short-after' }, Math.floor(Date.now() / 1000) - 28)}` });
    expect(await short.closed).toBe(1008);
    for (const { days, c } of long) {
      expect(await c.request({ op: 'ping' }), `${days}-day token`).toMatchObject({ op: 'pong' });
      expect(c.closeCode, `${days}-day token`).toBeNull();
      await c.close();
    }
  });

  it('refuses a token whose name claim is not printable text; shortens a long one without splitting a character', async () => {
    for (const name of ['line\nbreak', 'nul\u0000', 'half \ud83d']) {
      await expect(Client.connect(eng.url, { query: `token=${await sign({ sub: 'named', name })}` }), JSON.stringify(name)).rejects.toThrow(/HTTP 401/);
    }
    const long = 'x'.repeat(63) + '\u{1F600}' + 'y'.repeat(10); // the emoji straddles the 64-unit limit
    const a = await Client.connect(eng.url, { query: `token=${await sign({ sub: 'long-name', name: long })}` }); // not a 401 (src/text.test.ts: the cut)
    expect(await a.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await a.close();
  });

  it('verifies RS256 with a public key', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const rs = await startEngine({ CHAT_AUTH: 'jwt', CHAT_JWT_PUBLIC_KEY: pem });
    const pk = await importPKCS8(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'RS256');
    const t = await new SignJWT({ sub: 'rsa-user', role: 'admin' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('1h').sign(pk);
    const a = await Client.connect(rs.url, { query: `token=${t}` });
    await a.close();
    const created = await fetch(`${rs.http}/api/rooms`, { method: 'POST', headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'public', id: 'hall' }) });
    expect(created.status).toBe(201);
    const forged = await sign({ sub: 'rsa-user' }); // HS256 against an RS256 deployment
    await expect(Client.connect(rs.url, { query: `token=${forged}` })).rejects.toThrow(/HTTP 401/);
    expect(await rs.stop()).toBe(0);
  });
});
