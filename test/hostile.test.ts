// Hostile clients: every limit holds and is refused with a clear error, never a crash, a 500, a
// hang or anything lost for anyone else. Each block starts an engine with the limit set low.

import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Client, getJson, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';
import { until } from './support/wait.ts';

const ADMIN = 'hostile-admin-token-0123456789';

/** Open a WebSocket and resolve with the HTTP status it was refused with, or 101 if it opened. */
function upgradeStatus(url: string, opts: WebSocket.ClientOptions = {}, protocol = 'chat.v1.json'): Promise<{ status: number; ws: WebSocket | null }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocol, opts);
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0, ws: null }));
    ws.once('error', () => undefined);
  });
}

/** GET `url` from the local address `from`; resolves with the status. */
/** The types of a room's stored messages once there are at least `n` (a QUIT is stored after its leave is answered). */
async function storedTypes(url: string, n: number): Promise<string[]> {
  return until(`${n} messages stored at ${url}`, async () => {
    const types = ((await getJson(url)).body.messages as Frame[]).map((m) => m.type as string);
    return types.length >= n ? types : undefined;
  });
}

function statusFrom(from: string, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(url, { localAddress: from }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).once('error', reject);
  });
}

describe('byte budgets', () => {
  let e: EngineProc;
  beforeAll(async () => {
    e = await startEngine({ CHAT_MAX_TEXT_BYTES: '4k', CHAT_WINDOW_BYTES: '12k', ...SEND_LIMITS_OFF, CHAT_ENTER_QUIT: 'off', CHAT_ADMIN_TOKEN: ADMIN });
  });
  afterAll(async () => { await e?.stop(); });

  it('a text over CHAT_MAX_TEXT_BYTES once JSON-encoded is too_large; one at the limit is stored', async () => {
    const c = await Client.connect(e.url, { user: 'tb', protocol: 'chat.v1.msgpack' });
    await c.request({ op: 'join', room: 'tb' });
    // 1,000 control characters: 1,000 bytes of MessagePack, 6,002 bytes of JSON.
    c.send({ op: 'send', room: 'tb', text: '\x01'.repeat(1000), cid: 'ctl' });
    expect(await c.op('error')).toMatchObject({ code: 'too_large', cid: 'ctl' });
    // Exactly 4096 bytes as JSON: the quotes and 4094 ASCII characters.
    c.send({ op: 'send', room: 'tb', text: 'a'.repeat(4094), cid: 'edge' });
    expect(await c.op('ack')).toMatchObject({ cid: 'edge' });
    c.send({ op: 'send', room: 'tb', text: 'a'.repeat(4095), cid: 'over' });
    expect(await c.op('error')).toMatchObject({ code: 'too_large', cid: 'over' });
    const h = await c.request({ op: 'history', room: 'tb' });
    expect(h.messages.map((m: Frame) => m.cid)).toEqual(['edge']);
    await c.close();
  });

  it('a SYSTEM message over the limit is 413, and so is a STOMP SEND (ERROR)', async () => {
    const r = await fetch(`${e.http}/api/rooms/tb/messages`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ text: '"'.repeat(3000) }) });
    expect(r.status).toBe(413);
    expect(((await r.json()) as Frame).error.code).toBe('too_large');
    const ws = new WebSocket(`${e.url}?user=st`, 'v12.stomp');
    const frames: string[] = [];
    ws.on('message', (d: Buffer) => frames.push(d.toString()));
    const closed = new Promise<number>((res) => ws.once('close', (code) => res(code)));
    await new Promise((res) => ws.once('open', res));
    ws.send('CONNECT\naccept-version:1.2\n\n\0');
    ws.send(`SEND\ndestination:/app/rooms/tb\nreceipt:r1\n\n${'\\'.repeat(3000)}\0`);
    expect(await closed).toBe(1008);
    expect(frames.find((f) => f.startsWith('ERROR'))).toMatch(/too_large/);
  });

  it('a room whose window passed CHAT_WINDOW_BYTES still answers a full page, read from the store, gaplessly', async () => {
    const c = await Client.connect(e.url, { user: 'wb' });
    await c.request({ op: 'join', room: 'wb' });
    for (let i = 0; i < 20; i++) c.send({ op: 'send', room: 'wb', text: `${i}:${'w'.repeat(3000)}`, cid: `w${i}` });
    const acks: Frame[] = [];
    for (let i = 0; i < 20; i++) acks.push(await c.op('ack'));
    const stats = (await getJson(`${e.http}/api/stats`)).body;
    expect(stats.windowBytes).toBeLessThanOrEqual(128 << 20);
    const d = await Client.connect(e.url, { user: 'wb2' });
    const joined = await d.request({ op: 'join', room: 'wb', limit: 20 });
    expect(joined.seq).toBe(acks[19].seq);
    expect(joined.messages.map((m: Frame) => m.seq)).toEqual(acks.map((a) => a.seq));
    // And live messages continue at seq + 1.
    c.send({ op: 'send', room: 'wb', text: 'next', cid: 'wnext' });
    expect((await d.op('msg')).seq).toBe(acks[19].seq + 1);
    await c.close();
    await d.close();
  });
});

describe('the node-wide window budget', () => {
  it('never lets the windows together hold more than CHAT_WINDOWS_MAX_BYTES; every room still answers whole pages', async () => {
    const e = await startEngine({ CHAT_MAX_TEXT_BYTES: '4k', CHAT_WINDOW_BYTES: '16k', CHAT_WINDOWS_MAX_BYTES: '64k', ...SEND_LIMITS_OFF, CHAT_ENTER_QUIT: 'off' });
    try {
      const c = await Client.connect(e.url, { user: 'gb' });
      const last = new Map<string, Frame>();
      for (let r = 0; r < 12; r++) {
        const room = `gb-${r}`;
        await c.request({ op: 'join', room });
        for (let i = 0; i < 5; i++) c.send({ op: 'send', room, text: 'g'.repeat(3500), cid: `${room}-${i}` });
        for (let i = 0; i < 5; i++) last.set(room, await c.op('ack', (f) => f.room === room));
        await c.request({ op: 'leave', room });
        expect((await getJson(`${e.http}/api/stats`)).body.windowBytes).toBeLessThanOrEqual(64 << 10);
      }
      for (const [room, ack] of last) {
        const h = await c.request({ op: 'history', room, limit: 5 });
        expect(h.messages.map((m: Frame) => m.seq)).toEqual([1, 2, 3, 4, 5]);
        expect(h.messages.at(-1).id).toBe(ack.id);
      }
      await c.close();
    } finally {
      await e.stop();
    }
  });
});

describe('byte budgets on sends', () => {
  it('a connection, and an address, get so many bytes of messages per second; past them rate_limited', async () => {
    // Rates so low that no byte comes back during the test: only the bursts count. A 4 KiB text
    // measures about 4.3 KB with its fields, so one fits the 5 KiB bursts and a second does not.
    const e = await startEngine({
      CHAT_MAX_TEXT_BYTES: '4k', CHAT_SEND_BYTES_RATE: '1', CHAT_SEND_BYTES_BURST: '5k', CHAT_ADDRESS_BYTES_RATE: '1', CHAT_ENTER_QUIT: 'off',
    });
    try {
      const big = 'b'.repeat(4000);
      const a = await Client.connect(e.url, { user: 'big-a' });
      await a.request({ op: 'join', room: 'bytes' });
      expect((await a.request({ op: 'send', room: 'bytes', text: big, cid: 'a1' })).op).toBe('ack');
      const refused = await a.request({ op: 'send', room: 'bytes', text: big, cid: 'a2' });
      expect(refused).toMatchObject({ op: 'error', code: 'rate_limited', cid: 'a2' });
      expect(refused.message).toContain('bytes of messages per second on this connection');
      // Another user on another connection from the same address: the address's budget is spent.
      const b = await Client.connect(e.url, { user: 'big-b' });
      await b.request({ op: 'join', room: 'bytes' });
      const fromAddress = await b.request({ op: 'send', room: 'bytes', text: big, cid: 'b1' });
      expect(fromAddress).toMatchObject({ op: 'error', code: 'rate_limited', cid: 'b1' });
      expect(fromAddress.message).toContain('from this address');
      // Nothing refused was stored.
      const h = (await getJson(`${e.http}/api/rooms/bytes/messages`)).body;
      expect(h.messages.map((m: Frame) => m.cid ?? m.id)).toHaveLength(1);
      await a.close();
      await b.close();
    } finally {
      await e.stop();
    }
  });

  it('refuses a burst smaller than the largest message at start', async () => {
    await expect(startEngine({ CHAT_MAX_TEXT_BYTES: '16k', CHAT_SEND_BYTES_BURST: '8k' })).rejects.toThrow(/CHAT_SEND_BYTES_BURST/);
  });
});

describe('inbound bytes, charged before a frame is read', () => {
  let e: EngineProc;
  beforeAll(async () => {
    // A rate so low that no byte comes back during the test: only the burst counts, and it is
    // 2 x CHAT_MAX_PAYLOAD = 8 KiB here (the largest of the three it is taken from).
    e = await startEngine({
      CHAT_INBOUND_BYTES_RATE: '1', CHAT_MAX_PAYLOAD: '4k', CHAT_MAX_TEXT_BYTES: '4k', CHAT_SEND_BYTES_BURST: '5k',
      CHAT_SEND_RATE: '0', CHAT_SEND_BYTES_RATE: '0', CHAT_ADDRESS_BYTES_RATE: '0', CHAT_ENTER_QUIT: 'off',
    });
  });
  afterAll(async () => { await e?.stop(); });

  it('past the budget a frame is refused rate_limited unread: no cid echoed, malformed frames too; the connection stays', async () => {
    const c = await Client.connect(e.url, { user: 'in' });
    await c.request({ op: 'join', room: 'in' });
    const text = 'i'.repeat(3000);
    expect((await c.request({ op: 'send', room: 'in', text, cid: 'i1' })).op).toBe('ack');
    expect((await c.request({ op: 'send', room: 'in', text, cid: 'i2' })).op).toBe('ack');
    c.send({ op: 'send', room: 'in', text, cid: 'i3' });
    const refused = await c.op('error');
    expect(refused.code).toBe('rate_limited');
    expect(refused.message).toContain('CHAT_INBOUND_BYTES_RATE');
    expect(refused.cid).toBeUndefined(); // the frame was not decoded
    // Not even parsed: a malformed frame of the same size is refused for its bytes, not as bad_frame.
    c.ws.send('{' + 'x'.repeat(3000));
    expect(await c.op('error')).toMatchObject({ code: 'rate_limited' });
    // Small frames still fit what is left of the burst.
    expect((await c.request({ op: 'ping' })).op).toBe('pong');
    const h = (await getJson(`${e.http}/api/rooms/in/messages`)).body;
    expect(h.messages.map((m: Frame) => m.cid)).toEqual(['i1', 'i2']);
    // Another connection has its own budget.
    const d = await Client.connect(e.url, { user: 'in2' });
    await d.request({ op: 'join', room: 'in' });
    expect((await d.request({ op: 'send', room: 'in', text, cid: 'd1' })).op).toBe('ack');
    await c.close();
    await d.close();
  });

  it('a STOMP connection past its budget gets ERROR and is closed (its frames may span messages)', async () => {
    const ws = new WebSocket(`${e.url}?user=stin`, 'v12.stomp');
    const frames: string[] = [];
    ws.on('message', (d: Buffer) => frames.push(d.toString()));
    const closed = new Promise<number>((res) => ws.once('close', (code) => res(code)));
    await new Promise((res) => ws.once('open', res));
    ws.send('CONNECT\naccept-version:1.2\n\n\0');
    ws.send('SUBSCRIBE\nid:0\ndestination:/topic/rooms/stin\n\n\0');
    for (let i = 0; i < 3; i++) ws.send(`SEND\ndestination:/app/rooms/stin\nreceipt:r${i}\n\n${'s'.repeat(3000)}\0`);
    expect(await closed).toBe(1008);
    expect(frames.find((f) => f.startsWith('ERROR'))).toMatch(/rate_limited[\s\S]*CHAT_INBOUND_BYTES_RATE/);
  });

  it('refuses an inbound rate below the send bytes rate at start', async () => {
    await expect(startEngine({ CHAT_INBOUND_BYTES_RATE: '16k', CHAT_SEND_BYTES_RATE: '32k' })).rejects.toThrow(/CHAT_INBOUND_BYTES_RATE/);
  });
});

describe('rate limits on every op', () => {
  let e: EngineProc;
  beforeAll(async () => {
    e = await startEngine({
      // Rates so low that no token comes back during the test, however slow the box: only bursts count.
      CHAT_JOIN_RATE: '0.001', CHAT_JOIN_BURST: '4', CHAT_HISTORY_RATE: '0.001', CHAT_HISTORY_BURST: '2', CHAT_TYPING_RATE: '0.001', CHAT_TYPING_BURST: '1',
      CHAT_SEND_RATE: '0.001', CHAT_SEND_BURST: '2', CHAT_USER_RATE_FACTOR: '1', CHAT_HTTP_RATE: '0.001', CHAT_HTTP_BURST: '3',
    });
  });
  afterAll(async () => { await e?.stop(); });

  it('a join/leave loop is refused rate_limited and posts no ENTER or QUIT for the refused ones', async () => {
    const c = await Client.connect(e.url, { user: 'loop' });
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await c.request({ op: i % 2 === 0 ? 'join' : 'leave', room: 'loop' });
      codes.push(r.op === 'error' ? r.code : r.op);
    }
    expect(codes).toEqual(['joined', 'left', 'joined', 'left', 'rate_limited', 'rate_limited']);
    // The last QUIT is posted as the leave is answered, not before: wait until it is stored.
    expect(await storedTypes(`${e.http}/api/rooms/loop/messages`, 4)).toEqual(['ENTER', 'QUIT', 'ENTER', 'QUIT']);
    await c.close();
  });

  it('joining and leaving one room is limited per room (CHAT_ROOM_JOIN_RATE); other rooms still join', async () => {
    // The connection's join bucket is large (a reconnect joins many rooms at once); one room's own is 3.
    const f = await startEngine({ CHAT_ROOM_JOIN_RATE: '0.001', CHAT_ROOM_JOIN_BURST: '3', CHAT_JOIN_BURST: '400' });
    try {
      const c = await Client.connect(f.url, { user: 'churn' });
      const codes: string[] = [];
      // The first join is free; the leave, the rejoin and the second leave spend the burst of 3.
      for (let i = 0; i < 6; i++) {
        const r = await c.request({ op: i % 2 === 0 ? 'join' : 'leave', room: 'churn' });
        codes.push(r.op === 'error' ? r.code : r.op);
      }
      expect(codes).toEqual(['joined', 'left', 'joined', 'left', 'rate_limited', 'rate_limited']);
      const refused = await c.request({ op: 'join', room: 'churn' });
      expect(refused.message).toContain('of one room');
      // A join of the same room while in it is charged too (each answers a page).
      for (let i = 0; i < 5; i++) expect((await c.request({ op: 'join', room: `other${i}` })).op).toBe('joined');
      const again = [];
      for (let i = 0; i < 4; i++) again.push((await c.request({ op: 'join', room: 'other0' })).op);
      expect(again).toEqual(['joined', 'joined', 'joined', 'error']);
      expect(await storedTypes(`${f.http}/api/rooms/churn/messages`, 4)).toEqual(['ENTER', 'QUIT', 'ENTER', 'QUIT']);
      await c.close();
    } finally {
      await f.stop();
    }
  });

  it("a user's connections share one budget (CHAT_USER_RATE_FACTOR)", async () => {
    const a = await Client.connect(e.url, { user: 'shared' });
    const b = await Client.connect(e.url, { user: 'shared' });
    await a.request({ op: 'join', room: 'shared' });
    expect((await a.request({ op: 'history', room: 'shared' })).op).toBe('history');
    expect((await b.request({ op: 'history', room: 'shared' })).op).toBe('history');
    expect(await b.request({ op: 'history', room: 'shared' })).toMatchObject({ op: 'error', code: 'rate_limited' });
    await a.close();
    await b.close();
  });

  it('history, read, typing and send each have their bucket', async () => {
    const c = await Client.connect(e.url, { user: 'ops' });
    await c.request({ op: 'join', room: 'ops' });
    const s1 = await c.request({ op: 'send', room: 'ops', text: 'x', cid: 's1' });
    expect(s1.op).toBe('ack');
    expect((await c.request({ op: 'send', room: 'ops', text: 'x', cid: 's2' })).op).toBe('ack');
    expect(await c.request({ op: 'send', room: 'ops', text: 'x', cid: 's3' })).toMatchObject({ op: 'error', code: 'rate_limited', cid: 's3' });
    expect((await c.request({ op: 'read', room: 'ops', upTo: s1.id })).op).toBe('read');
    expect((await c.request({ op: 'history', room: 'ops' })).op).toBe('history');
    expect(await c.request({ op: 'read', room: 'ops', upTo: s1.id })).toMatchObject({ op: 'error', code: 'rate_limited' });
    c.send({ op: 'typing', room: 'ops' });
    expect(await c.request({ op: 'typing', room: 'ops' })).toMatchObject({ op: 'error', code: 'rate_limited' });
    await c.close();
  });

  it('the HTTP API is limited per client address: 429 past the burst', async () => {
    const statuses: number[] = [];
    // From an address of its own (the other tests' requests come from 127.0.0.1).
    for (let i = 0; i < 5; i++) statuses.push(await statusFrom('127.0.0.9', `${e.http}/api/rooms?subject=s&user=h${i}`));
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.slice(3)).toEqual([429, 429]);
    // Not the operator's endpoints.
    expect((await fetch(`${e.http}/healthz`)).status).toBe(200);
  });
});

describe('connection caps before the upgrade', () => {
  it('per address 429, all together 503; a closed connection frees its slot; X-Forwarded-For only from a trusted proxy', async () => {
    const e = await startEngine({ CHAT_MAX_CONNS_PER_IP: '2', CHAT_MAX_CONNS: '4', CHAT_TRUST_PROXY: '127.0.0.3' });
    try {
      const from = (addr: string, xff?: string): WebSocket.ClientOptions => ({ localAddress: addr, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } });
      const a1 = await upgradeStatus(`${e.url}?user=c1`, from('127.0.0.2'));
      const a2 = await upgradeStatus(`${e.url}?user=c2`, from('127.0.0.2'));
      expect([a1.status, a2.status]).toEqual([101, 101]);
      expect((await upgradeStatus(`${e.url}?user=c3`, from('127.0.0.2'))).status).toBe(429);
      // An untrusted peer cannot pose as someone else.
      expect((await upgradeStatus(`${e.url}?user=c3`, from('127.0.0.2', '198.51.100.1'))).status).toBe(429);
      a1.ws!.close();
      await new Promise((r) => a1.ws!.once('close', r));
      const again = await upgradeStatus(`${e.url}?user=c4`, from('127.0.0.2'));
      expect(again.status).toBe(101);
      // Behind the trusted proxy, each client counts on its own; past 4 in all: 503.
      const p1 = await upgradeStatus(`${e.url}?user=c5`, from('127.0.0.3', '198.51.100.1'));
      const p2 = await upgradeStatus(`${e.url}?user=c6`, from('127.0.0.3', '198.51.100.2'));
      expect([p1.status, p2.status]).toEqual([101, 101]);
      expect((await upgradeStatus(`${e.url}?user=c7`, from('127.0.0.3', '198.51.100.3'))).status).toBe(503);
      for (const w of [a2, again, p1, p2]) w.ws!.close();
    } finally {
      await e.stop();
    }
  });
});

describe('unauthenticated connections', () => {
  it('a STOMP connection that never sends CONNECT is closed after CHAT_AUTH_TIMEOUT with ERROR; one that did stays', async () => {
    const e = await startEngine({ CHAT_AUTH_TIMEOUT: '300ms' });
    try {
      const idle = new WebSocket(e.url, 'v12.stomp');
      const frames: string[] = [];
      idle.on('message', (d: Buffer) => frames.push(d.toString()));
      const closed = new Promise<number>((r) => idle.once('close', (code) => r(code)));
      const good = await Client.connect(e.url, { user: 'g' });
      const stomp = new WebSocket(`${e.url}?user=s`, 'v12.stomp');
      const stompFrames: string[] = [];
      stomp.on('message', (d: Buffer) => stompFrames.push(d.toString()));
      await new Promise((r) => stomp.once('open', r));
      stomp.send('CONNECT\naccept-version:1.2\n\n\0');
      expect(await closed).toBe(1008);
      expect(frames[0]).toMatch(/^ERROR\n[\s\S]*CHAT_AUTH_TIMEOUT/);
      expect(stompFrames[0]).toMatch(/^CONNECTED/);
      stomp.send('DISCONNECT\nreceipt:bye\n\n\0');
      expect(await new Promise<number>((r) => stomp.once('close', r))).toBe(1000);
      expect((await good.request({ op: 'ping' })).op).toBe('pong');
      await good.close();
    } finally {
      await e.stop();
    }
  });
});

describe('bad names and cursors', () => {
  let e: EngineProc;
  beforeAll(async () => {
    e = await startEngine({ CHAT_ADMIN_TOKEN: ADMIN });
  });
  afterAll(async () => { await e?.stop(); });

  it('refuses display names and room names with bidi, invisible or C1 characters', async () => {
    for (const name of ['evil\u202egnp.exe', 'zero\u200bwidth', 'c1\u0085', 'bom\ufeff']) {
      expect((await upgradeStatus(`${e.url}?user=n&name=${encodeURIComponent(name)}`)).status, JSON.stringify(name)).toBe(400);
    }
    expect((await upgradeStatus(`${e.url}?user=n&name=${encodeURIComponent('Jörg 김 😀')}`)).status).toBe(101);
    const r = await fetch(`${e.http}/api/rooms`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'public', id: 'named', name: 'a\u2066b' }) });
    expect(r.status).toBe(400);
  });

  it('an id of 2^63 or more in a cursor is invalid, not a 500', async () => {
    const r = await fetch(`${e.http}/api/rooms/lobby/messages?before=8000000000000`);
    expect(r.status).toBe(400);
    const c = await Client.connect(e.url, { user: 'cur' });
    expect(await c.request({ op: 'history', room: 'lobby', after: 'ZZZZZZZZZZZZZ' })).toMatchObject({ op: 'error', code: 'invalid' });
    expect(await c.request({ op: 'join', room: 'lobby', since: 'F000000000000' })).toMatchObject({ op: 'error', code: 'invalid' });
    await c.close();
  });
});

describe('CHAT_AUTH=none with CHAT_GUEST_ROOMS=public', () => {
  it('refuses group and direct rooms and /api/me/* to guests, says so at start, and lets the admin in', async () => {
    const e = await startEngine({ CHAT_GUEST_ROOMS: 'public', CHAT_ADMIN_TOKEN: ADMIN });
    try {
      expect(e.stderr.join('')).toMatch(/CHAT_AUTH=none: every client names itself/);
      const guest = { 'content-type': 'application/json' };
      const mk = await fetch(`${e.http}/api/rooms?user=g1`, { method: 'POST', headers: guest, body: JSON.stringify({ kind: 'group', members: ['g2'] }) });
      expect(mk.status).toBe(403);
      expect((await fetch(`${e.http}/api/me/rooms?user=g1`)).status).toBe(403);
      const adm = await fetch(`${e.http}/api/rooms`, { method: 'POST', headers: { ...guest, authorization: `Bearer ${ADMIN}` }, body: JSON.stringify({ kind: 'group', id: 'staff', members: ['g1'] }) });
      expect(adm.status).toBe(201);
      const c = await Client.connect(e.url, { user: 'g1' });
      expect(await c.request({ op: 'join', room: 'staff' })).toMatchObject({ op: 'error', code: 'forbidden' });
      expect((await c.request({ op: 'join', room: 'lobby' })).op).toBe('joined');
      await c.close();
    } finally {
      await e.stop();
    }
  });
});

describe('join with a since far behind', () => {
  it('is answered recovered:false from the latest page when more than CHAT_RECOVERY_MAX messages are missing', async () => {
    const e = await startEngine({ CHAT_RECOVERY_MAX: '5', CHAT_WINDOW: '100', ...SEND_LIMITS_OFF, CHAT_ENTER_QUIT: 'off' });
    try {
      const c = await Client.connect(e.url, { user: 'far', protocol: 'chat.v1.msgpack' });
      await c.request({ op: 'join', room: 'far' });
      for (let i = 0; i < 110; i++) c.send({ op: 'send', room: 'far', text: `${i}`, cid: `f${i}` });
      const acks: Frame[] = [];
      for (let i = 0; i < 110; i++) acks.push(await c.op('ack'));
      const d = await Client.connect(e.url, { user: 'far2' });
      const j = await d.request({ op: 'join', room: 'far', since: acks[0].id, limit: 3 });
      expect(j).toMatchObject({ op: 'joined', recovered: false, seq: 110 });
      expect(j.messages.map((m: Frame) => m.seq)).toEqual([108, 109, 110]);
      const near = await Client.connect(e.url, { user: 'far3' });
      const k = await near.request({ op: 'join', room: 'far', since: acks[105].id });
      expect(k).toMatchObject({ recovered: true });
      expect(k.messages.map((m: Frame) => m.seq)).toEqual([107, 108, 109, 110]);
      for (const x of [c, d, near]) await x.close();
    } finally {
      await e.stop();
    }
  });
});
