// abuse: the chat load (1,000 honest clients, 100 rooms of 10, 5,000 msgs/s) while hostile clients
// flood the engine from a worker thread of the generator (bench/lib/floods.ts): oversized and
// control-character texts, join/leave loops and deep `since` joins on the honest rooms, history and
// typing floods, frames over the payload cap, a connection flood from one address, STOMP sockets
// that never authenticate, and the HTTP API. Reported: the honest clients' ack and delivery p99 and
// correctness, the engine's RSS peak, every flood's outcomes (accepted, refused by code, closed by
// code), the engine's refusal counters, the generator's CPU and the flood thread's share of it, and
// whether the engine still answers /healthz. Targets: RSS peak < 1 GB, honest ack p99 < 100 ms,
// zero correctness errors, engine alive.
import { Worker } from 'node:worker_threads';
import { runRoomLoad } from '../lib/roomload.ts';
import { parseWsUrl } from '../lib/wsclient.ts';
import { fetchMetrics, metricByLabel } from '../lib/metrics.ts';
import type { FloodInput, FloodOutput } from '../lib/floods.ts';
import type { Scenario } from './types.ts';

const RSS_TARGET_MB = 1024;

/** chat_frames_refused_total by code. */
async function refusals(httpBase: string): Promise<Record<string, number>> {
  return metricByLabel(await fetchMetrics(httpBase), 'chat_frames_refused_total', 'code');
}

async function alive(httpBase: string): Promise<string> {
  try {
    const r = await fetch(`${httpBase}/healthz`, { signal: AbortSignal.timeout(5000) });
    return r.status === 200 ? 'alive' : `healthz ${r.status}`;
  } catch (e) {
    return `no answer (${(e as Error).message})`;
  }
}

export const abuse: Scenario = {
  name: 'abuse',
  summary: 'chat at 5,000 msgs/s for 1,000 honest clients while hostile clients flood every limit',
  defaults: { clients: 1000, rooms: 100, rate: 5000, durationS: 20, warmupS: 3, drainS: 5, findMaxStart: 2500 },
  rated: false,
  // the engine as deployed: its default limits on (the harness turns the send limit off elsewhere)
  serverEnv: { CHAT_SEND_RATE: undefined, CHAT_SEND_BYTES_RATE: undefined, CHAT_ADDRESS_BYTES_RATE: undefined },
  async run(o, env) {
    if (env.servers !== 1 || !env.url.startsWith('ws://')) throw new Error('abuse runs against one engine (ws://)');
    const before = await refusals(env.httpBase);
    // BENCH_FLOODS=text,joinleave runs only those floods (to find which one hurts);
    // BENCH_FLOOD_SCALE=2 doubles every flood's rate
    const only = process.env.BENCH_FLOODS ? process.env.BENCH_FLOODS.split(',') : undefined;
    const scale = Number(process.env.BENCH_FLOOD_SCALE ?? '1');
    if (!(scale > 0)) throw new Error(`BENCH_FLOOD_SCALE must be a positive number, not ${process.env.BENCH_FLOOD_SCALE}`);
    const input: FloodInput = { target: parseWsUrl(env.url), prefix: env.prefix, rooms: o.rooms, only, scale };
    // worker threads do not inherit tsx's loader from `--import tsx`: register it in the thread first
    const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => { t.register(); return import(${JSON.stringify(new URL('../lib/floods.ts', import.meta.url).href)}); })`;
    const floods = new Worker(boot, { eval: true, workerData: input });
    const floodsDone = new Promise<FloodOutput>((resolve, reject) => {
      floods.once('message', resolve);
      floods.once('error', reject);
    });
    let r;
    try {
      r = await runRoomLoad({
        scenario: 'abuse', clients: o.clients, rooms: o.rooms, rate: o.rate, durationS: o.durationS, warmupS: o.warmupS, drainS: o.drainS,
        membership: (c) => [c % o.rooms],
        senders: Array.from({ length: o.clients }, (_, c) => [c, c % o.rooms] as [number, number]),
        connectConcurrency: 256, p99LimitMs: o.p99LimitMs,
      }, env);
    } finally {
      floods.postMessage('stop');
    }
    const out = await floodsDone;
    await floods.terminate();
    const health = await alive(env.httpBase);
    const after = await refusals(env.httpBase).catch(() => ({} as Record<string, number>));
    const refused: Record<string, number> = {};
    for (const [code, n] of Object.entries(after)) if (n - (before[code] ?? 0) > 0) refused[code] = n - (before[code] ?? 0);

    const rss = r.resources.serverRssMaxMb;
    const misses: string[] = [];
    if (health !== 'alive') misses.push(`engine ${health}`);
    if (!(rss < RSS_TARGET_MB)) misses.push(`RSS peak ${rss} MB >= ${RSS_TARGET_MB} MB`);
    if (!r.sustainable) misses.push(`honest load: ${r.verdict}`);
    r.sustainable = misses.length === 0;
    r.verdict = misses.length ? misses.join('; ') : `sustained beside the floods (RSS peak ${rss} MB, engine alive)`;
    r.extra = { ...r.extra, engine: health, floodThreadBusy: Math.round(out.elu * 100) / 100, floods: out.counts, refusedByCode: refused };
    for (const [name, f] of Object.entries(out.counts)) {
      const outcomes = Object.entries(f.outcomes).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
      process.stderr.write(`[abuse] ${name} (${f.what}): sent ${f.sent}; ${outcomes}\n`);
    }
    process.stderr.write(`[abuse] engine refusals by code: ${JSON.stringify(refused)}; flood thread busy ${Math.round(out.elu * 100)}% of its time; engine ${health}\n`);
    return r;
  },
};
