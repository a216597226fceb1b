// idle: memory per idle connection. N clients (default 10,000) connect and join one room, then
// stay silent; the server's RSS before the first connect and once all have joined, divided by N.
// Both readings wait 30 s (--warmup, --duration) for the server to settle: a reading 2 s after the
// start still holds the start-up's garbage (about 50 MB in the engine), one 3 s after the connects
// the connects' garbage, and either moves the figure by more than the connections themselves.
// The engine (spawned with CHAT_TEST_HOOKS=1) then collects every thread's heap in full
// (POST /_test/gc) and each reading is taken after that collection: what is left is what the
// connections hold, not where V8's collector happened to be. A server without the hook (a peer)
// is read after the wait alone; the waited reading of the engine is reported beside it.
// The spawned engine runs with CHAT_ENTER_QUIT=off: 10,000 ENTER messages to a room of up to
// 10,000 members would measure a fan-out storm, not idle connections.
import { newHist, summarize } from '../lib/hist.ts';
import { collectedRssMb } from '../lib/collected.ts';
import { round1, type RunEnv } from '../lib/roomload.ts';
import { fetchMetrics, metricValue } from '../lib/metrics.ts';
import { Meter, nowUs, type Correctness, type RunResult } from '../lib/stats.ts';
import type { Sink } from '../lib/transport.ts';
import type { Scenario } from './types.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The engine's JS heap in use (its /metrics), to split RSS into heap and native; NaN for servers without it. */
async function heapUsedMb(httpBase: string): Promise<number> {
  try {
    return metricValue(await fetchMetrics(httpBase), 'nodejs_heap_size_used_bytes') / 1048576;
  } catch {
    return NaN;
  }
}
/** The server's RSS (MB) after the wait, and after a full collection when the server has the hook. */
async function reading(env: RunEnv): Promise<{ waited: number; collected: number | null }> {
  env.sampler.sample();
  const waited = env.sampler.sample().serverRssMb;
  return { waited, collected: await collectedRssMb(env.httpBase) };
}

/** Connects in flight at once. */
const WAVE = 500;

export const idle: Scenario = {
  name: 'idle',
  summary: '10,000 connections join one room and stay silent: server RSS per connection',
  defaults: { clients: 10_000, rooms: 1, rate: 0, durationS: 30, warmupS: 30, drainS: 0, findMaxStart: 0 },
  rated: false,
  serverEnv: { CHAT_ENTER_QUIT: 'off', CHAT_TEST_HOOKS: '1' },
  async run(o, env) {
    const startedAt = new Date().toISOString();
    const c0: Correctness = { gaps: 0, duplicates: 0, missing: 0, unacked: 0, dupAcks: 0, earlyMsgs: 0, disconnects: 0, failedConnects: 0, otherFailures: 0, ok: true, notes: [], examples: [] };
    const meter = new Meter(env.sampler, `idle/${env.serverLabel}`, () => 0);
    const connectStart = new Float64Array(o.clients);
    let opened = 0, joined = 0, closing = false;
    const sink: Sink = {
      opened(c) { meter.connect.recordValue(Math.max(1, nowUs() - connectStart[c])); opened++; transport.join(c, 0, 0); },
      closed(_c, code) { if (closing) return; c0.disconnects++; meter.error(`closed_${code}`); },
      joined() { joined++; },
      ack() {}, msg() {},
      refused(_c, code) { meter.error(code); c0.otherFailures++; },
    };
    const transport = env.transport(sink);
    await sleep(o.warmupS * 1000); // the server settles after its start (its start-up garbage collected)
    const heapBefore = await heapUsedMb(env.httpBase);
    const r0 = await reading(env);
    const t0 = performance.now();
    for (let c = 0; c < o.clients; c++) {
      while (c - opened - c0.disconnects >= WAVE) await sleep(5);
      connectStart[c] = nowUs();
      transport.connect(c, `idle${c}`);
    }
    const by = performance.now() + 60_000;
    while (joined + c0.disconnects + c0.otherFailures < o.clients && performance.now() < by) await sleep(50);
    const connectS = (performance.now() - t0) / 1000;
    await sleep(o.durationS * 1000);
    const heapAfter = await heapUsedMb(env.httpBase);
    const r1 = await reading(env);
    const collected = r0.collected !== null && r1.collected !== null;
    const before = collected ? r0.collected! : r0.waited;
    const after = collected ? r1.collected! : r1.waited;
    c0.failedConnects = o.clients - opened;
    c0.ok = joined === o.clients && c0.disconnects === 0 && c0.otherFailures === 0;
    closing = true;
    for (let c = 0; c < o.clients; c++) transport.close(c);
    await sleep(300);
    transport.destroyAll();
    const perConnKb = ((after - before) * 1024) / o.clients;
    const waitedKb = ((r1.waited - r0.waited) * 1024) / o.clients;
    const res: RunResult = {
      scenario: 'idle', server: env.serverLabel, url: env.url, transport: transport.kind, startedAt,
      params: { clients: o.clients, rooms: 1 },
      offeredRate: 0, sentRate: 0, achievedRate: 0, acksPerS: 0, deliveriesPerS: 0,
      latency: { ack: summarize(newHist()), delivery: summarize(newHist()), connect: summarize(meter.connect) },
      curves: meter.curves(), errors: meter.errorsObject(), resources: meter.resources(), correctness: c0, timeline: meter.timeline,
      sustainable: c0.ok,
      verdict: c0.ok ? `${joined} idle connections in one room: RSS ${round1(before)} -> ${round1(after)} MB = ${perConnKb.toFixed(2)} KB per connection${collected ? ' (after full collections)' : ''}` : `${joined}/${o.clients} joined, ${c0.disconnects} closed`,
      extra: { rssBeforeMb: round1(before), rssAfterMb: round1(after), rssPerConnectionKb: Math.round(perConnKb * 100) / 100, afterFullGc: collected,
        ...(collected ? { rssWaitedBeforeMb: round1(r0.waited), rssWaitedAfterMb: round1(r1.waited), rssWaitedPerConnectionKb: Math.round(waitedKb * 100) / 100 } : {}),
        ...(Number.isNaN(heapBefore) ? {} : { heapUsedBeforeMb: round1(heapBefore), heapUsedAfterMb: round1(heapAfter), heapPerConnectionKb: Math.round(((heapAfter - heapBefore) * 1024) / o.clients * 100) / 100 }), connectSeconds: round1(connectS) },
    };
    return res;
  },
};
