// Reliability bounds (RELIABILITY.md sections 4 and 5): an RSS and an ack-latency bound are
// the claims themselves here, so these run in the solo project, alone on the box after every
// other suite (a neighbour's CPU would move the figures, not the engine).

import { describe, expect, it, onTestFailed } from 'vitest';
import { CORE, fuzzEngine, metric, percentile, rssMb, socketOf, tap } from './reliability-helpers.ts';
import { Client, type Frame } from './support/client.ts';
import { startEngine } from './support/engine.ts';
import { sleep, until } from './support/wait.ts';
import { expectFuzzAnswered } from './reliability-checks.ts';

function report(name: string, figures: Record<string, unknown>): void {
  process.stdout.write(`[reliability] ${name}: ${JSON.stringify(figures)}\n`);
}

describe('4. slow consumer', () => {
  it('a member that stops reading at 1,000 msgs/s is cut off at the backpressure limit and counted; RSS bounded; others unaffected; it recovers', async () => {
    const eng = await startEngine({ ...CORE, CHAT_MAX_BACKPRESSURE: '256k' });
    const pid = eng.proc.pid!;
    const slow = await Client.connect(eng.url, { user: 'sc-slow' });
    const js = await slow.request({ op: 'join', room: 'hot' });
    const good = await Client.connect(eng.url, { user: 'sc-good' });
    await good.request({ op: 'join', room: 'hot' });
    const other = await Client.connect(eng.url, { user: 'sc-other', protocol: 'chat.v1.msgpack' });
    await other.request({ op: 'join', room: 'hot' });
    const cut0 = await metric(eng.http, 'chat_slow_consumer_disconnects_total');
    const rss0 = rssMb(pid);
    let rssMax = rss0;
    const sampler = setInterval(() => { rssMax = Math.max(rssMax, rssMb(pid)); }, 100);

    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    let goodMsgs = 0;
    let goodLastSeq = js.seq;
    let goodGaps = 0;
    tap(good, (f) => {
      if (f.op === 'ack') { latencies.push(performance.now() - sentAt.get(f.cid)!); }
      if (f.op === 'msg') { goodMsgs++; if (f.seq !== goodLastSeq + 1) goodGaps++; goodLastSeq = f.seq; }
    });
    socketOf(slow).pause(); // stops reading: the kernel buffers fill, then the server's send buffer
    const text = 'p'.repeat(900); // ~1 KB frames: 1,000 msgs/s is ~1 MB/s into the paused socket
    let sent = 0;
    const pump = setInterval(() => {
      for (let i = 0; i < 10; i++) {
        const cid = `h${sent++}`;
        sentAt.set(cid, performance.now());
        good.send({ op: 'send', room: 'hot', text, cid });
      }
    }, 10);
    const t0 = Date.now();
    // the cut-off as the server sees it: its connection count drops (the paused client cannot see it yet)
    await until('the slow consumer to be cut off', async () => ((await metric(eng.http, 'chat_connections')) === 2 ? true : undefined), 30_000, 100);
    const cutAfterMs = Date.now() - t0;
    const sentAtCut = sent;
    // keep the load on for another second: the others go on as before
    await sleep(1000);
    clearInterval(pump);
    await until('every ack', () => (latencies.length === sent ? true : undefined), 20_000);
    await until('every delivery to the good member', () => (goodMsgs === sent ? true : undefined), 20_000);
    clearInterval(sampler);
    socketOf(slow).resume();
    const code = await slow.closed;
    const cut = (await metric(eng.http, 'chat_slow_consumer_disconnects_total')) - cut0;
    const p99 = percentile(latencies, 99);
    const slowMsgs = slow.frames.filter((f) => f.op === 'msg');
    report('slow-consumer', {
      backpressure: '256k', cutAfterMs, sentAtCut, sent, closeCode: code, counted: cut, rssStartMb: Math.round(rss0), rssMaxMb: Math.round(rssMax),
      ackP50ms: +percentile(latencies, 50).toFixed(1), ackP99ms: +p99.toFixed(1), ackMaxMs: +Math.max(...latencies).toFixed(1), slowGotBeforeCut: slowMsgs.length,
    });
    expect(code).not.toBe(1000);
    expect.soft(cut, 'chat_slow_consumer_disconnects_total must count the cut-off').toBe(1);
    expect(rssMax - rss0).toBeLessThan(100);
    expect(goodGaps).toBe(0);
    expect(p99).toBeLessThan(200);
    expect(await other.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(other.frames.filter((f) => f.op === 'msg')).toHaveLength(sent);

    // the cut-off member recovers from the last message it read
    const last = slowMsgs.at(-1) ?? js.messages.at(-1);
    const back = await Client.connect(eng.url, { user: 'sc-slow' });
    const j = await back.request({ op: 'join', room: 'hot', ...(last ? { since: last.id } : {}) });
    const lastSeq = last?.seq ?? js.seq;
    if (last) expect(j.recovered).toBe(true);
    expect(slowMsgs.map((m) => m.seq)).toEqual(Array.from({ length: slowMsgs.length }, (_, i) => js.seq + 1 + i));
    expect(j.messages.map((m: Frame) => m.seq)).toEqual(Array.from({ length: j.seq - lastSeq }, (_, i) => lastSeq + 1 + i));
    expect(j.seq).toBe(sent);
    await Promise.all([back.close(), good.close(), other.close()]);
    expect(await eng.stop()).toBe(0);
  });
});

describe('5. hostile input: the bound', () => {
  it('a well-behaved client\'s acks stay under 2 s while 5,000 fuzz frames and malformed HTTP hit the engine', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? 9_2026);
    onTestFailed(() => console.error(`reliability fuzz seed: FUZZ_SEED=${seed}`));
    const token = 'reliability-admin-token-0123456789';
    const eng = await startEngine({ ...CORE, CHAT_ADMIN_TOKEN: token, CHAT_LOG_LEVEL: 'error' });
    const r = await fuzzEngine(eng, token, 5000, seed);
    report('fuzz-bound', r.figures);
    expectFuzzAnswered(r, 5000);
    expect(Math.max(...r.goodLatencies)).toBeLessThan(2000);
    expect(await eng.stop()).toBe(0);
  });
});
