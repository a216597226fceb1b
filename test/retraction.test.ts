// Deletes and edits (events of the room's log that change an earlier message) and read receipts,
// against a real engine process and its SQLite file: who may, what every copy shows afterwards,
// that the old text leaves the database files, and who is told how far others have read.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, getJson, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, tempDir, type EngineProc } from './support/engine.ts';
import { until } from './support/wait.ts';

const ADMIN = 'test-admin-token-0123456789';
const CORE = { CHAT_ENTER_QUIT: 'off', ...SEND_LIMITS_OFF, CHAT_HTTP_RATE: '0', CHAT_ADMIN_TOKEN: ADMIN, CHAT_TEST_HOOKS: '1' };
const asAdmin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

/** A `pong` proves every frame the engine wrote to this connection before it has arrived. */
async function barrier(c: Client): Promise<void> {
  await c.request({ op: 'ping' });
}

async function post(c: Client, room: string, text: string, cid: string): Promise<Frame> {
  return c.request({ op: 'send', room, text, cid });
}

/** Every file of the store (chat.db, -wal, -shm) as one buffer. */
function storeBytes(dir: string): Buffer {
  return Buffer.concat(readdirSync(dir).filter((f) => f.startsWith('chat.db')).map((f) => readFileSync(join(dir, f))));
}

describe('deletes and edits', () => {
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ ...CORE, CHAT_WINDOW: '100' }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it("the sender deletes: members get the DELETE, every copy shows the message deleted, a repeated delete is answered like the first", async () => {
    const a = await Client.connect(eng.url, { user: 'del-a' });
    const b = await Client.connect(eng.url, { user: 'del-b', protocol: 'chat.v1.msgpack' });
    for (const c of [a, b]) await c.request({ op: 'join', room: 'del-1' });
    const m1 = await post(a, 'del-1', 'my phone is 010-1234-5678', 'd1');
    await post(a, 'del-1', 'keep this', 'd2');
    const ack = await a.request({ op: 'delete', room: 'del-1', id: m1.id });
    expect(ack).toMatchObject({ op: 'ack', room: 'del-1', seq: 3, target: m1.id });
    expect(ack.cid).toBeUndefined();
    for (const c of [a, b]) {
      const ev = await c.op('msg', (f) => f.seq === 3);
      expect(ev).toMatchObject({ type: 'DELETE', target: m1.id, id: ack.id, from: { id: 'del-a' } });
      expect('text' in ev).toBe(false);
    }
    // Again, by the sender (with a cid this time): nothing stored, the first one's ack.
    const again = await a.request({ op: 'delete', room: 'del-1', id: m1.id, cid: 'again' });
    expect(again).toMatchObject({ op: 'ack', id: ack.id, seq: 3, at: ack.at, target: m1.id, cid: 'again' });
    // The window (a new join), history and HTTP all show it deleted, without text.
    const c = await Client.connect(eng.url, { user: 'del-c' });
    const j = await c.request({ op: 'join', room: 'del-1' });
    const h = await a.request({ op: 'history', room: 'del-1' });
    const http = (await getJson(`${eng.http}/api/rooms/del-1/messages?user=del-a`)).body;
    for (const list of [j.messages, h.messages, http.messages] as Frame[][]) {
      expect(list.map((m) => m.seq)).toEqual([1, 2, 3]);
      expect(list[0]).toEqual({ id: m1.id, room: 'del-1', seq: 1, type: 'CHAT', from: { id: 'del-a', name: 'del-a' }, at: m1.at, cid: 'd1', deleted: true });
      expect(list[1].text).toBe('keep this');
    }
    expect(j.seq).toBe(3);
    await barrier(a);
    expect(a.frames.filter((f) => f.op === 'msg' && f.seq > 3)).toEqual([]);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('only the sender or an admin deletes, only the sender edits; unknown ids are not_found; over HTTP too', async () => {
    const a = await Client.connect(eng.url, { user: 'perm-a' });
    const b = await Client.connect(eng.url, { user: 'perm-b' });
    const adm = await Client.connect(eng.url, { headers: { authorization: `Bearer ${ADMIN}` } });
    const m1 = await post(a, 'perm', 'one', 'p1');
    const m2 = await post(a, 'perm', 'two', 'p2');
    const m3 = await post(a, 'perm', 'three', 'p3');
    expect(await b.request({ op: 'delete', room: 'perm', id: m1.id, cid: 'bx' })).toMatchObject({ op: 'error', code: 'forbidden', cid: 'bx' });
    expect(await b.request({ op: 'edit', room: 'perm', id: m1.id, text: 'mine now', cid: 'be' })).toMatchObject({ op: 'error', code: 'forbidden', cid: 'be' });
    expect(await adm.request({ op: 'edit', room: 'perm', id: m1.id, text: 'admin', cid: 'ae' })).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await a.request({ op: 'delete', room: 'perm', id: '0SECKC2Y4024B' })).toMatchObject({ op: 'error', code: 'not_found' });
    expect(await a.request({ op: 'delete', room: 'other-room', id: m1.id })).toMatchObject({ op: 'error', code: 'not_found' });
    expect(await a.request({ op: 'edit', room: 'perm', id: 'nope', text: 'x', cid: 'bad' })).toMatchObject({ op: 'error', code: 'invalid', cid: 'bad' });
    expect(await a.request({ op: 'delete', room: 'perm' })).toMatchObject({ op: 'error', code: 'invalid' });
    expect(await adm.request({ op: 'delete', room: 'perm', id: m1.id })).toMatchObject({ op: 'ack', target: m1.id });
    // A DELETE event is no message one can delete or edit.
    const ev = (await a.request({ op: 'history', room: 'perm' })).messages.at(-1);
    expect(ev.type).toBe('DELETE');
    expect(await adm.request({ op: 'delete', room: 'perm', id: ev.id })).toMatchObject({ op: 'error', code: 'not_found' });
    // HTTP: someone else 403, the sender 200, an admin 200, unknown 404, a bad id 400.
    const del = (id: string, headers: Record<string, string>, who = ''): Promise<Response> => fetch(`${eng.http}/api/rooms/perm/messages/${id}${who}`, { method: 'DELETE', headers });
    expect((await del(m2.id, {}, '?user=perm-b')).status).toBe(403);
    const own = await del(m2.id, {}, '?user=perm-a');
    expect(own.status).toBe(200);
    expect(await own.json()).toMatchObject({ room: 'perm', target: m2.id, seq: 5 });
    const byAdmin = await del(m3.id, asAdmin);
    expect(byAdmin.status).toBe(200);
    const repeat = await del(m3.id, asAdmin);
    expect(await repeat.json()).toEqual(await byAdmin.json());
    expect((await del('0SECKC2Y4024B', asAdmin)).status).toBe(404);
    expect((await del('not-an-id', asAdmin)).status).toBe(400);
    expect((await fetch(`${eng.http}/api/rooms/no-such-room/messages/${m3.id}`, { method: 'DELETE', headers: asAdmin })).status).toBe(404);
    await Promise.all([a.close(), b.close(), adm.close()]);
  });

  it('edit: the new text and editedAt everywhere, the older edit erased; a retried edit applies once; a deleted message is not_found', async () => {
    const a = await Client.connect(eng.url, { user: 'ed-a' });
    await a.request({ op: 'join', room: 'ed' });
    const m = await post(a, 'ed', 'draft one', 'e0');
    const e1 = await a.request({ op: 'edit', room: 'ed', id: m.id, text: 'draft two', cid: 'e1' });
    expect(e1).toMatchObject({ op: 'ack', cid: 'e1', seq: 2, target: m.id });
    const retry = await a.request({ op: 'edit', room: 'ed', id: m.id, text: 'draft two', cid: 'e1' });
    expect(retry).toMatchObject({ op: 'ack', cid: 'e1', id: e1.id, seq: 2, at: e1.at });
    const e2 = await a.request({ op: 'edit', room: 'ed', id: m.id, text: 'final', cid: 'e2' });
    expect(e2.seq).toBe(3);
    const live = await a.msgs('ed', 3);
    expect(live.map((f) => [f.seq, f.type, f.text])).toEqual([[1, 'CHAT', 'draft one'], [2, 'EDIT', 'draft two'], [3, 'EDIT', 'final']]);
    expect(live[2].target).toBe(m.id);
    const j = await (await Client.connect(eng.url, { user: 'ed-b' })).request({ op: 'join', room: 'ed' });
    const h = (await getJson(`${eng.http}/api/rooms/ed/messages?user=ed-a`)).body.messages as Frame[];
    for (const list of [j.messages as Frame[], h]) {
      expect(list[0]).toMatchObject({ seq: 1, text: 'final', editedAt: e2.at });
      expect(list[1]).toMatchObject({ seq: 2, type: 'EDIT', deleted: true });
      expect('text' in list[1]).toBe(false);
      expect(list[2]).toMatchObject({ seq: 3, type: 'EDIT', text: 'final' });
    }
    await a.request({ op: 'delete', room: 'ed', id: m.id });
    expect(await a.request({ op: 'edit', room: 'ed', id: m.id, text: 'zombie', cid: 'e3' })).toMatchObject({ op: 'error', code: 'not_found', cid: 'e3' });
    const after = (await a.request({ op: 'history', room: 'ed' })).messages as Frame[];
    expect(after.filter((x) => x.text !== undefined)).toEqual([]);
    await a.close();
  });

  it('a join with since recovers the DELETE and EDIT events in seq order', async () => {
    const a = await Client.connect(eng.url, { user: 'rec-a' });
    const m1 = await post(a, 'rec', 'one', 'r1');
    const m2 = await post(a, 'rec', 'two', 'r2');
    await a.request({ op: 'edit', room: 'rec', id: m2.id, text: 'two!', cid: 'r3' });
    await a.request({ op: 'delete', room: 'rec', id: m1.id });
    const b = await Client.connect(eng.url, { user: 'rec-b' });
    const j = await b.request({ op: 'join', room: 'rec', since: m1.id });
    expect(j.recovered).toBe(true);
    expect((j.messages as Frame[]).map((m) => [m.seq, m.type, m.target ?? null])).toEqual([[2, 'CHAT', null], [3, 'EDIT', m2.id], [4, 'DELETE', m1.id]]);
    expect(j.messages[0]).toMatchObject({ text: 'two!', editedAt: expect.any(Number) });
    await Promise.all([a.close(), b.close()]);
  });
});

describe('erased means erased', () => {
  it('after a delete, an edit and a restart, no file of the store holds the old text', async () => {
    const dir = tempDir();
    let eng = await startEngine(CORE, dir);
    const a = await Client.connect(eng.url, { user: 'er-a' });
    const gone = 'SECRET-PHONE-010-9876-5432';
    const old = 'OLD-WORDING-ZEBRA-QUARTZ';
    const kept = 'KEPT-WORDING-MANGO-FJORD';
    const m1 = await post(a, 'erase', gone, 'x1');
    const m2 = await post(a, 'erase', old, 'x2');
    await post(a, 'erase', 'filler', 'x3');
    await a.request({ op: 'delete', room: 'erase', id: m1.id });
    await a.request({ op: 'edit', room: 'erase', id: m2.id, text: kept, cid: 'x4' });
    await a.close();
    expect(await eng.stop()).toBe(0);
    eng = await startEngine(CORE, dir);
    const h = (await getJson(`${eng.http}/api/rooms/erase/messages?user=er-a`)).body.messages as Frame[];
    expect(h.map((m) => m.text ?? null)).toEqual([null, kept, 'filler', null, kept]);
    const bytes = storeBytes(dir);
    // The search finds what is there (the new text), and not what was erased.
    expect(bytes.includes(kept)).toBe(true);
    expect(bytes.includes(gone)).toBe(false);
    expect(bytes.includes(old)).toBe(false);
    expect(await eng.stop()).toBe(0);
  });

  it('retention expiry erases the text from the files too', async () => {
    const dir = tempDir();
    let eng = await startEngine({ ...CORE, CHAT_RETENTION: '2s' }, dir);
    const a = await Client.connect(eng.url, { user: 'ret-a' });
    const text = 'EXPIRING-TEXT-PELICAN-7781';
    await post(a, 'expire', text, 'y1');
    await a.close();
    expect(storeBytes(dir).includes(text)).toBe(true);
    // The sweep runs every second: wait for it to have erased the message.
    await until('the expired text leaves the store files', () => (storeBytes(dir).includes(text) ? undefined : true), 20_000, 200);
    expect(await eng.stop()).toBe(0);
    eng = await startEngine(CORE, dir);
    expect(storeBytes(dir).includes(text)).toBe(false);
    expect(await eng.stop()).toBe(0);
  });
});

describe('read receipts', () => {
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ ...CORE, CHAT_WINDOW: '100' }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  const group = async (id: string, members: string[]): Promise<void> => {
    const r = await fetch(`${eng.http}/api/rooms`, { method: 'POST', headers: asAdmin, body: JSON.stringify({ kind: 'group', id, members }) });
    expect(r.status).toBe(201);
  };

  it("joined carries every member's position; a committed read reaches the others as a receipt; GET reads gives the same map", async () => {
    await group('rcpt', ['ra', 'rb', 'rc']);
    const [a, b, c] = await Promise.all(['ra', 'rb', 'rc'].map((user) => Client.connect(eng.url, { user })));
    const ja = await a.request({ op: 'join', room: 'rcpt' });
    expect(ja.reads).toEqual({ ra: 0, rb: 0, rc: 0 });
    await b.request({ op: 'join', room: 'rcpt' });
    await c.request({ op: 'join', room: 'rcpt' });
    const m = [];
    for (let i = 1; i <= 3; i++) m.push(await post(a, 'rcpt', `m${i}`, `rc${i}`));
    const reply = await b.request({ op: 'read', room: 'rcpt', upTo: m[1].id });
    expect(reply).toEqual({ op: 'read', room: 'rcpt', upTo: m[1].id, unread: 1, ref: reply.ref });
    for (const x of [a, c]) expect(await x.op('receipt')).toEqual({ op: 'receipt', room: 'rcpt', user: 'rb', seq: 2 });
    await barrier(b);
    expect(b.frames.filter((f) => f.op === 'receipt')).toEqual([]);
    expect((await getJson(`${eng.http}/api/rooms/rcpt/reads?user=ra`)).body).toEqual({ room: 'rcpt', reads: { ra: 0, rb: 2, rc: 0 } });
    expect((await getJson(`${eng.http}/api/rooms/rcpt/reads?user=outsider`)).status).toBe(403);
    // A read that does not move the marker forward tells nobody.
    await b.request({ op: 'read', room: 'rcpt', upTo: m[0].id });
    await barrier(a);
    expect(a.frames.filter((f) => f.op === 'receipt')).toHaveLength(1);
    // A new join sees the positions.
    const c2 = await Client.connect(eng.url, { user: 'rc' });
    expect((await c2.request({ op: 'join', room: 'rcpt' })).reads).toEqual({ ra: 0, rb: 2, rc: 0 });
    await Promise.all([a, b, c, c2].map((x) => x.close()));
  });

  it("a blocked user's receipts are hidden from the blocker, and their position shows 0 to them", async () => {
    await group('rblk', ['ba', 'bb', 'bc']);
    expect((await fetch(`${eng.http}/api/me/blocks/bb?user=bc`, { method: 'PUT' })).status).toBe(200);
    const [a, b, c] = await Promise.all(['ba', 'bb', 'bc'].map((user) => Client.connect(eng.url, { user })));
    for (const x of [a, b, c]) await x.request({ op: 'join', room: 'rblk' });
    const m = await post(a, 'rblk', 'hello', 'bk1');
    await b.request({ op: 'read', room: 'rblk', upTo: m.id });
    expect(await a.op('receipt')).toMatchObject({ user: 'bb', seq: 1 });
    await barrier(c);
    expect(c.frames.filter((f) => f.op === 'receipt')).toEqual([]);
    expect((await c.request({ op: 'join', room: 'rblk' })).reads).toEqual({ ba: 0, bb: 0, bc: 0 });
    expect((await getJson(`${eng.http}/api/rooms/rblk/reads?user=bc`)).body.reads).toEqual({ ba: 0, bb: 0, bc: 0 });
    expect((await getJson(`${eng.http}/api/rooms/rblk/reads?user=ba`)).body.reads).toEqual({ ba: 0, bb: 1, bc: 0 });
    await Promise.all([a, b, c].map((x) => x.close()));
  });

  it('MessagePack connections get the same acks and receipts', async () => {
    await group('rmp', ['ma', 'mb']);
    const a = await Client.connect(eng.url, { user: 'ma', protocol: 'chat.v1.msgpack' });
    const b = await Client.connect(eng.url, { user: 'mb' });
    for (const x of [a, b]) await x.request({ op: 'join', room: 'rmp' });
    const m = await post(a, 'rmp', 'packed', 'mp1');
    expect(await a.request({ op: 'edit', room: 'rmp', id: m.id, text: 'repacked', cid: 'mp2' })).toMatchObject({ op: 'ack', cid: 'mp2', seq: 2, target: m.id });
    const d = await a.request({ op: 'delete', room: 'rmp', id: m.id });
    expect(d).toMatchObject({ op: 'ack', seq: 3, target: m.id });
    expect('cid' in d).toBe(false);
    await b.request({ op: 'read', room: 'rmp', upTo: d.id });
    expect(await a.op('receipt')).toEqual({ op: 'receipt', room: 'rmp', user: 'mb', seq: 3 });
    await Promise.all([a.close(), b.close()]);
  });

  it('public rooms share no receipts by default', async () => {
    const a = await Client.connect(eng.url, { user: 'pa' });
    const b = await Client.connect(eng.url, { user: 'pb' });
    expect((await a.request({ op: 'join', room: 'pub-r' })).reads).toEqual({});
    await b.request({ op: 'join', room: 'pub-r' });
    const m = await post(a, 'pub-r', 'hi', 'pr1');
    await b.request({ op: 'read', room: 'pub-r', upTo: m.id });
    await barrier(a);
    expect(a.frames.filter((f) => f.op === 'receipt')).toEqual([]);
    expect((await getJson(`${eng.http}/api/rooms/pub-r/reads?user=pa`)).body).toEqual({ room: 'pub-r', reads: {} });
    await Promise.all([a.close(), b.close()]);
  });

  it('reads committed together give one receipt at once and one, with the newest seq, at the end of the interval', async () => {
    await group('rthr', ['ta', 'tb']);
    const a = await Client.connect(eng.url, { user: 'ta' });
    const b = await Client.connect(eng.url, { user: 'tb' });
    for (const x of [a, b]) await x.request({ op: 'join', room: 'rthr' });
    const m = [];
    for (let i = 1; i <= 4; i++) m.push(await post(a, 'rthr', `t${i}`, `th${i}`));
    // A commit of a's is held; b's three reads queue behind it and commit together.
    expect((await fetch(`${eng.http}/_test/hold/commit`, { method: 'POST' })).status).toBe(200);
    a.send({ op: 'send', room: 'rthr', text: 'held', cid: 'th-held' });
    expect((await getJson(`${eng.http}/_test/waiting/commit?n=1`)).body).toEqual({ waiting: 1 });
    const refs = [0, 1, 2].map((i) => `rd${i}`);
    for (let i = 0; i < 3; i++) b.send({ op: 'read', room: 'rthr', upTo: m[i].id, ref: refs[i] });
    await barrier(b);
    await fetch(`${eng.http}/_test/release/commit`, { method: 'POST' });
    for (const ref of refs) await b.waitFor((f) => f.ref === ref);
    const last = await a.op('receipt', (f) => f.seq === 3);
    expect(last.user).toBe('tb');
    await barrier(a);
    expect(a.frames.filter((f) => f.op === 'receipt').map((f) => f.seq)).toEqual([1, 3]);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('read receipts in public rooms with CHAT_PUBLIC_RECEIPTS=on', () => {
  it('shares the positions of users with a read marker', async () => {
    const eng = await startEngine({ ...CORE, CHAT_PUBLIC_RECEIPTS: 'on' });
    const a = await Client.connect(eng.url, { user: 'qa' });
    const b = await Client.connect(eng.url, { user: 'qb' });
    for (const x of [a, b]) await x.request({ op: 'join', room: 'pub-on' });
    const m = await post(a, 'pub-on', 'hi', 'q1');
    await b.request({ op: 'read', room: 'pub-on', upTo: m.id });
    expect(await a.op('receipt')).toEqual({ op: 'receipt', room: 'pub-on', user: 'qb', seq: 1 });
    expect((await getJson(`${eng.http}/api/rooms/pub-on/reads?user=qa`)).body.reads).toEqual({ qb: 1 });
    await Promise.all([a.close(), b.close()]);
    expect(await eng.stop()).toBe(0);
  });
});
