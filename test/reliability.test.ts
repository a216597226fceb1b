// Reliability (issue 7): what the engine guarantees under crashes, retries, long disconnections,
// slow consumers, hostile input and idle sockets, each against a real engine process. The long
// versions (50 crash cycles, 100,000 fuzz frames, 10,000 idle sockets) are scripts/crash-cycles.ts;
// RELIABILITY.md lists each guarantee with its test and its last figures. The 2-minute soak is
// test/soak.solo.test.ts: it runs alone, after every other suite.

import WebSocket from 'ws';
import { describe, expect, it, onTestFailed } from 'vitest';
import { CORE, CrashRun, fdCount, fuzzEngine, metric, rng, socketFdCount, socketOf, tap, type AuditResult } from './reliability-helpers.ts';
import { Client, getJson, type Frame } from './support/client.ts';
import { startEngine, tempDir } from './support/engine.ts';
import { openMany } from './support/raw-ws.ts';
import { sleep, until } from './support/wait.ts';
import { expectFuzzAnswered } from './reliability-checks.ts';

/** Figures each test reports, printed once at the end (RELIABILITY.md quotes them). */
function report(name: string, figures: Record<string, unknown>): void {
  process.stdout.write(`[reliability] ${name}: ${JSON.stringify(figures)}\n`);
}

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const toBig = (id: string): bigint => [...id].reduce((n, c) => (n << 5n) | BigInt(ALPHABET.indexOf(c)), 0n);
const fromBig = (n: bigint): string => Array.from({ length: 13 }, (_, i) => ALPHABET[Number((n >> BigInt(5 * (12 - i))) & 31n)]).join('');

describe('1. crash: kill -9 under load', () => {
  it('3 cycles: every acked message stored exactly once, seqs gapless, nothing delivered that the crash lost', async () => {
    const run = new CrashRun(tempDir(), { clients: 50, rooms: 10, rate: 2000, killAfterAcks: 1500 });
    const audits: AuditResult[] = [];
    for (let n = 1; n <= 3; n++) audits.push(await run.cycle(n));
    const { before, after, stopCode } = await run.finish();
    audits.push(before, after);
    report('crash', {
      cycles: 3, sent: run.sent, acked: before.acked, stored: before.stored, lost: before.lost, duplicates: before.duplicates,
      gaps: before.gaps, receivedNotStored: before.phantom, retriedAfterRestart: run.retried, afterRetries: { acked: after.acked, stored: after.stored },
      perCycle: run.cycles,
    });
    for (const a of audits) {
      expect(a.problems).toEqual([]);
      expect(a).toMatchObject({ lost: 0, duplicates: 0, gaps: 0, phantom: 0, mismatched: 0, epochChanged: 0, streamBreaks: 0 });
    }
    // each cycle really was killed mid-load, with sends still in flight
    for (const c of run.cycles) expect(c.acked).toBeGreaterThanOrEqual(1500);
    expect(run.kills).toBe(3);
    expect(before.acked).toBeGreaterThanOrEqual(4500);
    expect(before.stored).toBeGreaterThanOrEqual(before.acked);
    // after the final retries, every send ever made is acked and stored once
    expect(run.pending.size).toBe(0);
    expect(after.stored).toBe(after.acked);
    expect(run.seen.size).toBeGreaterThan(0);
    expect(stopCode).toBe(0);
  });
});

describe('2. client retries', () => {
  it('a send dropped before its ack and resent 5 times across a restart is stored and delivered once', async () => {
    const X = 'retry-cid-X';
    const text = 'exactly once';
    // a slow disk: the first send is still uncommitted when its connection is gone
    let eng = await startEngine({ ...CORE, CHAT_TEST_COMMIT_DELAY_MS: '40' });
    const member = await Client.connect(eng.url, { user: 'rt-member' });
    const j0 = await member.request({ op: 'join', room: 'rt' });
    expect(j0.seq).toBe(0);
    const first = await Client.connect(eng.url, { user: 'rt-sender' });
    first.send({ op: 'send', room: 'rt', text, cid: X });
    await first.close();
    expect(first.frames.filter((f) => f.op === 'ack')).toEqual([]); // it really left before the ack

    const acks: Frame[] = [];
    const resend = async (): Promise<void> => {
      const c = await Client.connect(eng.url, { user: 'rt-sender' });
      acks.push(await c.request({ op: 'send', room: 'rt', text, cid: X }));
      await c.close();
    };
    await resend(); // #1: may still be in flight
    await resend(); // #2: committed by now
    expect(await eng.stop('SIGTERM')).toBe(0);
    await member.closed;
    eng = await startEngine({ ...CORE }, eng.dir);
    for (let k = 0; k < 3; k++) await resend(); // #3..#5 after the restart

    expect(acks).toHaveLength(5);
    for (const a of acks) expect(a).toMatchObject({ op: 'ack', cid: X, room: 'rt', id: acks[0].id, seq: 1, at: acks[0].at });
    // the member, reconnected after the restart, catches up from the last id it saw
    const seenBefore = member.frames.filter((f) => f.op === 'msg');
    const member2 = await Client.connect(eng.url, { user: 'rt-member' });
    const last = seenBefore.at(-1);
    const j = await member2.request({ op: 'join', room: 'rt', ...(last ? { since: last.id } : {}) });
    if (last) expect(j.recovered).toBe(true);
    // one more message proves the member is live, then count every copy of X it ever got
    const probe = await Client.connect(eng.url, { user: 'rt-probe' });
    await probe.request({ op: 'send', room: 'rt', text: 'after', cid: 'probe' });
    await member2.op('msg', (f) => f.cid === 'probe');
    const copies = [...seenBefore, ...j.messages, ...member2.frames.filter((f) => f.op === 'msg')].filter((m: Frame) => m.cid === X);
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatchObject({ id: acks[0].id, seq: 1, text, from: { id: 'rt-sender' } });
    const { body } = await getJson(`${eng.http}/api/rooms/rt/messages?limit=100`);
    expect(body.messages.filter((m: Frame) => m.cid === X && m.from.id === 'rt-sender')).toHaveLength(1);
    expect(body.messages.map((m: Frame) => m.seq)).toEqual([1, 2]);
    report('retries', { resends: 5, ackIds: [...new Set(acks.map((a) => a.id))], storedCopies: 1, deliveredCopies: copies.length });
    await Promise.all([member2.close(), probe.close()]);
    expect(await eng.stop()).toBe(0);
  });
});

describe('3. recovery with since', () => {
  it('a member away while 10,000 messages go to its room gets all of them in order, recovered:true, then live at seq+1', async () => {
    const eng = await startEngine({ ...CORE });
    const a = await Client.connect(eng.url, { user: 'rc-away' });
    await a.request({ op: 'join', room: 'rc10k' });
    const b = await Client.connect(eng.url, { user: 'rc-sender' });
    await b.request({ op: 'send', room: 'rc10k', text: 'before', cid: 'before' });
    const lastSeen = await a.op('msg');
    await a.close();

    const N = 10_000;
    const ackIds: string[] = new Array(N);
    let acked = 0;
    tap(b, (f) => { if (f.op === 'ack' && f.cid.startsWith('n')) { ackIds[Number(f.cid.slice(1))] = f.id; acked++; } });
    const t0 = Date.now();
    for (let i = 0; i < N; i++) {
      b.send({ op: 'send', room: 'rc10k', text: `message ${i}`, cid: `n${i}` });
      if (i % 500 === 499) await until('acks', () => (acked >= i - 1500 ? true : undefined), 30_000, 2);
    }
    await until(`${N} acks`, () => (acked === N ? true : undefined), 60_000, 10);
    const awayMs = Date.now() - t0;

    const a2 = await Client.connect(eng.url, { user: 'rc-away' });
    const j = await a2.request({ op: 'join', room: 'rc10k', since: lastSeen.id });
    expect(j.recovered).toBe(true);
    expect(j.seq).toBe(lastSeen.seq + N);
    expect(j.messages).toHaveLength(N);
    expect(j.messages.map((m: Frame) => m.seq)).toEqual(Array.from({ length: N }, (_, i) => lastSeen.seq + 1 + i));
    expect(j.messages.map((m: Frame) => m.id)).toEqual(ackIds);
    await b.request({ op: 'send', room: 'rc10k', text: 'live', cid: 'live' });
    expect(await a2.op('msg')).toMatchObject({ seq: j.seq + 1, cid: 'live' });

    // a since that was never stored: older than everything, between two stored ids, newer than all
    const ids = j.messages.map((m: Frame) => toBig(m.id));
    let between: string | undefined;
    for (let i = 1; i < ids.length && between === undefined; i++) if (ids[i] - ids[i - 1] >= 2n) between = fromBig(ids[i - 1] + 1n);
    expect(between).toBeDefined();
    for (const since of ['0000000000001', between!, '7ZZZZZZZZZZZZ']) {
      const c = await Client.connect(eng.url, { user: 'rc-unknown' });
      const u = await c.request({ op: 'join', room: 'rc10k', since, limit: 5 });
      expect(u.recovered, `since ${since}`).toBe(false);
      expect(u.messages.map((m: Frame) => m.seq)).toEqual([N - 3, N - 2, N - 1, N, N + 1].map((s) => s + lastSeen.seq));
      await c.close();
    }
    report('recovery', { messages: N, awayMs, recovered: true, joinedBytes: JSON.stringify(j).length });
    await Promise.all([a2.close(), b.close()]);
    expect(await eng.stop()).toBe(0);
  });

  it('a since deleted by retention gets recovered:false and the latest page, not a silent gap', async () => {
    const eng = await startEngine({ ...CORE, CHAT_RETENTION: '2s' });
    const a = await Client.connect(eng.url, { user: 'ret-a' });
    await a.request({ op: 'join', room: 'ret' });
    const old = await a.request({ op: 'send', room: 'ret', text: 'soon gone', cid: 'old' });
    await until('the retention to delete the message', async () => {
      const { body } = await getJson(`${eng.http}/api/rooms/ret/messages`);
      return body.messages.some((m: Frame) => m.id === old.id) ? undefined : true;
    }, 15_000, 200);
    const fresh = await a.request({ op: 'send', room: 'ret', text: 'fresh', cid: 'fresh' });
    const b = await Client.connect(eng.url, { user: 'ret-b' });
    const j = await b.request({ op: 'join', room: 'ret', since: old.id });
    expect(j.recovered).toBe(false);
    expect(j.messages.map((m: Frame) => m.id)).toEqual([fresh.id]);
    // and after a restart (nothing of the room in memory) the same
    await Promise.all([a.close(), b.close()]);
    expect(await eng.stop()).toBe(0);
    const eng2 = await startEngine({ ...CORE, CHAT_RETENTION: '2s' }, eng.dir);
    const c = await Client.connect(eng2.url, { user: 'ret-c' });
    const j2 = await c.request({ op: 'join', room: 'ret', since: old.id });
    expect(j2.recovered).toBe(false);
    expect(j2.messages.map((m: Frame) => m.id)).not.toContain(old.id);
    await c.close();
    expect(await eng2.stop()).toBe(0);
  });
});

// 4. slow consumer: test/reliability.solo.test.ts (it asserts an RSS and an ack-latency bound).

describe('5. hostile input', () => {
  const TOKEN = 'reliability-admin-token-0123456789';
  const FRAMES = 20_000;

  it(`${FRAMES.toLocaleString('en')} random and mutated frames (JSON and msgpack) plus malformed HTTP at every route: no crash, every frame answered once, no 500, a good client unaffected`, async () => {
    const seed = Number(process.env.FUZZ_SEED ?? 7_2026);
    onTestFailed(() => console.error(`reliability fuzz seed: FUZZ_SEED=${seed}`));
    const eng = await startEngine({ ...CORE, CHAT_ADMIN_TOKEN: TOKEN, CHAT_LOG_LEVEL: 'error' });
    const r = await fuzzEngine(eng, TOKEN, FRAMES, seed);
    report('fuzz', r.figures);
    expectFuzzAnswered(r, FRAMES);
    expect(await eng.stop()).toBe(0);
  });

  it('a 1 MiB frame against the 64 KiB limit closes only that connection', async () => {
    const eng = await startEngine({ ...CORE });
    const big = await Client.connect(eng.url, { user: 'big-1' });
    const bigMp = await Client.connect(eng.url, { user: 'big-2', protocol: 'chat.v1.msgpack' });
    const by = await Client.connect(eng.url, { user: 'big-by' });
    await by.request({ op: 'join', room: 'big' });
    big.sendRaw(JSON.stringify({ op: 'send', room: 'big', text: 'x'.repeat(1 << 20), cid: 'huge' }));
    bigMp.sendRaw(Buffer.alloc(1 << 20, 0xc1));
    expect(await big.closed).toBe(1009);
    expect(await bigMp.closed).toBe(1009);
    expect(big.frames.find((f) => f.op === 'error')).toMatchObject({ code: 'too_large' });
    expect(await by.request({ op: 'send', room: 'big', text: 'fine', cid: 'fine' })).toMatchObject({ op: 'ack', seq: 1 });
    expect(by.closeCode).toBeNull();
    expect((await by.request({ op: 'history', room: 'big' })).messages.map((m: Frame) => m.cid)).toEqual(['fine']);
    await by.close();
    expect(await eng.stop()).toBe(0);
  });

  it('STOMP (v12.stomp): malformed frames are answered with ERROR or a close', async () => {
    const eng = await startEngine({ ...CORE });
    try {
      const ws = await new Promise<WebSocket>((res, rej) => {
        const w = new WebSocket(`${eng.url}?user=stomp-fz`, 'v12.stomp');
        w.once('open', () => res(w));
        w.once('error', rej);
        w.once('unexpected-response', (_q, r) => rej(new Error(`HTTP ${r.statusCode}`)));
      });
      ws.close();
      // NUL-terminated frames that are each malformed (an empty message or a lone EOL is a heart-beat, not listed)
      const frames = ['NOPE\n\n\0', 'CONNECT\n\n\0', 'SEND\ndestination:/topic/fz\n\nx\0', 'SEND\ncontent-length:99999999\n\nx\0', 'SUBSCRIBE\nid:1\n\n\0',
        'SEND\ndestination:' + 'd'.repeat(70_000) + '\n\n\0', 'CONNECT\naccept-version:9.9\n\n\0', 'SEND\n' + 'h:v\n'.repeat(5000) + '\n\0', '\xff\xfe\n\n\0',
        'SEND\ndestination:/app/rooms/bad room\n\nx\0', 'SEND\nbad header line\n\nx\0', 'JUNK\0', 'SEND\0'];
      const r = rng(2026);
      for (let i = 0; i < 100; i++) {
        const cmd = ['SEND', 'SUBSCRIBE', 'UNSUBSCRIBE', 'ACK', 'NACK', 'BEGIN', 'COMMIT', 'ABORT', 'XX', 'send'][Math.floor(r() * 10)];
        const junk = Array.from({ length: 1 + Math.floor(r() * 40) }, () => String.fromCharCode(32 + Math.floor(r() * 95))).join('');
        frames.push(`${cmd}\n${junk.replace(/:/g, '')}\n\n${junk}\0`);
      }
      const silent: string[] = [];
      const one = async (f: string): Promise<void> => {
        const w = await new Promise<WebSocket>((res, rej) => {
          const x = new WebSocket(`${eng.url}?user=stomp-fz-${Math.floor(r() * 1e9)}`, 'v12.stomp');
          x.once('open', () => res(x));
          x.once('error', rej);
        });
        w.on('error', () => {});
        const got = new Promise<string>((res) => {
          w.on('message', (d: Buffer) => { if (d.toString().startsWith('ERROR')) res('error'); });
          w.once('close', () => res('close'));
        });
        w.send('CONNECT\naccept-version:1.2\nhost:127.0.0.1\n\n\0');
        w.send(f);
        if ((await Promise.race([got, sleep(10_000).then(() => 'none')])) === 'none') silent.push(JSON.stringify(f.slice(0, 60)));
        w.terminate();
      };
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => { while (next < frames.length) await one(frames[next++]); }));
      report('stomp-fuzz', { frames: frames.length, unanswered: silent.length, samples: silent.slice(0, 5) });
      expect(eng.proc.exitCode).toBeNull();
      expect(silent, 'malformed STOMP frames answered by neither ERROR nor a close').toEqual([]);
    } finally {
      await eng.stop();
    }
  });
});

describe('6. idle and half-open connections', () => {
  it('2,000 silent connections and 100 paused ones are closed by the idle timeout; fds return to the baseline; a live idle client stays', async () => {
    const N = 2000;
    const H = 100;
    const eng = await startEngine({ ...CORE, CHAT_IDLE_TIMEOUT: '8' });
    const pid = eng.proc.pid!;
    const base = fdCount(pid);
    const baseSockets = socketFdCount(pid);
    const t0 = Date.now();
    // raw handshakes that read but never answer a ping (a peer gone quiet), spread over source addresses
    const silent = await openMany(eng.port, N, { query: (i) => `user=idle-${i}`, silent: true }, 200);
    // half-open: full clients that joined a room, then stopped reading (and so stop answering pings)
    const paused: Client[] = [];
    for (let i = 0; i < H; i++) {
      const c = await Client.connect(eng.url, { user: `half-${i}` });
      await c.request({ op: 'join', room: 'half' });
      socketOf(c).pause();
      paused.push(c);
    }
    // a client that is idle but answers pings (ws does it for us) must survive the timeout
    const alive = await Client.connect(eng.url, { user: 'idle-alive' });
    const openMs = Date.now() - t0;
    const peakFd = fdCount(pid);
    const peakConns = await metric(eng.http, 'chat_connections');
    expect(peakConns).toBe(N + H + 1);
    expect(peakFd).toBeGreaterThanOrEqual(base + N + H);
    await until('the server to close every silent connection', () => (silent.every((c) => c.isClosed) ? true : undefined), 40_000, 200);
    const closedMs = Date.now() - t0;
    await until('the half-open ones to be closed server-side', async () => ((await metric(eng.http, 'chat_connections')) === 1 ? true : undefined), 20_000, 200);
    // sockets back to the baseline (+1: the live client). Other fds (worker-thread pipes and event
    // loops started lazily after start-up) are reported, not counted as connections.
    const socketsAfter = await until('socket fds back to the baseline', () => { const f = socketFdCount(pid); return f <= baseSockets + 3 ? f : undefined; }, 20_000, 200);
    const fdAfter = fdCount(pid);
    for (const c of paused) socketOf(c).resume();
    const codes = await Promise.all(paused.map((c) => c.closed));
    expect(alive.closeCode).toBeNull();
    expect(await alive.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    report('idle', { silent: N, halfOpen: H, openMs, closedByServerAfterMs: closedMs, fdBaseline: base, fdPeak: peakFd, fdAfter, socketFdBaseline: baseSockets, socketFdAfter: socketsAfter, halfOpenCloseCodes: [...new Set(codes)] });
    await alive.close();
    expect(await eng.stop()).toBe(0);
  });
});
