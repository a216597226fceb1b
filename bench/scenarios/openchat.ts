// openchat: the open-chat team's load test. Each virtual user (VU) connects, joins its room, sends,
// waits for the ack, then reads the latest 50 over HTTP and checks the message it just got acked is
// there; it reconnects its WebSocket every 20 iterations. Iterations arrive at a fixed rate (open
// loop: a late start counts against the iteration's latency); reported as that team's tables do:
// TPS, success rate, HTTP p95 and WebSocket connect p95.
import { Meter, nowUs, openLoop, type Correctness, type RunResult } from '../lib/stats.ts';
import { newHist, record, summarize } from '../lib/hist.ts';
import { HttpConn } from '../lib/httpclient.ts';
import { sourceAddress } from '../lib/wsclient.ts';
import { roomName, type Sink } from '../lib/transport.ts';
import { round1 } from '../lib/roomload.ts';
import type { Scenario } from './types.ts';

const RECONNECT_EVERY = 20;
const ITERATION_TIMEOUT_US = 10_000_000;
const IDLE = 0, CONNECTING = 1, JOINING = 2, SENDING = 3, READING = 4;

export const openchat: Scenario = {
  name: 'openchat',
  summary: 'VUs: connect, join, send, wait for ack, GET latest 50 over HTTP (must contain the acked id); reconnect every 20 iterations',
  defaults: { clients: 400, rooms: 100, rate: 4760, durationS: 15, warmupS: 3, drainS: 5, findMaxStart: 2000 },
  rated: true,
  async run(o, env) {
    const V = o.clients;
    const startedAt = new Date().toISOString();
    const http = newHist(), iter = newHist();
    const c0: Correctness = { gaps: 0, duplicates: 0, missing: 0, unacked: 0, dupAcks: 0, earlyMsgs: 0, disconnects: 0, failedConnects: 0, otherFailures: 0, ok: true, notes: [], examples: [] };
    const phase = new Uint8Array(V), connected = new Uint8Array(V);
    const iterOnConn = new Int32Array(V), nextSeq = new Float64Array(V).fill(-1);
    const curK = new Float64Array(V).fill(-1), intended = new Float64Array(V), tStep = new Float64Array(V);
    const ackedId: string[] = new Array<string>(V).fill('');
    const https = Array.from({ length: V }, (_, v) => new HttpConn(new URL(env.httpBase).hostname, Number(new URL(env.httpBase).port), sourceAddress(v, new URL(env.httpBase).hostname)));
    // idle VUs in a FIFO ring, so every VU takes turns (all V stay connected, as real users would)
    const ring = Int32Array.from({ length: V }, (_, v) => v);
    let ringHead = 0, ringLen = V;
    const qK: number[] = [], qT: number[] = [];
    let qHead = 0, busy = 0, started = 0, done = 0, ok = 0, wDone = 0, wOk = 0, readMisses = 0, dropped = 0, reconnects = 0, stopping = false;
    let meter: Meter;
    const roomOf = (v: number): number => v % o.rooms;
    const paths = Array.from({ length: o.rooms }, (_, r) => `/api/rooms/${encodeURIComponent(roomName(env.prefix, r))}/messages?limit=50`);

    const finish = (v: number, success: boolean, why?: string): void => {
      const now = nowUs();
      done++;
      const inWin = now >= meter.from && now < meter.to;
      if (inWin) wDone++;
      if (success) { ok++; if (inWin) wOk++; } else meter.error(why ?? 'failed');
      if (intended[v] >= meter.from && intended[v] < meter.to) record(iter, now - intended[v]);
      phase[v] = IDLE; curK[v] = -1; busy--;
      ring[(ringHead + ringLen++) % V] = v;
      dispatch();
    };
    const doSend = (v: number): void => {
      phase[v] = SENDING;
      tStep[v] = nowUs();
      transport.send(v, roomOf(v), curK[v], tStep[v]);
    };
    const start = (v: number, k: number, t: number): void => {
      busy++; started++;
      curK[v] = k; intended[v] = t;
      if (connected[v] && iterOnConn[v] >= RECONNECT_EVERY) { connected[v] = 0; reconnects++; transport.close(v); }
      if (!connected[v]) { phase[v] = CONNECTING; tStep[v] = nowUs(); iterOnConn[v] = 0; nextSeq[v] = -1; transport.connect(v, `vu${v}`); }
      else doSend(v);
    };
    function dispatch(): void {
      while (qHead < qK.length && ringLen > 0) { const v = ring[ringHead]; ringHead = (ringHead + 1) % V; ringLen--; start(v, qK[qHead], qT[qHead]); qHead++; }
      if (qHead > 4096 && qHead * 2 > qK.length) { qK.splice(0, qHead); qT.splice(0, qHead); qHead = 0; }
    }

    const sink: Sink = {
      opened(v) {
        record(meter.connect, nowUs() - tStep[v]);
        connected[v] = 1;
        if (phase[v] === CONNECTING) { phase[v] = JOINING; transport.join(v, roomOf(v), 0); }
      },
      closed(v, code) {
        const was = phase[v];
        connected[v] = 0;
        if (stopping) return;
        if (was === CONNECTING) { c0.failedConnects++; finish(v, false, `connect_${code}`); }
        else if (was !== IDLE) { c0.disconnects++; finish(v, false, `closed_${code}`); }
      },
      joined(v, _room, seq) {
        nextSeq[v] = seq + 1;
        if (phase[v] === JOINING) doSend(v);
      },
      ack(v, _room, _seq, k, tUs, id) {
        if (phase[v] !== SENDING || k !== curK[v]) { c0.otherFailures++; meter.error('stray_ack'); return; }
        meter.onAck(nowUs(), tUs);
        ackedId[v] = id;
        phase[v] = READING;
        tStep[v] = nowUs();
        https[v].get(paths[roomOf(v)], (status, body, err) => {
          const now = nowUs();
          if (tStep[v] >= meter.from && tStep[v] < meter.to) record(http, now - tStep[v]);
          if (err || status !== 200) { finish(v, false, err ?? `http_${status}`); return; }
          iterOnConn[v]++;
          if (body.includes('"id":"' + ackedId[v] + '"')) finish(v, true);
          else { readMisses++; finish(v, false, 'read_missing_acked_message'); }
        });
      },
      msg(v, _room, seq, k, tUs) {
        if (k >= 0) meter.onDelivery(nowUs(), tUs);
        const nx = nextSeq[v];
        if (nx < 0) c0.earlyMsgs++;
        else if (seq === nx) nextSeq[v] = nx + 1;
        else if (seq < nx) c0.duplicates++;
        else { c0.gaps += seq - nx; nextSeq[v] = seq + 1; }
      },
      refused(v, code, k) {
        meter.error(code);
        if (k >= 0 && k === curK[v] && phase[v] === SENDING) { phase[v] = IDLE; finish(v, false, 'refused_' + code); }
      },
    };
    const transport = env.transport(sink);
    meter = new Meter(env.sampler, `openchat/${env.serverLabel}`, () => busy);
    const total = Math.ceil(o.rate * (o.warmupS + o.durationS));
    const t0 = nowUs() + 2000;
    meter.from = t0 + o.warmupS * 1e6;
    meter.to = meter.from + o.durationS * 1e6;
    process.stderr.write(`[openchat/${env.serverLabel}] ${V} VUs, ${o.rooms} rooms; offering ${o.rate} iterations/s for ${o.warmupS}+${o.durationS} s\n`);
    meter.start();
    await openLoop(o.rate, total, t0, (k, t, now) => {
      if (qK.length - qHead > o.rate * 5) { dropped++; meter.error('dropped_iteration_queue_full'); return; }
      qK.push(k); qT.push(t);
      meter.onSent(now, t);
    }, (now) => {
      dispatch();
      for (let v = 0; v < V; v++) if (phase[v] !== IDLE && now - intended[v] > ITERATION_TIMEOUT_US && now - tStep[v] > ITERATION_TIMEOUT_US) finish(v, false, 'iteration_timeout');
    });
    const drainEnd = performance.now() + o.drainS * 1000;
    while ((busy > 0 || qHead < qK.length) && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 50));
    meter.stop();
    stopping = true;
    for (let v = 0; v < V; v++) if (phase[v] === SENDING) c0.unacked++;
    const notStarted = qK.length - qHead;
    if (notStarted > 0) c0.notes.push(`${notStarted} scheduled iterations never started`);
    c0.otherFailures += readMisses;
    if (readMisses) c0.notes.push(`${readMisses} reads did not contain the message just acked`);
    c0.ok = c0.gaps + c0.duplicates + c0.unacked + c0.earlyMsgs + c0.disconnects + c0.failedConnects + c0.otherFailures === 0;
    for (let v = 0; v < V; v++) { transport.close(v); https[v].close(); }
    await new Promise((r) => setTimeout(r, 300));
    transport.destroyAll();

    const httpS = summarize(http), iterS = summarize(iter), conS = summarize(meter.connect);
    const successRate = wDone ? wOk / wDone : 0;
    const tps = wOk / o.durationS;
    const res: RunResult = {
      scenario: 'openchat', server: env.serverLabel, url: env.url, transport: transport.kind, startedAt,
      params: { vus: V, rooms: o.rooms, rate: o.rate, durationS: o.durationS, warmupS: o.warmupS, reconnectEvery: RECONNECT_EVERY },
      offeredRate: o.rate, sentRate: round1(meter.wSent / o.durationS), achievedRate: round1(tps),
      acksPerS: round1(meter.wAcks / o.durationS), deliveriesPerS: round1(meter.wDeliveries / o.durationS),
      latency: meter.latency(), curves: meter.curves(), errors: meter.errorsObject(), resources: meter.resources(),
      correctness: c0, timeline: meter.timeline, sustainable: false, verdict: '',
      extra: {
        tps: round1(tps), successRate: `${(successRate * 100).toFixed(2)}%`, httpP95Ms: httpS.p95, wsConnectP95Ms: conS.p95,
        iterationP50Ms: iterS.p50, iterationP95Ms: iterS.p95, iterationP99Ms: iterS.p99, httpP99Ms: httpS.p99,
        iterations: started, completed: done, reconnects, dropped, readMisses,
      },
    };
    const fails: string[] = [];
    if (!c0.ok) fails.push('correctness errors');
    if (tps < 0.95 * o.rate) fails.push(`TPS ${tps.toFixed(0)} < 95% of ${o.rate}`);
    if (successRate < 1) fails.push(`success ${(successRate * 100).toFixed(2)}% < 100%`);
    if (httpS.p95 > 50) fails.push(`HTTP p95 ${httpS.p95} ms > 50 ms`);
    res.sustainable = fails.length === 0;
    res.verdict = fails.length ? fails.join('; ') : 'sustained (100% success, HTTP p95 <= 50 ms)';
    return res;
  },
};
