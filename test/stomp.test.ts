// STOMP 1.2 with the real @stomp/stompjs client (ws as its WebSocket), against a real engine;
// plus the frame parser fuzzed with random and truncated input.

import { Client as StompClient, type IMessage, type StompHeaders } from '@stomp/stompjs';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import WebSocket from 'ws';
import { StompError, StompParser } from '../src/protocol/stomp/parser.ts';
import { rng, seededBytes } from './reliability-helpers.ts';
import { Client, getJson, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, tempDir, type EngineProc } from './support/engine.ts';

const ID_RE = /^[0-9A-F][0-9A-HJKMNP-TV-Z]{12}$/;

interface Harness {
  client: StompClient;
  connected: Promise<StompHeaders>;
  errors: string[];
  closes: number[];
}

function stomp(url: string, opts: { protocols?: string[]; connectHeaders?: StompHeaders; heartbeat?: number; reconnectDelay?: number } = {}): Harness {
  const errors: string[] = [];
  const closes: number[] = [];
  let resolve!: (h: StompHeaders) => void;
  const connected = new Promise<StompHeaders>((r) => { resolve = r; });
  const client = new StompClient({
    webSocketFactory: () => new WebSocket(url, opts.protocols ?? ['v12.stomp', 'v11.stomp', 'v10.stomp']),
    connectHeaders: opts.connectHeaders ?? {},
    heartbeatIncoming: opts.heartbeat ?? 0,
    heartbeatOutgoing: opts.heartbeat ?? 0,
    reconnectDelay: opts.reconnectDelay ?? 0,
    onConnect: (frame) => resolve(frame.headers),
    onStompError: (frame) => errors.push(frame.headers.message ?? frame.body),
    onWebSocketClose: (evt) => closes.push((evt as { code: number }).code),
  });
  client.activate();
  return { client, connected, errors, closes };
}

function nextMessage(list: IMessage[], n: number, timeoutMs = 10_000): Promise<IMessage[]> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (list.length >= n) return resolve(list.slice(0, n));
      if (Date.now() > deadline) return reject(new Error(`only ${list.length} of ${n} STOMP messages arrived`));
      setTimeout(check, 10);
    };
    check();
  });
}

function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (pred()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 10);
    };
    check();
  });
}

describe('STOMP over WebSocket with @stomp/stompjs', () => {
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ ...SEND_LIMITS_OFF, CHAT_TEST_HOOKS: '1' }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('connects, subscribes, sends with a receipt after the durable commit, and shares the room with native clients', async () => {
    const h = stomp(`${eng.url}?user=stompy&name=Stompy`);
    const connected = await h.connected;
    expect(connected.version).toBe('1.2');
    const got: IMessage[] = [];
    h.client.subscribe('/topic/rooms/mixed', (m) => got.push(m), { id: 'sub-0' });
    const native = await Client.connect(eng.url, { user: 'nat', name: 'Nat' });
    await native.request({ op: 'join', room: 'mixed' });
    // stompy's own ENTER is its first MESSAGE
    const [enter] = await nextMessage(got, 1);
    expect(JSON.parse(enter.body)).toMatchObject({ type: 'ENTER', from: { id: 'stompy' } });
    got.length = 0;
    // The commit is held: the SEND reaches it, and no RECEIPT (nor delivery) goes out meanwhile.
    expect((await fetch(`${eng.http}/_test/hold/commit`, { method: 'POST' })).status).toBe(200);
    let receiptSeen = false;
    const receipted = new Promise<void>((r) => h.client.watchForReceipt('rcpt-1', () => { receiptSeen = true; r(); }));
    h.client.publish({ destination: '/app/rooms/mixed', body: 'hello from stomp', headers: { receipt: 'rcpt-1', cid: 'st-1' } });
    expect((await getJson(`${eng.http}/_test/waiting/commit?n=1`)).body.waiting).toBe(1);
    // A frame the server answers at once, sent after the SEND reached the commit: its RECEIPT
    // comes down the same ordered socket, so a RECEIPT sent on acceptance would be ahead of it.
    const probed = new Promise<void>((r) => h.client.watchForReceipt('probe', () => r()));
    h.client.subscribe('/topic/rooms/mixed', () => {}, { id: 'sub-probe', receipt: 'probe' });
    await probed;
    expect(receiptSeen, 'RECEIPT before the durable commit').toBe(false);
    expect(native.frames.some((f) => f.op === 'msg' && f.cid === 'st-1')).toBe(false);
    expect((await fetch(`${eng.http}/_test/release/commit`, { method: 'POST' })).status).toBe(200);
    await receipted;
    const fromStomp = await native.op('msg', (f) => f.cid === 'st-1');
    expect(fromStomp).toMatchObject({ text: 'hello from stomp', from: { id: 'stompy', name: 'Stompy' }, room: 'mixed' });
    const ack = await native.request({ op: 'send', room: 'mixed', text: 'hello from native', cid: 'n-1' });
    await until(() => got.filter((m) => JSON.parse(m.body).type === 'CHAT').length >= 2, 'two CHAT messages');
    const msgs = got.filter((m) => JSON.parse(m.body).type === 'CHAT'); // nat's ENTER came in between
    const mine = JSON.parse(msgs[0].body);
    expect(mine.id).toBe(fromStomp.id);
    expect(msgs[1].headers['message-id']).toBe(ack.id);
    expect(msgs[1].headers['message-id']).toMatch(ID_RE);
    expect(msgs[1].headers.subscription).toBe('sub-0');
    expect(msgs[1].headers.destination).toBe('/topic/rooms/mixed');
    expect(Number(msgs[1].headers.seq)).toBe(ack.seq);
    expect(msgs[1].headers['sender-id']).toBe('nat');
    expect(JSON.parse(msgs[1].body)).toMatchObject({ id: ack.id, seq: ack.seq, text: 'hello from native', type: 'CHAT' });
    // the stored copy is the same message
    const stored = (await getJson(`${eng.http}/api/rooms/mixed/messages`)).body.messages;
    expect(stored.map((m: { id: string }) => m.id)).toContain(fromStomp.id);
    await h.client.deactivate();
    await native.close();
  });

  it('speaks the Spring tutorial shape on /app/chat/message and /topic/chat/room/{id}', async () => {
    const h = stomp(`${eng.url}?user=tut&name=Tut`);
    await h.connected;
    const got: IMessage[] = [];
    h.client.subscribe('/topic/chat/room/tut1', (m) => got.push(m));
    await nextMessage(got, 1); // own ENTER
    h.client.publish({ destination: '/app/chat/message', body: JSON.stringify({ type: 'ENTER', roomId: 'tut1', sender: 'Tut', message: '' }) });
    h.client.publish({ destination: '/app/chat/message', body: JSON.stringify({ type: 'TALK', roomId: 'tut1', sender: 'ignored-spoof', message: 'hi all' }) });
    const [enter, talk] = await nextMessage(got, 2);
    expect(JSON.parse(enter.body)).toMatchObject({ type: 'ENTER', roomId: 'tut1', sender: 'Tut' });
    expect(JSON.parse(talk.body)).toMatchObject({ type: 'TALK', roomId: 'tut1', sender: 'Tut', message: 'hi all', senderId: 'tut' });
    expect(JSON.parse(talk.body).id).toMatch(ID_RE);
    await h.client.deactivate();
  });

  it('negotiates heart-beats and keeps beating', async () => {
    const h = stomp(`${eng.url}?user=hb`, { heartbeat: 1000 });
    const headers = await h.connected;
    expect(headers['heart-beat']).toBe('1000,1000');
    const ws = (h.client.webSocket as unknown as WebSocket);
    let beats = 0;
    ws.on('message', (d: Buffer) => { if (d.toString() === '\n') beats++; });
    await until(() => beats >= 2, 'two server heart-beats', 6000);
    expect(h.client.connected).toBe(true);
    await h.client.deactivate();
  });

  it('refuses a protocol violation with ERROR and a close, leaving other connections alone', async () => {
    const bystander = await Client.connect(eng.url, { user: 'by' });
    for (const bad of ['SEND\ndestination:/app/rooms/x\n\nno connect\0', 'CONNECT\naccept-version:1.2\n\n\0FROB\n\n\0', 'CONNECT\naccept-version:1.2\n\n\0SEND\ndestination:/app/rooms/x\ncontent-length:2\n\nshort\0', 'CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\ndestination:/queue/x\nid:1\n\n\0', 'CONNECT\naccept-version:9.9\n\n\0', `CONNECT\naccept-version:1.2\n${'x:y\n'.repeat(100)}\n\0`, 'CONNECT\naccept-version:1.2\n\n\0SEND\ndestination:/app/rooms/x\nbad\\qescape:1\n\nx\0', 'CONNECT\naccept-version:1.2\n\n\0JUNK\0', 'CONNECT\naccept-version:1.2\n\n\0SEND\0']) {
      const ws = new WebSocket(eng.url, 'v12.stomp');
      await new Promise((r) => ws.once('open', r));
      const frames: string[] = [];
      ws.on('message', (d: Buffer) => frames.push(d.toString()));
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      ws.send(bad);
      expect(await closed, bad.slice(0, 40)).toBeGreaterThanOrEqual(1000);
      expect(frames.some((f) => f.startsWith('ERROR\n')), bad.slice(0, 40)).toBe(true);
    }
    expect(await bystander.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await bystander.close();
  });

  it('authorizes like the native protocol: a group room refuses a non-member with ERROR', async () => {
    const admin = 'stomp-admin-token-0123456789';
    const e2 = await startEngine({ CHAT_ADMIN_TOKEN: admin, CHAT_STOMP_APP_PREFIX: '/pub', CHAT_STOMP_BROKER_PREFIX: '/sub' });
    const r = await fetch(`${e2.http}/api/rooms`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'group', id: 'staff', members: ['boss'] }) });
    expect(r.status).toBe(201);
    // the Spring-style /ws-stomp path, /pub and /sub prefixes
    const boss = stomp(`ws://127.0.0.1:${e2.port}/ws-stomp?user=boss`);
    await boss.connected;
    const got: IMessage[] = [];
    boss.client.subscribe('/sub/rooms/staff', (m) => got.push(m));
    const receipted = new Promise<void>((res) => boss.client.watchForReceipt('r', () => res()));
    boss.client.publish({ destination: '/pub/rooms/staff', body: 'memo', headers: { receipt: 'r' } });
    await receipted;
    expect(JSON.parse((await nextMessage(got, 1))[0].body)).toMatchObject({ text: 'memo' });
    const intruder = stomp(`ws://127.0.0.1:${e2.port}/ws-stomp?user=intruder`);
    await intruder.connected;
    intruder.client.subscribe('/sub/rooms/staff', () => {});
    await until(() => intruder.errors.length > 0, 'ERROR for the intruder');
    expect(intruder.errors[0]).toMatch(/forbidden/);
    await intruder.client.deactivate();
    await boss.client.deactivate();
    expect(await e2.stop()).toBe(0);
  });

  it('takes the JWT from CONNECT (Authorization or passcode) in jwt mode and refuses a bad one', async () => {
    const secret = 'stomp-jwt-secret-that-is-long-enough-0123';
    const e3 = await startEngine({ CHAT_AUTH: 'jwt', CHAT_JWT_SECRET: secret });
    const token = await new SignJWT({ sub: 'jwt-user', name: 'Jay' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    const a = stomp(e3.url, { connectHeaders: { Authorization: `Bearer ${token}` } });
    expect((await a.connected)['user-name']).toBe('jwt-user');
    const b = stomp(e3.url, { connectHeaders: { login: 'x', passcode: token } });
    expect((await b.connected)['user-name']).toBe('jwt-user');
    const bad = stomp(e3.url, { connectHeaders: { passcode: 'not-a-token' } });
    await until(() => bad.errors.length > 0, 'ERROR for a bad token');
    expect(bad.errors[0]).toMatch(/invalid|unauthorized/i);
    for (const h of [a, b, bad]) await h.client.deactivate();
    expect(await e3.stop()).toBe(0);
  });

  interface RawStomp {
    ws: WebSocket;
    frames: string[];
    /** The close code, once the server has closed the connection. */
    closed: Promise<number>;
    waitFor: (pred: (f: string) => boolean, what: string) => Promise<string>;
  }

  /** A bare STOMP-over-WebSocket connection: raw frames in, every frame out (as text); `connect`: CONNECTED first. */
  async function rawStomp(url: string, connect = false): Promise<RawStomp> {
    const ws = new WebSocket(url, 'v12.stomp');
    const frames: string[] = [];
    ws.on('message', (d: Buffer) => frames.push(d.toString()));
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    await new Promise((r) => ws.once('open', r));
    const waitFor = async (pred: (f: string) => boolean, what: string): Promise<string> => {
      await until(() => frames.some(pred), what);
      return frames.find(pred)!;
    };
    if (connect) {
      ws.send('CONNECT\naccept-version:1.2\n\n\0');
      await waitFor((f) => f.startsWith('CONNECTED'), 'CONNECTED');
    }
    return { ws, frames, closed, waitFor };
  }

  /** The Message JSON a MESSAGE frame carries. */
  const bodyOf = (frame: string): Frame => JSON.parse(frame.slice(frame.indexOf('\n\n') + 2, frame.lastIndexOf('\0'))) as Frame;

  it('a frame split across WebSocket messages (in its headers, in its body) is one frame', async () => {
    const c = await rawStomp(`${eng.url}?user=split`, true);
    c.ws.send('SUBSCRIBE\nid:s\ndestination:/topic/rooms/split\nrece');
    c.ws.send('ipt:sub\n\n\0');
    await c.waitFor((f) => f.includes('receipt-id:sub'), 'the SUBSCRIBE receipt');
    c.ws.send('SEND\ndestination:/app/rooms/split\nreceipt:r1\n\nhello');
    c.ws.send(' world\0');
    await c.waitFor((f) => f.includes('receipt-id:r1'), 'the SEND receipt');
    const msg = await c.waitFor((f) => f.startsWith('MESSAGE') && f.includes('"type":"CHAT"'), 'the MESSAGE');
    expect(bodyOf(msg).text).toBe('hello world');
    expect(c.frames.some((f) => f.startsWith('ERROR'))).toBe(false);
    c.ws.close();
  });

  it('a body with a real U+FFFD is text, a body with invalid UTF-8 is refused', async () => {
    const c = await rawStomp(`${eng.url}?user=fffd`, true);
    c.ws.send('SUBSCRIBE\nid:s\ndestination:/topic/rooms/fffd\nreceipt:sub\n\n\0');
    await c.waitFor((f) => f.includes('receipt-id:sub'), 'the SUBSCRIBE receipt');
    c.ws.send('SEND\ndestination:/app/rooms/fffd\nreceipt:r1\n\nreplacement \uFFFD char\0');
    const msg = await c.waitFor((f) => f.startsWith('MESSAGE') && f.includes('"type":"CHAT"'), 'the MESSAGE');
    expect(bodyOf(msg).text).toBe('replacement \uFFFD char');
    c.ws.send(Buffer.concat([Buffer.from('SEND\ndestination:/app/rooms/fffd\n\nbad '), Buffer.from([0xc3, 0x28]), Buffer.from('\0')]));
    expect(await c.closed).toBe(1002);
    expect(c.frames.find((f) => f.startsWith('ERROR'))).toMatch(/not valid UTF-8/);
  });

  it('frames after a CONNECT whose identity is still being checked wait for CONNECTED, in order', async () => {
    const watcher = await Client.connect(eng.url, { user: 'cw' });
    await watcher.request({ op: 'join', room: 'pipelined' });
    const c = await rawStomp(eng.url); // no ?user: the identity comes from CONNECT's login
    c.ws.send('CONNECT\naccept-version:1.2\nlogin:piper\n\n\0SUBSCRIBE\nid:s\ndestination:/topic/rooms/pipelined\n\n\0SEND\ndestination:/app/rooms/pipelined\nreceipt:r1\n\npiped\0');
    await c.waitFor((f) => f.includes('receipt-id:r1'), 'the SEND receipt');
    expect(c.frames[0]).toMatch(/^CONNECTED\n/);
    expect(c.frames.some((f) => f.startsWith('ERROR'))).toBe(false);
    expect((await watcher.op('msg', (m) => m.text === 'piped')).from).toMatchObject({ id: 'piper' });
    c.ws.close();
    const twice = await rawStomp(eng.url);
    twice.ws.send('CONNECT\naccept-version:1.2\nlogin:twice\n\n\0CONNECT\naccept-version:1.2\nlogin:twice\n\n\0');
    expect(await twice.closed).toBe(1002);
    expect(twice.frames.filter((f) => f.startsWith('CONNECTED'))).toHaveLength(1);
    expect(twice.frames.find((f) => f.startsWith('ERROR'))).toMatch(/already connected/);
    await watcher.close();
  });

  it('SUBSCRIBE and UNSUBSCRIBE in one message, then SUBSCRIBE again: the new subscription gets the messages', async () => {
    const c = await rawStomp(`${eng.url}?user=resub`, true);
    // The UNSUBSCRIBE arrives while the SUBSCRIBE's join is still in flight (its room loading).
    c.ws.send('SUBSCRIBE\nid:a\ndestination:/topic/rooms/resub\nreceipt:a\n\n\0UNSUBSCRIBE\nid:a\nreceipt:ua\n\n\0');
    await c.waitFor((f) => f.includes('receipt-id:ua'), 'the UNSUBSCRIBE receipt');
    const receipts = c.frames.filter((f) => f.startsWith('RECEIPT')).map((f) => /receipt-id:(\w+)/.exec(f)![1]);
    expect(receipts).toEqual(['a', 'ua']);
    c.ws.send('SUBSCRIBE\nid:b\ndestination:/topic/rooms/resub\nreceipt:b\n\n\0');
    await c.waitFor((f) => f.includes('receipt-id:b'), 'the second SUBSCRIBE receipt');
    const sender = await Client.connect(eng.url, { user: 'resub-sender' });
    const ack = await sender.request({ op: 'send', room: 'resub', text: 'to b', cid: 'rb' });
    const msg = await c.waitFor((f) => f.startsWith('MESSAGE') && f.includes(`message-id:${ack.id}`), 'the MESSAGE on subscription b');
    expect(msg).toMatch(/\nsubscription:b\n/);
    expect(c.frames.filter((f) => f.startsWith('MESSAGE') && f.includes(`message-id:${ack.id}`))).toHaveLength(1);
    c.ws.close();
    await sender.close();
  });

  it('reconnects after the engine restarts and keeps receiving', async () => {
    const dir = tempDir();
    // A fixed port for both lives, below the kernel's ephemeral range: while the engine is down the
    // client's reconnects take ephemeral ports, and one of them could be the engine's own.
    const port = 20000 + Math.floor(Math.random() * 12000);
    let e4 = await startEngine({ CHAT_PORT: String(port) }, dir);
    const h = stomp(`ws://127.0.0.1:${port}/ws?user=re`, { reconnectDelay: 200 });
    await h.connected;
    const got: IMessage[] = [];
    let connects = 0;
    h.client.onConnect = () => {
      connects++;
      h.client.subscribe('/topic/rooms/again', (m) => got.push(m), { id: 'sub-re' });
    };
    h.client.forceDisconnect();
    await until(() => connects === 1, 'first re-subscribe');
    expect(await e4.stop()).toBe(0);
    e4 = await startEngine({ CHAT_PORT: String(port) }, dir);
    await until(() => connects === 2, 'reconnect after restart', 15_000);
    const native = await Client.connect(e4.url, { user: 'nat2' });
    const ack = await native.request({ op: 'send', room: 'again', text: 'after restart', cid: 'ar' });
    await until(() => got.some((m) => m.headers['message-id'] === ack.id), 'message after restart');
    await h.client.deactivate();
    await native.close();
    expect(await e4.stop()).toBe(0);
  });
});

describe('STOMP parser', () => {
  const limits = { maxFrame: 4096, maxHeaders: 16, maxHeaderLine: 512 };

  it('parses escapes, content-length bodies with NULs, split frames and heart-beats', () => {
    const p = new StompParser(limits);
    const frame = Buffer.concat([Buffer.from('SEND\ndestination:/app/rooms/a\\cb\\\\c\\n\ncontent-length:3\nx:1\nx:2\n\n'), Buffer.from([1, 0, 2]), Buffer.from('\0\n\n')]);
    const out1 = p.push(frame.subarray(0, 17));
    expect(out1.frames).toEqual([]);
    const out2 = p.push(frame.subarray(17));
    expect(out2.frames).toHaveLength(1);
    const f = out2.frames[0];
    expect(f.command).toBe('SEND');
    expect(f.headers.get('destination')).toBe('/app/rooms/a:b\\c\n');
    expect(f.headers.get('x')).toBe('1');
    expect([...f.body]).toEqual([1, 0, 2]);
    expect(p.push(Buffer.from('\r\n')).beat).toBe(true);
  });

  it('keeps a real U+FFFD in a header and refuses a header that is not UTF-8 (a cid must not change)', () => {
    const p = new StompParser(limits);
    expect(p.push(Buffer.from('SEND\ncid:a\uFFFDb\n\n\0')).frames[0].headers.get('cid')).toBe('a\uFFFDb');
    const bad = Buffer.concat([Buffer.from('SEND\ncid:a'), Buffer.from([0xff]), Buffer.from('b\n\n\0')]);
    expect(() => new StompParser(limits).push(bad)).toThrow(/not valid UTF-8/);
  });

  it('survives 20,000 random and truncated frames: every outcome is frames or a StompError', () => {
    const valid = [
      'CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0',
      'SEND\ndestination:/app/rooms/r\ncontent-type:text/plain\n\nhello\0',
      'SUBSCRIBE\nid:0\ndestination:/topic/rooms/r\n\n\0',
      'SEND\ndestination:/app/rooms/r\ncontent-length:5\n\nhe\0lo\0',
    ];
    const seed = Number(process.env.FUZZ_SEED ?? 2026);
    onTestFailed(() => console.error(`STOMP parser fuzz seed: FUZZ_SEED=${seed}`));
    const r = rng(seed);
    let errors = 0;
    let frames = 0;
    for (let i = 0; i < 20_000; i++) {
      const p = new StompParser(limits);
      const base = Buffer.from(valid[i % valid.length]);
      let input: Buffer;
      switch (i % 4) {
        case 0: input = seededBytes(r, 1 + (i % 300)); break;
        case 1: input = base.subarray(0, i % base.length); break;
        case 2: { input = Buffer.from(base); for (let k = 0; k < 3; k++) input[(i * 7 + k * 13) % input.length] = (i * 31 + k) & 0xff; break; }
        default: input = Buffer.concat([base, seededBytes(r, i % 50), base]);
      }
      try {
        frames += p.push(input).frames.length;
      } catch (err) {
        expect(err).toBeInstanceOf(StompError);
        errors++;
      }
    }
    expect(errors).toBeGreaterThan(0);
    expect(frames).toBeGreaterThan(0);
  });

  it('bounds a frame that never ends', () => {
    const p = new StompParser(limits);
    p.push(Buffer.from('SEND\ndestination:/x\n\n'));
    expect(() => { for (let i = 0; i < 10; i++) p.push(Buffer.alloc(1000, 97)); }).toThrow(StompError);
  });
});

describe('STOMP: deletes, edits and read receipts', () => {
  const ADMIN = 'stomp-admin-token-0123456789';
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ ...SEND_LIMITS_OFF, CHAT_ENTER_QUIT: 'off', CHAT_HTTP_RATE: '0', CHAT_ADMIN_TOKEN: ADMIN }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('a DELETE and an EDIT arrive as MESSAGE frames with a type header, in both body shapes; a replay shows the original deleted', async () => {
    const h = stomp(`${eng.url}?user=sd`);
    await h.connected;
    const plain: IMessage[] = [];
    const spring: IMessage[] = [];
    const native = await Client.connect(eng.url, { user: 'sd-nat' });
    const m0 = await native.request({ op: 'send', room: 'sdel', text: 'before', cid: 's0' });
    const m1 = await native.request({ op: 'send', room: 'sdel', text: 'to delete', cid: 's1' });
    const m2 = await native.request({ op: 'send', room: 'sdel', text: 'to edit', cid: 's2' });
    // One subscription per room and connection: the Spring-shaped one on a second connection.
    const h2 = stomp(`${eng.url}?user=sd-s`);
    await h2.connected;
    const subscribed = [new Promise<void>((r) => h.client.watchForReceipt('sub-r', () => r())), new Promise<void>((r) => h2.client.watchForReceipt('sub-s', () => r()))];
    h.client.subscribe('/topic/rooms/sdel', (m) => plain.push(m), { id: 'p', receipt: 'sub-r' });
    h2.client.subscribe('/topic/chat/room/sdel', (m) => spring.push(m), { id: 's', receipt: 'sub-s' });
    await Promise.all(subscribed);
    await native.request({ op: 'delete', room: 'sdel', id: m1.id });
    await native.request({ op: 'edit', room: 'sdel', id: m2.id, text: 'edited', cid: 's3' });
    const [del, edit] = await nextMessage(plain, 2);
    expect(del.headers.type).toBe('DELETE');
    expect(JSON.parse(del.body)).toMatchObject({ type: 'DELETE', target: m1.id, seq: 4 });
    expect(edit.headers.type).toBe('EDIT');
    expect(JSON.parse(edit.body)).toMatchObject({ type: 'EDIT', target: m2.id, text: 'edited' });
    const [sdel, sedit] = await nextMessage(spring, 2);
    expect(sdel.headers.type).toBe('DELETE');
    expect(JSON.parse(sdel.body)).toEqual({ type: 'DELETE', roomId: 'sdel', sender: 'sd-nat', id: JSON.parse(del.body).id, seq: 4, at: expect.any(Number), senderId: 'sd-nat', target: m1.id });
    expect(JSON.parse(sedit.body)).toMatchObject({ type: 'EDIT', message: 'edited', target: m2.id });
    // A subscription replaying from before the messages sees them as they are now.
    const late = stomp(`${eng.url}?user=sd2`);
    await late.connected;
    const replay: IMessage[] = [];
    late.client.subscribe('/topic/chat/room/sdel', (m) => replay.push(m), { id: 'r', since: m0.id });
    const all = await nextMessage(replay, 4);
    const [first, second] = all.map((m) => JSON.parse(m.body));
    expect(first).toMatchObject({ type: 'TALK', id: m1.id, deleted: true });
    expect('message' in first).toBe(false);
    expect(second).toMatchObject({ type: 'TALK', id: m2.id, message: 'edited', editedAt: expect.any(Number) });
    expect(all[0].headers.type).toBe('CHAT');
    await Promise.all([h.client.deactivate(), h2.client.deactivate(), late.client.deactivate(), native.close()]);
  });

  it('read receipts of a group room arrive as MESSAGE frames with type RECEIPT', async () => {
    const r = await fetch(`${eng.http}/api/rooms`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'group', id: 'srcpt', members: ['sr-a', 'sr-b'] }) });
    expect(r.status).toBe(201);
    const h = stomp(`${eng.url}?user=sr-a`);
    await h.connected;
    const plain: IMessage[] = [];
    const spring: IMessage[] = [];
    const h2 = stomp(`${eng.url}?user=sr-a`);
    await h2.connected;
    const subscribed = [new Promise<void>((res) => h.client.watchForReceipt('sub-rp', () => res())), new Promise<void>((res) => h2.client.watchForReceipt('sub-rs', () => res()))];
    h.client.subscribe('/topic/rooms/srcpt', (m) => plain.push(m), { id: 'p', receipt: 'sub-rp' });
    h2.client.subscribe('/topic/chat/room/srcpt', (m) => spring.push(m), { id: 's', receipt: 'sub-rs' });
    await Promise.all(subscribed);
    const b = await Client.connect(eng.url, { user: 'sr-b' });
    const m = await b.request({ op: 'send', room: 'srcpt', text: 'read me', cid: 'sr1' });
    await b.request({ op: 'read', room: 'srcpt', upTo: m.id });
    const [, rp] = await nextMessage(plain, 2);
    const [, rs] = await nextMessage(spring, 2);
    expect(rp.headers.type).toBe('RECEIPT');
    expect(rp.headers.user).toBe('sr-b');
    expect(rp.headers.seq).toBe('1');
    expect(JSON.parse(rp.body)).toEqual({ type: 'RECEIPT', room: 'srcpt', user: 'sr-b', seq: 1 });
    expect(JSON.parse(rs.body)).toEqual({ type: 'RECEIPT', roomId: 'srcpt', user: 'sr-b', seq: 1 });
    await Promise.all([h.client.deactivate(), h2.client.deactivate(), b.close()]);
  });
});
