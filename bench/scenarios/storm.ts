// storm: connect/disconnect churn. Connections arrive at --rate per second (open loop), each joins a
// room, stays about --clients / --rate seconds (so about --clients are open at once), then closes.
// Meanwhile 2 anchor members per room stay connected and send 1 msg/s each, and every connection's
// seq stream is checked while it lives (anchors: to the end, no gap, no duplicate, nothing missing).
import { Meter, nowUs, type Correctness, type RunResult } from '../lib/stats.ts';
import { newHist, record, summarize } from '../lib/hist.ts';
import type { Sink } from '../lib/transport.ts';
import { round1 } from '../lib/roomload.ts';
import type { Scenario } from './types.ts';

export const storm: Scenario = {
  name: 'storm',
  summary: 'connect/disconnect churn at --rate connects/s with ~--clients open, 2 anchors per room sending 1 msg/s each',
  defaults: { clients: 1000, rooms: 50, rate: 500, durationS: 15, warmupS: 3, drainS: 5, findMaxStart: 250 },
  rated: true,
  async run(o, env) {
    const startedAt = new Date().toISOString();
    const A = o.rooms * 2;                         // anchors: clients 0..A-1
    const holdUs = (o.clients / o.rate) * 1e6;
    const maxConns = A + o.clients * 3 + 1000;     // churn slots are reused once closed
    const c0: Correctness = { gaps: 0, duplicates: 0, missing: 0, unacked: 0, dupAcks: 0, earlyMsgs: 0, disconnects: 0, failedConnects: 0, otherFailures: 0, ok: true, notes: [], examples: [] };
    const joinH = newHist();
    const state = new Uint8Array(maxConns);        // 0 free, 1 connecting, 2 joining, 3 live, 4 closing
    const tStart = new Float64Array(maxConns), tJoin = new Float64Array(maxConns), nextSeq = new Float64Array(maxConns).fill(-1);
    const roomLast = new Float64Array(o.rooms);
    const free: number[] = [];
    for (let c = maxConns - 1; c >= A; c--) free.push(c);
    let live = 0, connects = 0, wConnects = 0, closes = 0, acked = 0, sent = 0, stopping = false;
    const meter: Meter = new Meter(env.sampler, `storm/${env.serverLabel}`, () => live);
    const roomOf = (c: number): number => c % o.rooms;
    let anchorsUp = 0, wakeAnchors: () => void = () => {};

    const sink: Sink = {
      opened(c) {
        const now = nowUs();
        if (tStart[c] >= meter.from && tStart[c] < meter.to) record(meter.connect, now - tStart[c]);
        connects++;
        if (now >= meter.from && now < meter.to) wConnects++;
        state[c] = 2; tJoin[c] = now;
        transport.join(c, roomOf(c), 0);
      },
      closed(c, code) {
        if (state[c] === 4 || stopping) { state[c] = 0; if (c >= A) free.push(c); return; }
        if (state[c] === 1) c0.failedConnects++; else c0.disconnects++;
        meter.error(`${state[c] === 1 ? 'connect' : 'closed'}_${code}`);
        if (state[c] === 3) live--;
        state[c] = 0;
        if (c >= A) free.push(c);
      },
      joined(c, room, seq) {
        if (tJoin[c] >= meter.from && tJoin[c] < meter.to) record(joinH, nowUs() - tJoin[c]);
        nextSeq[c] = seq + 1;
        if (seq > roomLast[room]) roomLast[room] = seq;
        state[c] = 3; live++;
        if (c < A) { anchorsUp++; wakeAnchors(); }
        else setTimeout(() => { if (state[c] === 3) { state[c] = 4; live--; closes++; transport.close(c); } }, (holdUs * (0.5 + Math.random())) / 1000);
      },
      ack(_c, room, seq, _k, tUs) { acked++; meter.onAck(nowUs(), tUs); if (seq > roomLast[room]) roomLast[room] = seq; },
      msg(c, room, seq, k, tUs) {
        if (k >= 0 && c < A) meter.onDelivery(nowUs(), tUs);
        const nx = nextSeq[c];
        if (nx < 0) c0.earlyMsgs++;
        else if (seq === nx) nextSeq[c] = nx + 1;
        else if (seq < nx) c0.duplicates++;
        else { c0.gaps += seq - nx; nextSeq[c] = seq + 1; }
        if (room >= 0 && seq > roomLast[room]) roomLast[room] = seq;
      },
      refused(_c, code) { meter.error(code); },
    };
    const transport = env.transport(sink);
    for (let c = 0; c < A; c++) { state[c] = 1; tStart[c] = nowUs(); transport.connect(c, `anchor${c}`); }
    await new Promise<void>((resolve) => { const t = setTimeout(resolve, 30_000); wakeAnchors = () => { if (anchorsUp >= A) { clearTimeout(t); resolve(); } }; wakeAnchors(); });
    process.stderr.write(`[storm/${env.serverLabel}] ${anchorsUp}/${A} anchors in ${o.rooms} rooms; offering ${o.rate} connects/s, hold ~${(holdUs / 1e6).toFixed(1)} s, for ${o.warmupS}+${o.durationS} s\n`);

    const t0 = nowUs() + 2000;
    meter.from = t0 + o.warmupS * 1e6;
    meter.to = meter.from + o.durationS * 1e6;
    const perUs = o.rate / 1e6, msgPerUs = A / 1e6;  // each anchor sends 1 msg/s
    const total = Math.ceil(o.rate * (o.warmupS + o.durationS)), mTotal = Math.ceil(A * (o.warmupS + o.durationS));
    let k = 0, m = 0, user = 0;
    meter.start();
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = nowUs();
        const due = now < t0 ? 0 : Math.min(total, Math.floor((now - t0) * perUs) + 1);
        for (; k < due; k++) {
          const c = free.pop();
          if (c === undefined) { meter.error('no_free_slot'); continue; }
          state[c] = 1; nextSeq[c] = -1; tStart[c] = Math.floor(t0 + k / perUs);
          transport.connect(c, `churn${user++ % (o.clients * 4)}`);
        }
        const mDue = now < t0 ? 0 : Math.min(mTotal, Math.floor((now - t0) * msgPerUs) + 1);
        for (; m < mDue; m++) {
          const c = m % A, t = Math.floor(t0 + m / msgPerUs);
          if (state[c] !== 3) { meter.error('anchor_not_live'); continue; }
          sent++; meter.onSent(now, t);
          transport.send(c, roomOf(c), m, t);
        }
        if (k >= total && m >= mTotal) { clearInterval(timer); resolve(); }
      }, 1);
    });
    const caughtUp = (): boolean => { if (acked < sent) return false; for (let c = 0; c < A; c++) if (nextSeq[c] - 1 < roomLast[roomOf(c)]) return false; return true; };
    const drainEnd = performance.now() + o.drainS * 1000;
    while (!caughtUp() && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 50));
    meter.stop();
    stopping = true;
    c0.unacked = sent - acked;
    for (let c = 0; c < A; c++) c0.missing += Math.max(0, roomLast[roomOf(c)] - (nextSeq[c] - 1));
    c0.missing += c0.gaps;
    c0.ok = c0.gaps + c0.duplicates + c0.missing + c0.unacked + c0.earlyMsgs + c0.disconnects + c0.failedConnects + c0.otherFailures === 0;
    for (let c = 0; c < maxConns; c++) if (state[c] !== 0) transport.close(c);
    await new Promise((r) => setTimeout(r, 300));
    transport.destroyAll();
    const achieved = wConnects / o.durationS;
    const res: RunResult = {
      scenario: 'storm', server: env.serverLabel, url: env.url, transport: transport.kind, startedAt,
      params: { openTarget: o.clients, rooms: o.rooms, anchors: A, rate: o.rate, durationS: o.durationS, warmupS: o.warmupS },
      offeredRate: o.rate, sentRate: round1(meter.wSent / o.durationS), achievedRate: round1(achieved),
      acksPerS: round1(meter.wAcks / o.durationS), deliveriesPerS: round1(meter.wDeliveries / o.durationS),
      latency: meter.latency(), curves: meter.curves(), errors: meter.errorsObject(), resources: meter.resources(),
      correctness: c0, timeline: meter.timeline, sustainable: false, verdict: '',
      extra: { connectsPerS: round1(achieved), closes, join: summarize(joinH) },
    };
    const fails: string[] = [];
    if (!c0.ok) fails.push('correctness errors');
    if (achieved < 0.95 * o.rate) fails.push(`connects ${achieved.toFixed(0)}/s < 95% of ${o.rate}/s`);
    if (res.latency.connect.p99 > 100) fails.push(`connect p99 ${res.latency.connect.p99} ms > 100 ms`);
    res.sustainable = fails.length === 0;
    res.verdict = fails.length ? fails.join('; ') : 'sustained';
    return res;
  },
};
