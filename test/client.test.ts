// The client library (@uchat/client, client/) against real engine processes: a kill -9 of the
// engine mid-stream, a dropped connection that lost an ack, rate limits, refusals, its own bounds,
// close(), token refresh after a 1008 and the resets. Connections are cut through a tap on the
// library's real `ws` socket or a TCP proxy, at events the test waits for, never after a sleep.

import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WS from 'ws';
import { applyRetraction, ChatClient, ChatError, isRetraction, type ChatClientOptions, type SendAck, type StateDetail } from '../client/src/index.ts';
import { nextState, outOfOrder, relay, seededRandom, Seen, Tap } from './client-helpers.ts';
import { CORE, fetchRoom } from './reliability-helpers.ts';
import { getJson } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';
import { until } from './support/wait.ts';
import { DbProxy } from './mysql-helpers.ts';

/** Options every test client gets: `ws`, short seeded backoff. */
function opts(url: string, user: string, extra: Partial<ChatClientOptions> = {}): ChatClientOptions {
  return {
    url, user, name: user, WebSocket: WS, random: seededRandom(),
    reconnect: { initialDelay: 20, maxDelay: 300 }, retry: { initialDelay: 20, maxDelay: 300 }, ...extra,
  };
}

/** The promise's rejection (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<ChatError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ChatError);
    return err as ChatError;
  }
  throw new Error('expected a rejection, got a value');
}

describe('client: kill -9 of the engine mid-stream', () => {
  it('200 sends without waiting, SIGKILL and restart on the same port and store: every send resolves once, both clients see all 200 once in seq order', async () => {
    let eng = await startEngine({ ...SEND_LIMITS_OFF });
    const { port, dir } = eng;
    const front = await relay(port);
    const tapA = new Tap();
    const tapB = new Tap();
    const a = new ChatClient(opts(front.url, 'k9-a', { WebSocket: tapA.WebSocket }));
    const b = new ChatClient(opts(front.url, 'k9-b', { WebSocket: tapB.WebSocket }));
    const seenA = new Seen();
    const seenB = new Seen();
    const all: Promise<void>[] = [];
    try {
      await a.join('k9', seenA.handlers()).ready;
      await b.join('k9', seenB.handlers()).ready;
      const settled = new Map<number, SendAck[]>();
      const send = (i: number): Promise<void> => a.send('k9', `m${i}`).then((ack) => {
        settled.set(i, [...(settled.get(i) ?? []), ack]);
      });
      const first = Array.from({ length: 100 }, (_, i) => send(i));
      all.push(...first);
      await first[0];
      // The first ack is back: the other 100 go out and the engine dies before it can answer them.
      const rest = Array.from({ length: 100 }, (_, i) => send(100 + i));
      all.push(...rest);
      eng.proc.kill('SIGKILL');
      expect(await eng.exited).toBeNull();
      eng = await startEngine({ ...SEND_LIMITS_OFF, CHAT_PORT: String(port) }, dir);
      await Promise.all([...first, ...rest]);

      // Every send resolved once, as a distinct stored message; some were answered only by the restarted engine.
      expect([...settled.values()].every((acks) => acks.length === 1)).toBe(true);
      expect(settled.size).toBe(200);
      const acks = [...settled.entries()].sort((x, y) => x[0] - y[0]).map(([, [ack]]) => ack);
      expect(new Set(acks.map((x) => x.id)).size).toBe(200);
      const ackConns = new Map(tapA.received.filter((r) => r.f.op === 'ack').map((r) => [r.f.cid as string, r.conn]));
      expect(acks.filter((x) => (ackConns.get(x.cid) ?? 0) > 0).length).toBeGreaterThan(0);

      // Both clients rejoined the restarted engine (their ENTERs are stored before `joined`).
      await Promise.all([tapA, tapB].map((t) => t.until('a rejoin answered by the restarted engine', (x) => x.received.some((r) => r.conn > 0 && r.f.op === 'joined'))));
      // The store holds each text once, under the id its ack named.
      const stored = await fetchRoom(eng.http, 'k9');
      const chat = stored.filter((m) => m.type === 'CHAT');
      expect(chat.map((m) => m.text)).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`));
      expect(chat.map((m) => m.id)).toEqual(acks.map((x) => x.id));

      // Both clients saw the whole room, each message once, in seq order.
      const last = stored.at(-1)!;
      await seenA.until('A sees the last stored message', (s) => s.messages.some((m) => m.id === last.id));
      await seenB.until('B sees the last stored message', (s) => s.messages.some((m) => m.id === last.id));
      for (const seen of [seenA, seenB]) {
        expect(seen.resets).toEqual([]);
        expect(outOfOrder(seen.messages)).toEqual([]);
        expect(seen.texts()).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`));
        expect(seen.messages.map((m) => m.id)).toEqual(stored.map((m) => m.id));
      }
      a.close();
      b.close();
      expect(await eng.stop()).toBe(0);
    } finally {
      a.close();
      b.close();
      await Promise.allSettled(all);
      await eng.stop();
      await front.close();
    }
  });
});

describe('client: reconnects, retries and refusals', () => {
  let eng: EngineProc;

  beforeAll(async () => {
    eng = await startEngine({ ...CORE, CHAT_RECOVERY_MAX: '5', CHAT_WINDOW: '100', CHAT_TEST_HOOKS: '1' });
  });

  afterAll(async () => {
    if (eng) expect(await eng.stop()).toBe(0);
  });

  it('a connection dropped after the engine stored a send but before its ack arrived: the send is written again with its cid, resolves once with the original message, stored once', async () => {
    const tap = new Tap();
    const a = new ChatClient(opts(eng.url, 'drop-a', { WebSocket: tap.WebSocket }));
    const b = new ChatClient(opts(eng.url, 'drop-b'));
    const seenA = new Seen();
    const seenB = new Seen();
    try {
      await a.join('drop', seenA.handlers()).ready;
      await b.join('drop', seenB.handlers()).ready;
      await a.send('drop', 'before');
      tap.hold = (f) => f.op === 'ack';
      let resolved = 0;
      const p = a.send('drop', 'lost ack').then((ack) => { resolved++; return ack; });
      const delivered = await seenB.text('lost ack');
      await tap.until('the ack held back', (t) => t.held.length === 1);
      expect(resolved).toBe(0);
      tap.hold = null;
      tap.current.cut();
      const ack = await p;
      expect(ack.id).toBe(delivered.id);
      expect(ack.seq).toBe(delivered.seq);
      const writes = tap.sentOps('send').filter((s) => s.f.cid === ack.cid);
      expect(writes.map((s) => s.conn)).toEqual([0, 1]);
      // The rejoin asked for what followed the last message the client had seen.
      const joins = tap.sentOps('join');
      expect(joins.map((s) => s.conn)).toEqual([0, 1]);
      expect(joins[1].f.since).toBe(seenA.messages.at(-1)!.id);
      await a.send('drop', 'after');
      await seenA.text('after');
      expect(resolved).toBe(1);
      expect(seenA.texts()).toEqual(['before', 'lost ack', 'after']);
      expect(outOfOrder(seenA.messages)).toEqual([]);
      expect((await fetchRoom(eng.http, 'drop')).map((m) => m.text)).toEqual(['before', 'lost ack', 'after']);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a connection dropped while its send waits in a held commit: written again with its cid, it joins the first copy and resolves once, after the commit', async () => {
    const tap = new Tap();
    const a = new ChatClient(opts(eng.url, 'held-a', { WebSocket: tap.WebSocket }));
    const seen = new Seen();
    const hook = (verb: string): Promise<Response> => fetch(`${eng.http}/_test/${verb}/commit`, { method: 'POST' });
    try {
      await a.join('held', seen.handlers()).ready;
      expect((await hook('hold')).status).toBe(200);
      let resolved = 0;
      const p = a.send('held', 'in flight').then((ack) => { resolved++; return ack; });
      expect((await getJson(`${eng.http}/_test/waiting/commit?n=1`)).body).toEqual({ waiting: 1 });
      tap.current.cut();
      await tap.until('the send written again on the new connection', (t) => t.sentOps('send').length === 2);
      // Frames of a connection are handled in order: once this page is answered, the engine has
      // taken the resend, while the first copy still waits in the held commit.
      await a.history('held');
      expect(resolved).toBe(0);
      expect(seen.texts()).toEqual([]);
      await hook('release');
      const ack = await p;
      await seen.text('in flight');
      expect(resolved).toBe(1);
      expect(tap.sentOps('send').map((s) => [s.conn, s.f.cid])).toEqual([[0, ack.cid], [1, ack.cid]]);
      expect(seen.messages.map((m) => m.id)).toEqual([ack.id]);
      expect((await fetchRoom(eng.http, 'held')).map((m) => m.id)).toEqual([ack.id]);
    } finally {
      a.close();
      await fetch(`${eng.http}/_test/release/commit`, { method: 'POST' });
    }
  });

  it('sends written while disconnected go out, in order, once the connection is back', async () => {
    const proxy = await DbProxy.start(eng.url.replace('ws://', 'http://'));
    const url = `ws://127.0.0.1:${proxy.port}/ws`;
    const a = new ChatClient(opts(url, 'queue-a'));
    const seen = new Seen();
    try {
      await a.join('queue', seen.handlers()).ready;
      const down = nextState(a, 'disconnected');
      await proxy.cut();
      await down;
      const sends = ['q1', 'q2', 'q3'].map((t) => a.send('queue', t));
      await proxy.restore();
      const acks = await Promise.all(sends);
      expect(acks.map((x) => x.seq)).toEqual([acks[0].seq, acks[0].seq + 1, acks[0].seq + 2]);
      await seen.text('q3');
      expect(seen.texts()).toEqual(['q1', 'q2', 'q3']);
    } finally {
      a.close();
      await proxy.cut();
    }
  });

  it('a rejoin refused rate_limited is retried with backoff (the refusal stands in for the engine\'s join limit)', async () => {
    const tap = new Tap();
    const a = new ChatClient(opts(eng.url, 'rejoin-a', { WebSocket: tap.WebSocket }));
    const seen = new Seen();
    try {
      const sub = a.join('rejoin', seen.handlers());
      await sub.ready;
      await a.send('rejoin', 'one');
      // The first join on the next connection is answered rate_limited, as the engine answers a
      // join over its limit (nothing joined); the client must try again.
      let refused = 0;
      tap.rewrite = (f) => {
        if (f.op !== 'joined' || refused > 0) return null;
        refused++;
        return { op: 'error', code: 'rate_limited', message: 'slow down', ref: f.ref };
      };
      tap.current.cut();
      await tap.until('a second join on the new connection', (t) => t.sentOps('join').filter((s) => s.conn === 1).length === 2);
      tap.rewrite = null;
      await a.send('rejoin', 'two');
      await seen.text('two');
      expect(refused).toBe(1);
      expect(seen.texts()).toEqual(['one', 'two']);
      expect(outOfOrder(seen.messages)).toEqual([]);
    } finally {
      a.close();
    }
  });

  it('refusals reject with a typed ChatError carrying the engine\'s code (and the send\'s cid)', async () => {
    const made = await fetch(`${eng.http}/api/rooms?user=owner&name=Owner`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'group', id: 'club', members: ['someone'] }),
    });
    expect(made.status).toBe(201);
    const tap = new Tap();
    const a = new ChatClient(opts(eng.url, 'outsider', { WebSocket: tap.WebSocket }));
    try {
      const err = await rejection(a.send('club', 'let me in', { cid: 'cid-refused' }));
      expect(err.code).toBe('forbidden');
      expect(err.cid).toBe('cid-refused');
      expect(err.room).toBe('club');
      let left: unknown = null;
      const sub = a.join('club', { onMessage: () => {}, onLeft: (info) => { left = info; } });
      const joinErr = await rejection(sub.ready);
      expect(joinErr.code).toBe('forbidden');
      expect(left).toMatchObject({ room: 'club', reason: 'refused', error: { code: 'forbidden' } });
      expect((await rejection(a.history('club', { before: 'not-an-id' }))).code).toBe('invalid');
      // Larger than the engine takes: refused before it is written.
      expect((await rejection(a.send('club', 'x'.repeat(70_000)))).code).toBe('too_large');
      expect(tap.sentOps('send').map((s) => s.f.text.length)).toEqual(['let me in'.length]);
      expect((await getJson(`${eng.http}/api/rooms/club/messages?user=someone`)).body.messages).toEqual([]);
    } finally {
      a.close();
    }
  });

  it('pending sends are bounded: past maxPending send() rejects pending_full; past maxPendingAge it rejects timeout, and a retry with the same cid resolves with the stored message', async () => {
    const tap = new Tap();
    const a = new ChatClient(opts(eng.url, 'bound-a', { WebSocket: tap.WebSocket, maxPending: 3, maxPendingAge: 500 }));
    try {
      // Written before the client has connected: all four are pending at once.
      const sends = ['b1', 'b2', 'b3', 'b4'].map((t) => a.send('bound', t));
      const full = await rejection(sends[3]);
      expect(full.code).toBe('pending_full');
      await Promise.all(sends.slice(0, 3));
      // An ack that never arrives: the send gives up after maxPendingAge, its outcome unknown.
      tap.hold = (f) => f.op === 'ack';
      const late = await rejection(a.send('bound', 'late', { cid: 'late-1' }));
      expect(late.code).toBe('timeout');
      expect(late.cid).toBe('late-1');
      await tap.until('the engine\'s ack of late-1', (t) => t.held.length === 1);
      expect(tap.held[0].cid).toBe('late-1');
      tap.hold = null;
      const again = await a.send('bound', 'late', { cid: 'late-1' });
      expect(again.id).toBe(tap.held[0].id);
      expect((await fetchRoom(eng.http, 'bound')).map((m) => m.text)).toEqual(['b1', 'b2', 'b3', 'late']);
    } finally {
      a.close();
    }
  });

  it('close() rejects every pending send, request and join with `closed`, and the client stays closed', async () => {
    const tap = new Tap();
    const a = new ChatClient(opts(eng.url, 'close-a', { WebSocket: tap.WebSocket }));
    const states: string[] = [];
    a.on('state', (s) => states.push(s));
    try {
      await a.join('closing', { onMessage: () => {} }).ready;
      tap.hold = (f) => f.op === 'ack' || f.op === 'joined' || f.op === 'history';
      const sends = [a.send('closing', 'c1'), a.send('closing', 'c2')];
      const page = a.history('closing');
      const sub = a.join('closing-2', { onMessage: () => {} });
      await tap.until('acks, joined and history held back', (t) => t.held.length === 4);
      a.close();
      for (const p of [...sends, page, sub.ready]) expect((await rejection(p)).code).toBe('closed');
      expect(states.at(-1)).toBe('closed');
      expect((await rejection(a.send('closing', 'c3'))).code).toBe('closed');
      expect(() => a.join('closing-3', { onMessage: () => {} })).toThrow(ChatError);
      expect(tap.sockets.length).toBe(1);
    } finally {
      a.close();
    }
  });

  it('a rejoin the engine cannot recover (recovered:false: more than CHAT_RECOVERY_MAX missed) calls onReset, then delivers the latest page from its start', async () => {
    const proxy = await DbProxy.start(eng.url.replace('ws://', 'http://'));
    const a = new ChatClient(opts(`ws://127.0.0.1:${proxy.port}/ws`, 'reset-a'));
    const b = new ChatClient(opts(eng.url, 'reset-b'));
    const seen = new Seen();
    try {
      await a.join('gap', seen.handlers()).ready;
      await b.send('gap', 'seen');
      await seen.text('seen');
      const down = nextState(a, 'disconnected');
      await proxy.cut();
      await down;
      // More than the room's hot window (100), so the engine reads the gap from the store and finds
      // it longer than CHAT_RECOVERY_MAX (5).
      const missed = Array.from({ length: 110 }, (_, i) => `missed ${i}`);
      await Promise.all(missed.map((t) => b.send('gap', t)));
      await proxy.restore();
      await seen.text('missed 109');
      expect(seen.resets).toMatchObject([{ room: 'gap', reason: 'gap' }]);
      expect(seen.resetAt).toEqual([1]);
      // After the reset: the latest page (50), from its start, in seq order.
      const after = seen.messages.slice(1);
      expect(after.map((m) => m.text)).toEqual(missed.slice(-50));
      expect(outOfOrder(after)).toEqual([]);
    } finally {
      a.close();
      b.close();
      await proxy.cut();
    }
  });

  it('a rejoin without a cursor (joined with limit 0) fills what it missed from history, holding live messages meanwhile', async () => {
    const proxy = await DbProxy.start(eng.url.replace('ws://', 'http://'));
    const tap = new Tap();
    const a = new ChatClient(opts(`ws://127.0.0.1:${proxy.port}/ws`, 'fill-a', { WebSocket: tap.WebSocket }));
    const b = new ChatClient(opts(eng.url, 'fill-b'));
    const seen = new Seen();
    try {
      await b.send('fill', 'old');
      const sub = a.join('fill', seen.handlers({ limit: 0 }));
      await sub.ready;
      expect(sub.lastId).toBeUndefined();
      const down = nextState(a, 'disconnected');
      await proxy.cut();
      await down;
      for (let i = 0; i < 3; i++) await b.send('fill', `away ${i}`);
      // The fill's history page is held back: a live message arriving meanwhile waits behind it.
      tap.hold = (f) => f.op === 'history';
      await proxy.restore();
      await tap.until('the fill\'s history page', (t) => t.held.length === 1);
      await b.send('fill', 'live');
      await tap.until('the live message', (t) => t.received.some((r) => r.f.op === 'msg' && r.f.text === 'live'));
      expect(seen.messages).toEqual([]);
      tap.hold = null;
      tap.release();
      await seen.text('live');
      expect(seen.resets).toEqual([]);
      expect(seen.texts()).toEqual(['away 0', 'away 1', 'away 2', 'live']);
      expect(outOfOrder(seen.messages)).toEqual([]);
    } finally {
      a.close();
      b.close();
      await proxy.cut();
    }
  });
});

describe('client: a silent connection, frames over the engine\'s limit, types it does not know', () => {
  let eng: EngineProc;

  beforeAll(async () => {
    eng = await startEngine({ ...CORE, CHAT_MAX_PAYLOAD: '1024' });
  });

  afterAll(async () => {
    if (eng) expect(await eng.stop()).toBe(0);
  });

  it('a connection that stops answering is given up after the heartbeat\'s timeout, and the client reconnects', async () => {
    const tap = new Tap();
    const a = new ChatClient(opts(eng.url, 'hb-a', { WebSocket: tap.WebSocket, heartbeat: { interval: 100, timeout: 200 } }));
    const seen = new Seen();
    try {
      await a.join('hb', seen.handlers()).ready;
      // The engine's answers stop reaching the client (a half-open connection).
      tap.hold = () => true;
      const dropped = await nextState(a, 'disconnected');
      expect(dropped).toMatchObject({ code: 1006, reason: 'no answer to ping' });
      expect(tap.held.every((f) => f.op === 'pong')).toBe(true);
      tap.hold = null;
      await nextState(a, 'connected');
      await a.send('hb', 'after');
      await seen.text('after');
      expect(tap.sockets.length).toBe(2);
    } finally {
      a.close();
    }
  });

  it('a send over CHAT_MAX_PAYLOAD rejects too_large: up to twice it from its error frame, beyond from the 1009 close; the connection comes back', async () => {
    const a = new ChatClient(opts(eng.url, 'big-a'));
    const states: StateDetail[] = [];
    a.on('state', (s, d) => { if (s === 'disconnected') states.push(d); });
    try {
      await nextState(a, 'connected');
      const over = await rejection(a.send('big', 'x'.repeat(1500), { cid: 'big-1' }));
      expect(over).toMatchObject({ code: 'too_large', cid: 'big-1' });
      expect(states).toEqual([]);
      const far = await rejection(a.send('big', 'x'.repeat(3000), { cid: 'big-2' }));
      expect(far).toMatchObject({ code: 'too_large', cid: 'big-2' });
      expect(states.map((d) => d.code)).toEqual([1009]);
      const ack = await a.send('big', 'small');
      expect((await fetchRoom(eng.http, 'big')).map((m) => m.id)).toEqual([ack.id]);
    } finally {
      a.close();
    }
  });

  it('a message of a type the library does not know reaches onMessage unchanged, in its place', async () => {
    const tap = new Tap();
    const a = new ChatClient(opts(eng.url, 'type-a', { WebSocket: tap.WebSocket }));
    const seen = new Seen();
    try {
      await a.join('types', seen.handlers()).ready;
      // A later engine's event, as it would arrive: the stored message re-labelled on the way in.
      tap.rewrite = (f) => (f.op === 'msg' && f.text === 'two' ? { ...f, type: 'EDIT', target: 'x', editedAt: 1 } : null);
      for (const t of ['one', 'two', 'three']) await a.send('types', t);
      await seen.text('three');
      expect(seen.messages.map((m) => m.type)).toEqual(['CHAT', 'EDIT', 'CHAT']);
      expect(seen.messages[1]).toMatchObject({ type: 'EDIT', target: 'x', editedAt: 1, text: 'two' });
      expect(seen.messages[1]).not.toHaveProperty('op');
    } finally {
      a.close();
    }
  });
});

describe('client: rate limits', () => {
  it('sends refused rate_limited are retried with backoff until acked, each stored once', async () => {
    const eng = await startEngine({ ...CORE, CHAT_SEND_RATE: '10', CHAT_SEND_BURST: '2' });
    const tap = new Tap();
    const a = new ChatClient(opts(eng.url, 'rl-a', { WebSocket: tap.WebSocket }));
    try {
      await nextState(a, 'connected');
      const texts = Array.from({ length: 8 }, (_, i) => `rl ${i}`);
      const acks = await Promise.all(texts.map((t) => a.send('rl', t)));
      expect(tap.received.filter((r) => r.f.op === 'error' && r.f.code === 'rate_limited').length).toBeGreaterThan(0);
      expect(new Set(acks.map((x) => x.id)).size).toBe(8);
      const stored = await fetchRoom(eng.http, 'rl');
      expect(stored.map((m) => m.text).sort()).toEqual([...texts].sort());
    } finally {
      a.close();
      expect(await eng.stop()).toBe(0);
    }
  });
});

describe('client: token refresh', () => {
  const secret = 'client-test-secret-of-at-least-32-chars!';
  const key = new TextEncoder().encode(secret);
  const token = (sub: string, seconds: number): Promise<string> =>
    new SignJWT({ name: sub }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime(Math.floor(Date.now() / 1000) + seconds).sign(key);

  it('a token that expires mid-session (close 1008): the token function is called again and the client carries on', async () => {
    const admin = 'client-test-admin-token';
    const eng = await startEngine({ CHAT_AUTH: 'jwt', CHAT_JWT_SECRET: secret, CHAT_ADMIN_TOKEN: admin, CHAT_JWT_CLOCK_TOLERANCE: '0' });
    const made = await fetch(`${eng.http}/api/rooms`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, body: JSON.stringify({ kind: 'public', id: 'fresh' }),
    });
    expect(made.status).toBe(201);
    let calls = 0;
    const a = new ChatClient({
      ...opts(eng.url, 'unused'), user: undefined, name: undefined,
      // The first token expires within 2 s; every later one in an hour.
      token: () => token('jwt-a', ++calls === 1 ? 2 : 3600),
    });
    const seen = new Seen();
    try {
      const expired = nextState(a, 'disconnected');
      // The join may answer before the expiry or after the reconnect: either way it is there.
      const joined = a.join('fresh', seen.handlers()).ready;
      const detail: StateDetail = await expired;
      expect(detail).toMatchObject({ code: 1008, reason: 'token expired' });
      await nextState(a, 'connected');
      expect(calls).toBe(2);
      await joined;
      await a.send('fresh', 'second token');
      await seen.text('second token');
      expect(seen.texts()).toEqual(['second token']);
      expect(seen.messages.every((m) => m.type !== 'CHAT' || m.from.id === 'jwt-a')).toBe(true);
      expect(outOfOrder(seen.messages)).toEqual([]);
    } finally {
      a.close();
      expect(await eng.stop()).toBe(0);
    }
  });
});

describe('client: delete, edit and read receipts', () => {
  const ADMIN = 'client-admin-token-0123456789';
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ ...CORE, CHAT_ADMIN_TOKEN: ADMIN }); });
  afterAll(async () => { if (eng) expect(await eng.stop()).toBe(0); });

  it('an edit whose ack was lost is written again with the same cid and applied once', async () => {
    const tap = new Tap();
    const a = new ChatClient(opts(eng.url, 'ed-a', { WebSocket: tap.WebSocket }));
    const b = new ChatClient(opts(eng.url, 'ed-b'));
    const seenB = new Seen();
    try {
      await a.join('c-ed', new Seen().handlers()).ready;
      await b.join('c-ed', seenB.handlers()).ready;
      const m = await a.send('c-ed', 'draft');
      tap.hold = (f) => f.op === 'ack';
      let resolved = 0;
      const p = a.edit('c-ed', m.id, 'final').then((ack) => { resolved++; return ack; });
      await seenB.until('the EDIT event', (s) => s.messages.some((x) => x.type === 'EDIT'));
      await tap.until('the ack held back', (t) => t.held.length === 1);
      expect(resolved).toBe(0);
      tap.hold = null;
      tap.current.cut();
      const ack = await p;
      expect(ack.target).toBe(m.id);
      const writes = tap.sentOps('edit');
      expect(writes.map((s) => [s.conn, s.f.cid])).toEqual([[0, ack.cid], [1, ack.cid]]);
      const stored = await fetchRoom(eng.http, 'c-ed');
      expect(stored.map((x) => [x.type, x.text ?? null])).toEqual([['CHAT', 'final'], ['EDIT', 'final']]);
      expect(resolved).toBe(1);
    } finally {
      a.close();
      b.close();
    }
  });

  it('delete resolves with its target (again: the same ack), refusals reject, and the subscription sees the DELETE event', async () => {
    const a = new ChatClient(opts(eng.url, 'del-a'));
    const b = new ChatClient(opts(eng.url, 'del-b'));
    const seenB = new Seen();
    try {
      await b.join('c-del', seenB.handlers()).ready;
      const m = await a.send('c-del', 'oops');
      expect((await rejection(b.delete('c-del', m.id))).code).toBe('forbidden');
      expect((await rejection(b.edit('c-del', m.id, 'x'))).code).toBe('forbidden');
      expect((await rejection(a.delete('c-del', '0SECKC2Y4024B'))).code).toBe('not_found');
      const d = await a.delete('c-del', m.id);
      expect(d).toMatchObject({ room: 'c-del', target: m.id, seq: 2 });
      const again = await a.delete('c-del', m.id);
      expect({ id: again.id, seq: again.seq, at: again.at }).toEqual({ id: d.id, seq: d.seq, at: d.at });
      await seenB.until('the DELETE event', (s) => s.messages.some((x) => x.type === 'DELETE'));
      expect(seenB.messages.map((x) => [x.seq, x.type, x.target ?? null])).toEqual([[1, 'CHAT', null], [2, 'DELETE', m.id]]);
      expect((await rejection(a.edit('c-del', m.id, 'too late'))).code).toBe('not_found');
    } finally {
      a.close();
      b.close();
    }
  });

  it('applyRetraction leaves a subscriber\'s copy as the engine stores it, after each edit and the delete', async () => {
    const a = new ChatClient(opts(eng.url, 'ap-a'));
    const b = new ChatClient(opts(eng.url, 'ap-b'));
    const seenB = new Seen();
    try {
      await b.join('c-ap', seenB.handlers()).ready;
      const m = await a.send('c-ap', 'first');
      await seenB.text('first');
      const copy = { ...seenB.messages.find((x) => x.id === m.id)! };
      const steps: [string, () => Promise<SendAck>][] = [
        ['EDIT', () => a.edit('c-ap', m.id, 'second')],
        ['EDIT', () => a.edit('c-ap', m.id, 'third')],
        ['DELETE', () => a.delete('c-ap', m.id)],
      ];
      for (const [type, step] of steps) {
        const ack = await step();
        await seenB.until(`the ${type} event`, (s) => s.messages.some((x) => x.id === ack.id));
        const ev = seenB.messages.find((x) => x.id === ack.id)!;
        expect(isRetraction(ev)).toBe(true);
        expect(applyRetraction(copy, ev)).toBe(true);
        const stored = (await fetchRoom(eng.http, 'c-ap')).find((x) => x.id === m.id)!;
        expect(copy).toEqual(stored);
      }
      expect(copy.deleted).toBe(true);
      // Another message is not its target; a CHAT message is no retraction.
      expect(applyRetraction({ ...copy, id: 'other' }, seenB.messages.at(-1)!)).toBe(false);
      expect(isRetraction(seenB.messages[0])).toBe(false);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a group room: reads from joined, receipts to onReceipt, unreadBy counts who has not read a message', async () => {
    const r = await fetch(`${eng.http}/api/rooms`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'group', id: 'c-rc', members: ['rc-a', 'rc-b', 'rc-c'] }) });
    expect(r.status).toBe(201);
    const [a, b, c] = ['rc-a', 'rc-b', 'rc-c'].map((u) => new ChatClient(opts(eng.url, u)));
    const receipts: [string, number][] = [];
    const seenA = new Seen();
    try {
      const sub = a.join('c-rc', seenA.handlers({ onReceipt: (user, seq) => { receipts.push([user, seq]); } }));
      expect((await sub.ready).reads).toEqual({ 'rc-a': 0, 'rc-b': 0, 'rc-c': 0 });
      const m1 = await a.send('c-rc', 'one');
      const m2 = await a.send('c-rc', 'two');
      await seenA.text('two');
      const msg2 = seenA.messages.find((x) => x.id === m2.id)!;
      expect(sub.unreadBy(msg2)).toBe(2);
      await b.read('c-rc', m2.id);
      await until('the receipt', () => (receipts.length === 1 ? true : undefined));
      expect(receipts).toEqual([['rc-b', 2]]);
      expect(sub.reads.get('rc-b')).toBe(2);
      expect(sub.unreadBy(msg2)).toBe(1);
      await c.read('c-rc', m1.id);
      await until('the second receipt', () => (receipts.length === 2 ? true : undefined));
      expect(sub.unreadBy(msg2)).toBe(1);
      expect(sub.unreadBy(seenA.messages.find((x) => x.id === m1.id)!)).toBe(0);
    } finally {
      for (const x of [a, b, c]) x.close();
    }
  });
});
