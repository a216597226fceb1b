// The engine core against the real thing: a uWS server process on a random port, a real SQLite
// file, the real persistence actor and reader pool.

import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, getJson, KeepAlive, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';
import { until } from './support/wait.ts';

const ID_RE = /^[0-9A-F][0-9A-HJKMNP-TV-Z]{12}$/;
// The pipeline in isolation: no ENTER/QUIT messages and no send rate limit (test/domain.test.ts covers them).
const CORE = { CHAT_ENTER_QUIT: 'off', ...SEND_LIMITS_OFF };

describe('protocol v1 over one engine', () => {
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ ...CORE, CHAT_WINDOW: '100' }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('three clients (JSON and msgpack) see each other in seq order, each send acked once', async () => {
    const a = await Client.connect(eng.url, { user: 'a', name: 'Ann' });
    const b = await Client.connect(eng.url, { user: 'b', name: 'Bob' });
    const c = await Client.connect(eng.url, { user: 'c', name: 'Cy', protocol: 'chat.v1.msgpack' });
    for (const x of [a, b, c]) {
      const j = await x.request({ op: 'join', room: 'trio' });
      expect(j).toMatchObject({ op: 'joined', room: 'trio', seq: 0, messages: [] });
      expect(j.epoch).toMatch(ID_RE);
    }
    const senders = [a, b, c];
    for (let i = 0; i < 30; i++) senders[i % 3].send({ op: 'send', room: 'trio', text: `m${i}`, cid: `cid-${i}` });
    const acks = await Promise.all(senders.map((s, k) => Promise.all(
      Array.from({ length: 10 }, (_, n) => s.op('ack', (f) => f.cid === `cid-${k + 3 * n}`)))));
    for (const ack of acks.flat()) {
      expect(ack.id).toMatch(ID_RE);
      expect(ack.room).toBe('trio');
      expect(Number.isSafeInteger(ack.at) && ack.at > Date.parse('2024-01-01'), `ack.at ${ack.at} is a time in ms`).toBe(true);
    }
    const views = await Promise.all([a, b, c].map((x) => x.msgs('trio', 30)));
    for (const v of views) {
      expect(v.map((m) => m.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      // the same message objects for JSON and msgpack members
      expect(v.map((m) => m.id)).toEqual(views[0].map((m) => m.id));
    }
    const m0 = views[2].find((m) => m.cid === 'cid-0')!;
    expect(m0).toMatchObject({ type: 'CHAT', text: 'm0', from: { id: 'a', name: 'Ann' }, room: 'trio' });
    const ack0 = acks[0][0];
    expect(m0.id).toBe(ack0.id);
    expect(m0.seq).toBe(ack0.seq);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('a retried send with the same cid gets the same ack and is delivered once', async () => {
    const a = await Client.connect(eng.url, { user: 'retry-user' });
    await a.request({ op: 'join', room: 'idem' });
    a.send({ op: 'send', room: 'idem', text: 'once', cid: 'same' });
    a.send({ op: 'send', room: 'idem', text: 'once', cid: 'same' });
    const first = await a.op('ack');
    const second = await a.op('ack');
    expect(second).toMatchObject({ id: first.id, seq: first.seq, at: first.at });
    const again = await a.request({ op: 'send', room: 'idem', text: 'once', cid: 'same' });
    expect(again).toMatchObject({ op: 'ack', id: first.id, seq: first.seq });
    const h = await a.request({ op: 'history', room: 'idem' });
    expect(h.messages.map((m: Frame) => m.cid)).toEqual(['same']);
    expect(a.frames.filter((f) => f.op === 'msg')).toHaveLength(1);
    await a.close();
  });

  it('history pages cross the hot-window/store seam without a gap or a repeat (WS and HTTP)', async () => {
    const a = await Client.connect(eng.url, { user: 'pager' });
    await a.request({ op: 'join', room: 'long', limit: 0 });
    const N = 357;
    for (let i = 0; i < N; i++) a.send({ op: 'send', room: 'long', text: `t${i}`, cid: `p${i}` });
    await a.msgs('long', N);
    // backwards over WebSocket, 45 at a time
    const seen: number[] = [];
    let before: string | undefined;
    for (;;) {
      const h = await a.request({ op: 'history', room: 'long', limit: 45, ...(before ? { before } : {}) });
      seen.unshift(...h.messages.map((m: Frame) => m.seq));
      if (!h.more) break;
      before = h.messages[0].id;
    }
    expect(seen).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    // forwards over HTTP, 100 at a time, from the very first message
    const first = (await getJson(`${eng.http}/api/rooms/long/messages?limit=1&after=0000000000000`)).body.messages[0];
    expect(first.seq).toBe(1);
    const fwd: number[] = [1];
    let after = first.id as string;
    for (;;) {
      const { status, body } = await getJson(`${eng.http}/api/rooms/long/messages?limit=100&after=${after}`);
      expect(status).toBe(200);
      fwd.push(...body.messages.map((m: Frame) => m.seq));
      if (!body.more) break;
      after = body.messages[body.messages.length - 1].id;
    }
    expect(fwd).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    // latest page over HTTP is the newest 50, oldest first
    const latest = (await getJson(`${eng.http}/api/rooms/long/messages`)).body;
    expect(latest.messages.map((m: Frame) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => N - 49 + i));
    expect(latest.more).toBe(true);
    await a.close();
  });

  it('join with since recovers from the window and from the store; an unknown since is recovered:false', async () => {
    const a = await Client.connect(eng.url, { user: 'rec' });
    await a.request({ op: 'join', room: 'recov', limit: 0 });
    for (let i = 0; i < 250; i++) a.send({ op: 'send', room: 'recov', text: `r${i}`, cid: `rc${i}` });
    const all = await a.msgs('recov', 250);
    const b = await Client.connect(eng.url, { user: 'rec2' });
    const fromWindow = await b.request({ op: 'join', room: 'recov', since: all[239].id });
    expect(fromWindow).toMatchObject({ recovered: true, seq: 250 });
    expect(fromWindow.messages.map((m: Frame) => m.seq)).toEqual([241, 242, 243, 244, 245, 246, 247, 248, 249, 250]);
    const c = await Client.connect(eng.url, { user: 'rec3' });
    const fromStore = await c.request({ op: 'join', room: 'recov', since: all[4].id });
    expect(fromStore.recovered).toBe(true);
    expect(fromStore.messages.map((m: Frame) => m.seq)).toEqual(Array.from({ length: 245 }, (_, i) => i + 6));
    // live messages continue right after joined.seq
    a.send({ op: 'send', room: 'recov', text: 'live', cid: 'live' });
    expect((await c.op('msg')).seq).toBe(251);
    const d = await Client.connect(eng.url, { user: 'rec4' });
    const unknown = await d.request({ op: 'join', room: 'recov', since: '0000000000001', limit: 5 });
    expect(unknown.recovered).toBe(false);
    expect(unknown.messages.map((m: Frame) => m.seq)).toEqual([247, 248, 249, 250, 251]);
    await Promise.all([a.close(), b.close(), c.close(), d.close()]);
  });

  it('refuses bad frames with the right codes and keeps the connection', async () => {
    const a = await Client.connect(eng.url, { user: 'bad' });
    a.sendRaw('{not json');
    expect(await a.op('error')).toMatchObject({ code: 'bad_frame' });
    a.sendRaw('[1,2,3]');
    expect(await a.op('error')).toMatchObject({ code: 'bad_frame' });
    a.sendRaw(Buffer.from([0xc1, 0xff]));
    expect(await a.op('error')).toMatchObject({ code: 'bad_frame' });
    expect(await a.request({ op: 'fly' })).toMatchObject({ op: 'error', code: 'unknown_op' });
    expect(await a.request({ op: 'join', room: 'bad room!' })).toMatchObject({ op: 'error', code: 'invalid' });
    expect(await a.request({ op: 'join', room: 'x'.repeat(65) })).toMatchObject({ op: 'error', code: 'invalid' });
    expect(await a.request({ op: 'join', room: 'ok', limit: 101 })).toMatchObject({ op: 'error', code: 'invalid' });
    expect(await a.request({ op: 'join', room: 'ok', since: 'nope' })).toMatchObject({ op: 'error', code: 'invalid' });
    expect(await a.request({ op: 'history', room: 'ok', limit: 0 })).toMatchObject({ op: 'error', code: 'invalid' });
    expect(await a.request({ op: 'send', room: 'ok', text: 'no cid' })).toMatchObject({ op: 'error', code: 'invalid' });
    expect(await a.request({ op: 'send', room: 'ok', text: 5, cid: 'k1' })).toMatchObject({ op: 'error', code: 'invalid', cid: 'k1' });
    expect(await a.request({ op: 'send', room: '../etc', text: 'x', cid: 'k2' })).toMatchObject({ op: 'error', code: 'invalid', cid: 'k2' });
    expect(await a.request({ op: 'history', room: 'never-created' })).toMatchObject({ op: 'error', code: 'not_found' });
    expect(await a.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await a.close();
  });

  it('refuses a msgpack frame that is not an object, and text frames on a msgpack connection', async () => {
    const c = await Client.connect(eng.url, { user: 'mp', protocol: 'chat.v1.msgpack' });
    c.sendRaw(Buffer.from([0x93, 0x01, 0x02, 0x03])); // [1,2,3]
    expect(await c.op('error')).toMatchObject({ code: 'bad_frame' });
    c.sendRaw('{"op":"ping"}', false);
    expect(await c.op('error')).toMatchObject({ code: 'bad_frame' });
    // MessagePack values that decode to something other than a map: never-used 0xc1, a timestamp
    // extension (a Date), bin 8 (bytes).
    for (const bytes of [[0xc1], [0xd6, 0xff, 0x5f, 0x00, 0x00, 0x00], [0xc4, 0x01, 0x00]]) {
      c.sendRaw(Buffer.from(bytes));
      expect(await c.op('error'), JSON.stringify(bytes)).toMatchObject({ code: 'bad_frame' });
    }
    // A string with invalid UTF-8 (msgpackr would decode it as U+FFFD): the cid "A" patched to 0xff.
    const frame = new Packr({ useRecords: false }).pack({ op: 'send', room: 'mp', text: 'x', cid: 'A' });
    frame[frame.lastIndexOf(0x41)] = 0xff;
    c.sendRaw(Buffer.from(frame));
    expect(await c.op('error')).toMatchObject({ code: 'bad_frame' });
    // A real U+FFFD is text like any other.
    expect(await c.request({ op: 'send', room: 'mp', text: 'a \ufffd', cid: '\ufffd' })).toMatchObject({ op: 'ack', cid: '\ufffd' });
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await c.close();
  });

  it('refuses a cid, text or ref with a lone surrogate (it has no UTF-8 form) rather than store it changed', async () => {
    const a = await Client.connect(eng.url, { user: 'sur' });
    // Two cids that differ only in a lone surrogate would both become U+FFFD x3 on the way to the store.
    a.sendRaw('{"op":"send","room":"sur","text":"first","cid":"\\ud800","ref":"s1"}');
    expect(await a.op('error', (f) => f.ref === 's1')).toMatchObject({ code: 'invalid', cid: '\ud800' });
    a.sendRaw('{"op":"send","room":"sur","text":"second","cid":"\\udc00","ref":"s2"}');
    expect(await a.op('error', (f) => f.ref === 's2')).toMatchObject({ code: 'invalid', cid: '\udc00' });
    a.sendRaw('{"op":"send","room":"sur","text":"half \\ud83d pair","cid":"t1","ref":"s3"}');
    expect(await a.op('error', (f) => f.ref === 's3')).toMatchObject({ code: 'invalid', cid: 't1' });
    a.sendRaw('{"op":"ping","ref":"\\ud83d"}');
    expect(await a.op('error')).toMatchObject({ code: 'invalid' });
    // A whole surrogate pair is an ordinary character.
    expect(await a.request({ op: 'send', room: 'sur', text: 'emoji \u{1F600}', cid: '\u{1F600}' })).toMatchObject({ op: 'ack', cid: '\u{1F600}' });
    const h = await a.request({ op: 'history', room: 'sur' });
    expect(h.messages.filter((m: Frame) => m.type === 'CHAT').map((m: Frame) => [m.text, m.cid])).toEqual([['emoji \u{1F600}', '\u{1F600}']]);
    await a.close();
  });

  it('a join and a leave sent together: joined, then left, and nothing of the room afterwards', async () => {
    const a = await Client.connect(eng.url, { user: 'jl' });
    a.send({ op: 'join', room: 'jl-new', ref: 'j' }); // a new room: its join waits for the store
    a.send({ op: 'leave', room: 'jl-new', ref: 'l' });
    await a.op('left', (f) => f.ref === 'l');
    const order = a.frames.filter((f) => f.ref === 'j' || f.ref === 'l').map((f) => f.op);
    expect(order).toEqual(['joined', 'left']);
    const b = await Client.connect(eng.url, { user: 'jl2' });
    await b.request({ op: 'join', room: 'jl-new' });
    const ack = await b.request({ op: 'send', room: 'jl-new', text: 'after the leave', cid: 'al' });
    await b.op('msg', (f) => f.id === ack.id);
    expect(await a.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(a.frames.some((f) => f.op === 'msg' && f.room === 'jl-new'), 'a msg of the room after leaving it').toBe(false);
    await Promise.all([a.close(), b.close()]);
  });

  it('joins sent without waiting for replies count against CHAT_MAX_ROOMS_PER_CONN (200)', async () => {
    const a = await Client.connect(eng.url, { user: 'many' });
    for (let i = 0; i < 230; i++) a.send({ op: 'join', room: `many-${i}`, ref: `m${i}` });
    const replies = await Promise.all(Array.from({ length: 230 }, (_, i) => a.waitFor((f) => f.ref === `m${i}`, 20_000, `reply to join ${i}`)));
    expect(replies.filter((f) => f.op === 'joined')).toHaveLength(200);
    expect(replies.filter((f) => f.op === 'error').map((f) => f.code)).toEqual(Array(30).fill('forbidden'));
    await a.close();
  });

  it('answers too_large for a frame over CHAT_MAX_PAYLOAD and closes 1009 far over it; others unaffected', async () => {
    const a = await Client.connect(eng.url, { user: 'big' });
    const b = await Client.connect(eng.url, { user: 'bystander' });
    await b.request({ op: 'join', room: 'big' });
    a.send({ op: 'send', room: 'big', text: 'x'.repeat(70_000), cid: 'big1', ref: 'rb' });
    expect(await a.op('error')).toMatchObject({ code: 'too_large', cid: 'big1', ref: 'rb' });
    expect(await a.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    a.send({ op: 'send', room: 'big', text: 'x'.repeat(1 << 20), cid: 'big2' });
    expect(await a.closed).toBe(1009);
    expect(await b.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    const h = await b.request({ op: 'history', room: 'big' });
    expect(h.messages).toEqual([]);
    await b.close();
  });

  it('refuses unsupported subprotocols before the upgrade and echoes the chosen one', async () => {
    await expect(Client.connect(eng.url, { user: 'p', protocol: 'mqtt' })).rejects.toThrow(/HTTP 400/);
    const c = await Client.connect(eng.url, { user: 'p', protocol: ['xyz', 'chat.v1.msgpack'] });
    expect(c.ws.protocol).toBe('chat.v1.msgpack');
    await c.close();
  });

  it('serves healthz, metrics, 404 and 400 as JSON', async () => {
    const h = await getJson(`${eng.http}/healthz`);
    expect(h).toMatchObject({ status: 200, body: { ok: true } });
    const m = await fetch(`${eng.http}/metrics`);
    expect(m.status).toBe(200);
    expect(await m.text()).toMatch(/^chat_messages_acked_total \d+$/m);
    expect(await getJson(`${eng.http}/nope`)).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    for (const q of ['limit=0', 'limit=101', 'limit=1e3', 'before=zzz', "before=1' OR 1=1 --", 'after=0000000000000&before=0000000000000']) {
      const r = await getJson(`${eng.http}/api/rooms/long/messages?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body.error.code).toBe('invalid');
    }
    expect((await getJson(`${eng.http}/api/rooms/${encodeURIComponent("x' OR '1'='1")}/messages`)).status).toBe(400);
    expect((await getJson(`${eng.http}/api/rooms/no-such-room/messages`)).status).toBe(404);
  });
});

describe('durability', () => {
  it('a restart keeps history, seq and idempotency', async () => {
    let eng = await startEngine(CORE);
    const a = await Client.connect(eng.url, { user: 'u' });
    await a.request({ op: 'join', room: 'keep' });
    for (let i = 0; i < 5; i++) a.send({ op: 'send', room: 'keep', text: `k${i}`, cid: `k${i}` });
    const acks = await Promise.all(Array.from({ length: 5 }, (_, i) => a.op('ack', (f) => f.cid === `k${i}`)));
    const j1 = await a.request({ op: 'join', room: 'keep' });
    await a.close();
    expect(await eng.stop()).toBe(0);

    eng = await startEngine(CORE, eng.dir);
    const b = await Client.connect(eng.url, { user: 'u' });
    const j = await b.request({ op: 'join', room: 'keep' });
    expect(j.seq).toBe(5);
    expect(j.epoch).toBe(j1.epoch);
    expect(j.messages.map((m: Frame) => m.id)).toEqual(acks.map((x) => x.id));
    const retry = await b.request({ op: 'send', room: 'keep', text: 'k2', cid: 'k2' });
    expect(retry).toMatchObject({ op: 'ack', id: acks[2].id, seq: 3 });
    const next = await b.request({ op: 'send', room: 'keep', text: 'new', cid: 'k5' });
    expect(next.seq).toBe(6);
    expect((await b.op('msg')).seq).toBe(6);
    expect(b.frames.filter((f) => f.op === 'msg')).toHaveLength(1); // the retry was not delivered again
    await b.close();
    expect(await eng.stop()).toBe(0);
  });

  it('an ack means durable: kill -9 right after acks, every acked message is there after restart', async () => {
    let eng = await startEngine(CORE);
    const a = await Client.connect(eng.url, { user: 'k9' });
    for (let i = 0; i < 200; i++) a.send({ op: 'send', room: 'k9', text: `x${i}`, cid: `x${i}` });
    const acked: Frame[] = [];
    while (acked.length < 50) acked.push(await a.op('ack'));
    eng.proc.kill('SIGKILL');
    await eng.exited;
    for (const f of a.frames) if (f.op === 'ack' && !acked.includes(f)) acked.push(f);
    eng = await startEngine(CORE, eng.dir);
    const stored = new Map<string, Frame>();
    let before: string | undefined;
    for (;;) {
      const { body } = await getJson(`${eng.http}/api/rooms/k9/messages?limit=100${before ? `&before=${before}` : ''}`);
      for (const m of body.messages) stored.set(m.cid, m);
      if (!body.more) break;
      before = body.messages[0].id;
    }
    for (const ack of acked) expect(stored.get(ack.cid)?.id).toBe(ack.id);
    const seqs = [...stored.values()].map((m) => m.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(await eng.stop()).toBe(0);
  });

  it('SIGTERM under load: /healthz 503 while it commits what it holds, every send gets ack or overloaded, connections close 1001, exit 0, no acked message lost', async () => {
    let eng = await startEngine({ ...CORE, CHAT_HTTP_RATE: '0', CHAT_TEST_HOOKS: '1' });
    // Opened before the signal: the listen socket closes at once, this connection stays.
    const ops = await KeepAlive.open(eng.port);
    expect((await ops.request('GET', '/healthz')).status).toBe(200);
    const a = await Client.connect(eng.url, { user: 'term' });
    let sent = 0;
    const send = (n: number): void => { for (let i = 0; i < n; i++) a.send({ op: 'send', room: 'term', text: 't', cid: `t${sent++}` }); };
    send(50);
    await a.op('ack', (f) => f.cid === 't49');
    // Hold the commits: what is sent now stays in the actor, and the engine cannot finish stopping.
    expect((await ops.request('POST', '/_test/hold/commit')).status).toBe(200);
    send(50);
    expect((await ops.request('GET', '/_test/waiting/commit?n=1')).body.waiting).toBe(1);
    const code = eng.stop('SIGTERM');
    await until('GET /healthz 503 once stopping', async () => ((await ops.request('GET', '/healthz')).status === 503 ? true : undefined), 15_000, 20);
    expect(eng.proc.exitCode, 'the engine waits for the held commit').toBeNull();
    send(50); // after the signal: refused, never silently dropped
    await a.op('error', (f) => f.cid === `t${sent - 1}`);
    expect(a.frames.some((f) => f.op === 'ack' && f.cid === 't99'), 'no ack while its commit is held').toBe(false);
    expect((await ops.request('POST', '/_test/release/commit')).status).toBe(200);
    expect(await code).toBe(0);
    expect(await a.closed).toBe(1001);
    ops.close();
    const acked = a.frames.filter((f) => f.op === 'ack');
    const refused = a.frames.filter((f) => f.op === 'error');
    for (const e of refused) expect(e.code).toBe('overloaded');
    // every send has exactly one outcome
    const outcomes = [...acked, ...refused].map((f) => f.cid as string).sort();
    expect(outcomes).toEqual(Array.from({ length: sent }, (_, i) => `t${i}`).sort());
    expect(acked.map((f) => f.cid)).toContain('t99'); // held, then committed and acked while stopping
    expect(refused.map((f) => f.cid)).toContain('t149');
    eng = await startEngine(CORE, eng.dir);
    const cids = new Set<string>();
    let before: string | undefined;
    for (;;) {
      const { body } = await getJson(`${eng.http}/api/rooms/term/messages?limit=100${before ? `&before=${before}` : ''}`);
      for (const m of body.messages) cids.add(m.cid);
      if (!body.more) break;
      before = body.messages[0].id;
    }
    for (const ack of acked) expect(cids.has(ack.cid)).toBe(true);
    for (const e of refused) expect(cids.has(e.cid)).toBe(false);
    expect(await eng.stop()).toBe(0);
  });

  it('a second signal while stopping exits 130 at once, without waiting for what is held', async () => {
    const eng = await startEngine({ ...CORE, CHAT_HTTP_RATE: '0', CHAT_TEST_HOOKS: '1' });
    const ops = await KeepAlive.open(eng.port);
    const a = await Client.connect(eng.url, { user: 'twice' });
    expect((await ops.request('POST', '/_test/hold/commit')).status).toBe(200);
    a.send({ op: 'send', room: 'twice', text: 'held', cid: 'h1' });
    expect((await ops.request('GET', '/_test/waiting/commit?n=1')).body.waiting).toBe(1);
    eng.proc.kill('SIGTERM');
    await until('GET /healthz 503 once stopping', async () => ((await ops.request('GET', '/healthz')).status === 503 ? true : undefined), 15_000, 20);
    expect(eng.proc.exitCode, 'still stopping: the commit is held').toBeNull();
    expect(await eng.stop('SIGTERM')).toBe(130);
    expect(a.frames.some((f) => f.op === 'ack')).toBe(false);
    ops.close();
  });
});

describe('bounded write buffer', () => {
  it('refuses sends past the cap with overloaded (cid echoed), stores none of them', async () => {
    const eng = await startEngine({ ...CORE, CHAT_TEST_COMMIT_DELAY_MS: '300', CHAT_BUFFER_MAX_MESSAGES: '5' });
    const a = await Client.connect(eng.url, { user: 'ov' });
    await a.request({ op: 'join', room: 'ov' });
    for (let i = 0; i < 40; i++) a.send({ op: 'send', room: 'ov', text: `o${i}`, cid: `o${i}` });
    const replies: Frame[] = [];
    while (replies.length < 40) replies.push(await a.waitFor((f) => f.op === 'ack' || f.op === 'error'));
    const refused = replies.filter((f) => f.op === 'error');
    const acked = replies.filter((f) => f.op === 'ack');
    expect(refused.length).toBeGreaterThan(0);
    for (const e of refused) expect(e).toMatchObject({ code: 'overloaded', cid: expect.stringMatching(/^o\d+$/) });
    const h = await a.request({ op: 'history', room: 'ov', limit: 100 });
    expect(h.messages.map((m: Frame) => m.cid).sort()).toEqual(acked.map((f) => f.cid).sort());
    const metrics = await (await fetch(`${eng.http}/metrics`)).text();
    expect(metrics).toMatch(/chat_frames_refused_total\{code="overloaded"\} [1-9]/);
    await a.close();
    expect(await eng.stop()).toBe(0);
  });
});

describe('immediate delivery', () => {
  it('publishes on acceptance and acks on commit, still one copy per message in seq order', async () => {
    const eng = await startEngine({ ...CORE, CHAT_DELIVERY: 'immediate', CHAT_TEST_COMMIT_DELAY_MS: '200' });
    const a = await Client.connect(eng.url, { user: 'imm' });
    await a.request({ op: 'join', room: 'imm' });
    for (let i = 0; i < 10; i++) a.send({ op: 'send', room: 'imm', text: `i${i}`, cid: `i${i}` });
    const msgs = await a.msgs('imm', 10);
    expect(msgs.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // delivered before the (slow) commit acknowledged them
    const firstMsg = a.frames.findIndex((f) => f.op === 'msg');
    const firstAck = a.frames.findIndex((f) => f.op === 'ack');
    expect(firstAck === -1 || firstMsg < firstAck).toBe(true);
    for (let i = 0; i < 10; i++) await a.op('ack', (f) => f.cid === `i${i}`);
    await a.close();
    expect(await eng.stop()).toBe(0);
  });
});

describe('frames of a room whose join is in flight (slow commits)', () => {
  const ADMIN = 'core-admin-token-0123456789';
  let eng: EngineProc;
  // ENTER/QUIT on (public rooms): a join waits for its ENTER's commit, which takes 400 ms here.
  beforeAll(async () => { eng = await startEngine({ ...SEND_LIMITS_OFF, CHAT_HTTP_RATE: '0', CHAT_ROOM_JOIN_RATE: '0', CHAT_TEST_COMMIT_DELAY_MS: '400', CHAT_TEST_HOOKS: '1', CHAT_ADMIN_TOKEN: ADMIN }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('queue behind the join, at most 64 per room: the rest are rate_limited, and all are answered', async () => {
    const a = await Client.connect(eng.url, { user: 'queuer' });
    a.send({ op: 'join', room: 'queue', ref: 'j' });
    for (let i = 0; i < 100; i++) a.send({ op: 'leave', room: 'queue', ref: `l${i}` });
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => a.waitFor((f) => f.ref === `l${i}`, 20_000, `reply to leave ${i}`)));
    expect(replies.filter((f) => f.op === 'left')).toHaveLength(64);
    expect(replies.filter((f) => f.op === 'error' && f.code === 'rate_limited')).toHaveLength(36);
    expect((await a.waitFor((f) => f.ref === 'j')).op).toBe('joined');
    expect(await a.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await a.close();
  });

  it('deleting a room whose messages are still buffered answers, and its members are told', async () => {
    const admin = { authorization: `Bearer ${ADMIN}` };
    const a = await Client.connect(eng.url, { user: 'deleter' });
    await a.request({ op: 'join', room: 'busy-del' });
    const post = async (path: string): Promise<void> => { expect((await fetch(`${eng.http}/_test/${path}`, { method: 'POST' })).status).toBe(200); };
    // The room's sends are held in their commit; the delete is held before the actor until then.
    await post('hold/commit');
    await post('hold/admin');
    for (let i = 0; i < 30; i++) a.send({ op: 'send', room: 'busy-del', text: `b${i}`, cid: `bd${i}` });
    expect((await getJson(`${eng.http}/_test/waiting/commit?n=1`)).body.waiting).toBe(1);
    const res = fetch(`${eng.http}/api/rooms/busy-del`, { method: 'DELETE', headers: admin }).then((r) => r.status);
    expect((await getJson(`${eng.http}/_test/waiting/admin?n=1`)).body.waiting).toBe(1);
    // The delete goes to the actor first, then the commit is let go (one port, in order).
    await post('release/admin');
    await post('release/commit');
    expect(await res).toBe(200);
    expect(await a.op('left')).toMatchObject({ room: 'busy-del', reason: 'deleted' });
    expect((await fetch(`${eng.http}/api/rooms/busy-del/messages`, { headers: admin })).status).toBe(404);
    await a.close();
  });

  it('ENTER and QUIT alternate: a second connection leaving while the first one\'s ENTER is on its way, a connection dropped before its ENTER came back', async () => {
    const types = async (room: string, user: string): Promise<string[]> => {
      const h = await getJson(`${eng.http}/api/rooms/${room}/messages?limit=100`);
      return (h.body.messages as Frame[]).filter((m) => m.from.id === user && m.type !== 'CHAT').map((m) => m.type);
    };
    const hold = async (point: 'hold' | 'release'): Promise<void> => { expect((await fetch(`${eng.http}/_test/${point}/commit`, { method: 'POST' })).status).toBe(200); };
    const heldCommits = async (): Promise<number> => (await getJson(`${eng.http}/_test/waiting/commit?n=1`)).body.waiting as number;
    // Two connections of one user: the second joins and leaves while the first one's ENTER is
    // held in its commit (a ping answered after them shows the engine took both).
    const a = await Client.connect(eng.url, { user: 'twice' });
    const b = await Client.connect(eng.url, { user: 'twice' });
    await hold('hold');
    a.send({ op: 'join', room: 'alt-1', ref: 'ja' });
    expect(await heldCommits()).toBe(1);
    b.send({ op: 'join', room: 'alt-1', ref: 'jb' });
    b.send({ op: 'leave', room: 'alt-1', ref: 'lb' });
    expect(await b.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(a.frames.some((f) => f.ref === 'ja'), 'a\'s join waits for its ENTER').toBe(false);
    await hold('release');
    await b.waitFor((f) => f.ref === 'lb');
    expect((await a.waitFor((f) => f.ref === 'ja')).op).toBe('joined');
    const marker = await a.request({ op: 'send', room: 'alt-1', text: 'marker', cid: 'mk1' });
    expect(marker.op).toBe('ack');
    expect(await types('alt-1', 'twice')).toEqual(['ENTER']); // still in the room on connection a
    await a.request({ op: 'leave', room: 'alt-1' });
    await a.request({ op: 'send', room: 'alt-1', text: 'marker 2', cid: 'mk2' }).catch(() => undefined);
    // A connection dropped right after its join, before the ENTER's commit came back.
    const keeper = await Client.connect(eng.url, { user: 'keeper' });
    await keeper.request({ op: 'join', room: 'alt-2' });
    const gone = await Client.connect(eng.url, { user: 'dropper' });
    await hold('hold');
    gone.send({ op: 'join', room: 'alt-2' });
    expect(await heldCommits()).toBe(1); // the join is in, its ENTER held in its commit
    const open = (await getJson(`${eng.http}/api/stats`)).body.connections as number;
    gone.ws.terminate();
    await until('the engine to see the dropped connection', async () => ((await getJson(`${eng.http}/api/stats`)).body.connections === open - 1 ? true : undefined), 10_000, 20);
    await hold('release');
    await until('the ENTER, then the QUIT of the dropped connection, stored', async () => (JSON.stringify(await types('alt-2', 'dropper')) === '["ENTER","QUIT"]' ? true : undefined), 10_000, 20);
    const back = await Client.connect(eng.url, { user: 'dropper' });
    await back.request({ op: 'join', room: 'alt-2' });
    await keeper.request({ op: 'send', room: 'alt-2', text: 'marker', cid: 'mk3' });
    expect(await types('alt-2', 'dropper')).toEqual(['ENTER', 'QUIT', 'ENTER']);
    await Promise.all([a.close(), b.close(), keeper.close(), back.close()]);
  });

  it('a join of a room deleted while it loads is answered not_found, and a leave after it left', async () => {
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    const created = await fetch(`${eng.http}/api/rooms`, { method: 'POST', headers: admin, body: JSON.stringify({ kind: 'group', members: ['dl'] }) });
    const room = ((await created.json()) as Frame).id as string;
    const post = async (path: string): Promise<void> => { expect((await fetch(`${eng.http}/_test/${path}`, { method: 'POST' })).status).toBe(200); };
    const waiting = async (point: string): Promise<number> => (await getJson(`${eng.http}/_test/waiting/${point}?n=1`)).body.waiting as number;
    // A commit held in the actor: a room delete commits what is buffered first, so it waits there,
    // and the join's load queues behind it. The delete's answer then reaches the front thread
    // while the join's room is still loading.
    const busy = await Client.connect(eng.url, { user: 'busy' });
    await busy.request({ op: 'join', room: 'busy-room' });
    await post('hold/commit');
    busy.send({ op: 'send', room: 'busy-room', text: 'x', cid: 'b1' });
    expect(await waiting('commit')).toBe(1);
    // The delete is let past the admin point before the join is sent: the actor has it first.
    await post('hold/admin');
    const deleted = fetch(`${eng.http}/api/rooms/${room}`, { method: 'DELETE', headers: admin });
    expect(await waiting('admin')).toBe(1);
    await post('release/admin');
    const a = await Client.connect(eng.url, { user: 'dl' });
    a.send({ op: 'join', room, ref: 'j' });
    a.send({ op: 'leave', room, ref: 'l' });
    // A ping answered after both: the join is in (its room loading), the leave queued behind it.
    expect(await a.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(a.frames.filter((f) => f.ref === 'j' || f.ref === 'l'), 'the join waits for its room').toEqual([]);
    await post('release/commit');
    expect((await deleted).status).toBe(200);
    expect(await a.waitFor((f) => f.ref === 'j', 5_000, 'the join\'s answer')).toMatchObject({ op: 'error', code: 'not_found' });
    expect(await a.waitFor((f) => f.ref === 'l', 5_000, 'the leave\'s answer')).toMatchObject({ op: 'left' });
    await Promise.all([a.close(), busy.close()]);
  });
});

describe('room cap with a rejoin in flight', () => {
  it('a rejoin of a room the connection is in does not count twice: the cap still admits a new room', async () => {
    const eng = await startEngine({ ...CORE, CHAT_MAX_ROOMS_PER_CONN: '3', CHAT_WINDOW: '100' });
    const a = await Client.connect(eng.url, { user: 'capper' });
    const w = await Client.connect(eng.url, { user: 'writer' });
    await a.request({ op: 'join', room: 'cap-a' });
    await a.request({ op: 'join', room: 'cap-b' });
    const acks = [];
    for (let i = 0; i < 150; i++) acks.push(w.request({ op: 'send', room: 'cap-a', text: `m${i}`, cid: `m${i}` }));
    const first = (await Promise.all(acks))[0];
    // `since` the first message, which is out of the 100-message window: the rejoin reads the store
    // (asynchronously), and the join of a third room arrives while that read is in flight.
    a.send({ op: 'join', room: 'cap-a', since: first.id, ref: 'ra' });
    a.send({ op: 'join', room: 'cap-c', ref: 'rc' });
    expect(await a.waitFor((f) => f.ref === 'rc')).toMatchObject({ op: 'joined', room: 'cap-c' });
    expect(await a.waitFor((f) => f.ref === 'ra')).toMatchObject({ op: 'joined', room: 'cap-a', recovered: true });
    expect(await a.request({ op: 'join', room: 'cap-d' })).toMatchObject({ op: 'error', code: 'forbidden' });
    await Promise.all([a.close(), w.close()]);
    expect(await eng.stop()).toBe(0);
  });
});
