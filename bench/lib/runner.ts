// Runs a scenario against one server (spawned or --url), a --find-max rate search, or `compare`.
import { startServer, pinSelf, waitQuiet, ProcSampler, SERVER_KINDS, tcpCounters, type ServerKind, type RunningServer } from './proc.ts';
import { RawTransport, SocketIoTransport, SioLeanTransport, StompTransport, SpreadTransport, type Transport } from './transport.ts';
import { startNodes, counterDelta, type NodeCounters } from './cluster.ts';
import { Teardown } from './teardown.ts';
import { fetchMetrics, metricValue } from './metrics.ts';
import { profileReport } from './profile.ts';
import { wsGenerate, type WsGenResult } from './ws-generator.ts';
import type { SendOrder } from './room-order.ts';
import { prefillTemplate } from './prefill.ts';
import { parseWsUrl } from './wsclient.ts';
import { SLOW_MS, webhookTarget, type WebhookVariant } from './webhook.ts';
import type { RunEnv } from './roomload.ts';
import type { RunResult } from './stats.ts';
import type { RunOptions, Scenario } from '../scenarios/types.ts';
import { SCENARIOS } from '../scenarios/index.ts';
import { textReport, writeReports, hardErrors, correctnessLine } from '../report.ts';

export interface CliOptions {
  scenario: string;
  /** --url: one server, or several (the nodes of a cluster: clients spread round-robin). */
  urls?: string[];
  server: ServerKind;
  /** --nodes N: spawn N engine nodes on a fresh MariaDB database (N >= 2: cluster mode over Redis). */
  nodes?: number;
  mysqlUrl: string;
  redisUrl: string;
  rate?: number; durationS?: number; warmupS?: number; drainS?: number; clients?: number; rooms?: number;
  json: boolean; out?: string; pin: boolean; parallelGc: boolean; findMax: boolean; profile: boolean;
  /** --pid: the server's processes (summed), with --url. */
  pids: number[]; p99LimitMs: number;
  compare: boolean;
  /** --prefill N: every spawned engine starts on a SQLite store holding N messages (0 = empty). */
  prefill: number;
  /** crosscheck: the same load from the harness and from the independent `ws` generator, each on a fresh server. */
  crosscheck: boolean;
  /** Socket.IO peer: lean = our raw client speaking its wire format; official = socket.io-client. */
  sioClient: 'lean' | 'official';
  /** Before each run, wait (up to 60 s) until other processes use < 20% of a core. */
  waitQuiet: boolean;
  /** Wire protocol of the lean client: native (PROTOCOL.md JSON) or stomp (the engine's STOMP 1.2). */
  proto: 'native' | 'stomp';
  /** --webhook: run with these webhook receivers, one after another (engine only). */
  webhook?: WebhookVariant[];
}

/** Scenarios that --proto stomp drives (the open-loop room load). */
export const STOMP_SCENARIOS = ['chat', 'direct', 'fanout', 'soak'];

interface ServerOutcome {
  server: string; runs: RunResult[]; best?: RunResult; fatal: string[];
  /** --find-max: rates that failed below the highest sustained one. */
  failedBelow?: number[];
}

/** --find-max goes on this many x1.3 steps past a failure before it stops looking higher. */
const LOOK_PAST = 2;

const log = (s: string): void => { process.stderr.write(s + '\n'); };
/** Two significant digits: find-max steps land on readable rates. */
const nice = (v: number): number => { const p = Math.pow(10, Math.max(0, Math.floor(Math.log10(v)) - 1)); return Math.max(1, Math.round(v / p) * p); };

function makeEnv(kind: string, urls: string[], sampler: ProcSampler, step: number, sioClient: 'lean' | 'official', proto: 'native' | 'stomp'): RunEnv {
  const prefix = `b${Date.now().toString(36)}${step}.`;
  const url = urls[0];
  if (url.startsWith('http://')) {
    const u = new URL(url);
    const host = u.hostname;
    if (!host.startsWith('127.')) throw new Error(`load tests target loopback only, not ${host}`);
    return { serverLabel: kind, url, httpBase: url.replace(/\/$/, ''), prefix, sampler, servers: 1, serverName: () => '', transport: (sink) => sioClient === 'official' ? new SocketIoTransport(host, Number(u.port), prefix, sink) : new SioLeanTransport(host, Number(u.port), prefix, sink) };
  }
  const targets = urls.map(parseWsUrl);
  const t = targets[0];
  const one = (target: typeof t, sink: Parameters<RunEnv['transport']>[0]): Transport => proto === 'stomp' ? new StompTransport(target, prefix, sink) : new RawTransport(target, prefix, sink);
  return {
    // HTTP reads (STOMP start seqs, openchat, history) go to the first server: in a cluster every node reads the one database
    serverLabel: kind, url: urls.join(','), httpBase: `http://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`, prefix, sampler,
    servers: targets.length,
    transport: (sink, nodeOf = (c) => c % targets.length) => targets.length === 1 ? one(t, sink) : new SpreadTransport(targets.map((x) => one(x, sink)), nodeOf),
    serverName: (i) => (urls.length === 1 ? '' : ` (node ${i + 1}, ${urls[i]})`),
  };
}

/** A run's correctness failure that no overload explains (fatal even in a find-max step that fails). */
function fatalOf(r: RunResult, searching: boolean, p99Limit: number): string | undefined {
  if (r.correctness.ok) return undefined;
  const overloaded = r.achievedRate < 0.95 * r.offeredRate || r.latency.ack.p99 > p99Limit;
  if (hardErrors(r) === 0 && searching && overloaded) return undefined; // a server past its limit may leave sends unacked or close slow consumers
  return `${r.server} ${r.scenario} @${r.offeredRate}/s: ${correctnessLine(r)}`;
}

/** A server started for one step (a fresh process and store), stopped with `done` after it. */
interface StepServer { urls: string[]; pids: number[]; done(r: RunResult): Promise<void> }

async function runAgainst(kind: string, urls: string[], pids: number[], backendPids: number[], sc: Scenario, o: CliOptions, base: RunOptions,
  counters?: () => Promise<NodeCounters>, fresh?: () => Promise<StepServer>): Promise<ServerOutcome> {
  const shared = new ProcSampler(pids, backendPids);
  const out: ServerOutcome = { server: kind, runs: [], fatal: [] };
  let step = 0;
  const one = async (rate: number, searching: boolean): Promise<RunResult> => {
    let r: RunResult;
    for (let attempt = 0; ; attempt++) {
      if (o.waitQuiet) await waitQuiet();
      // every step on a fresh server and store when we spawn it: a step never inherits the previous
      // steps' database (grown, its cache warm) nor a server still digesting their backlog
      const srv = fresh ? await fresh() : undefined;
      const sampler = srv ? new ProcSampler(srv.pids, backendPids) : shared;
      const before = counters ? await counters() : undefined;
      const tcp0 = tcpCounters();
      try {
        r = await sc.run({ ...base, rate }, makeEnv(kind, srv ? srv.urls : urls, sampler, step++, o.sioClient, o.proto));
      } finally {
        if (srv) await srv.done(r!);
      }
      const tcp1 = tcpCounters();
      if (tcp0 !== null && tcp1 !== null) {
        r.extra = { ...r.extra, tcp: { retransSegs: tcp1.retransSegs - tcp0.retransSegs, lossProbes: tcp1.lossProbes - tcp0.lossProbes, dsackRecv: tcp1.dsackRecv - tcp0.dsackRecv } };
      }
      if (counters && before) r.extra = { ...r.extra, nodeCounters: counterDelta(before, await counters()) };
      out.runs.push(r);
      if (!o.json) process.stdout.write(textReport(r) + '\n');
      // a failed step during which other processes, or the hypervisor (steal), took a core's quarter
      // or more says nothing: retry it (twice at most). Softirq is the run's own loopback traffic.
      const disturbed = Math.max(r.resources.otherCpuMax, Number.isNaN(r.resources.stealCpuMax) ? 0 : r.resources.stealCpuMax);
      if (r.sustainable || disturbed < 25 || attempt >= 2 || !o.waitQuiet) break;
      log(`[bench] ${kind} @${rate}/s failed while other processes or the hypervisor took up to ${disturbed}% of a core: retrying`);
    }
    const f = fatalOf(r, searching, o.p99LimitMs);
    if (f) out.fatal.push(f);
    return r;
  };
  if (!o.findMax || !sc.rated) {
    out.best = await one(base.rate, false);
    return out;
  }
  // --find-max: x1.3 until a step fails and the LOOK_PAST steps above it fail too (a saturated
  // server's latency is not monotonic in the rate: a higher rate packs more frames into each write
  // and can pass where a lower one failed), then two bisection steps between the highest pass and
  // the lowest failure above it. Failures below the highest pass are reported, not hidden.
  let rate = o.rate ?? sc.defaults.findMaxStart;
  let lo: RunResult | undefined;
  const steps: { rate: number; ok: boolean }[] = [];
  for (let i = 0, fails = 0; i < 16; i++) {
    const r = await one(rate, true);
    steps.push({ rate, ok: r.sustainable });
    if (out.fatal.length) break;
    if (r.sustainable) { lo = r; fails = 0; rate = nice(rate * 1.3); continue; }
    if (lo === undefined && i < 3) { rate = nice(rate / 2); continue; }
    if (lo === undefined || ++fails > LOOK_PAST) break;
    rate = nice(rate * 1.3);
  }
  const failedAbove = (): number | undefined => {
    const above = steps.filter((s) => !s.ok && lo !== undefined && s.rate > lo.offeredRate).map((s) => s.rate);
    return above.length ? Math.min(...above) : undefined;
  };
  let hi = failedAbove();
  for (let i = 0; i < 2 && lo && hi && (hi - lo.offeredRate) / hi > 0.08 && !out.fatal.length; i++) {
    const mid = nice((lo.offeredRate + hi) / 2);
    if (mid <= lo.offeredRate || mid >= hi) break;
    const r = await one(mid, true);
    steps.push({ rate: mid, ok: r.sustainable });
    if (r.sustainable) lo = r;
    hi = failedAbove();
  }
  out.best = lo;
  out.failedBelow = steps.filter((s) => !s.ok && lo !== undefined && s.rate < lo.offeredRate).map((s) => s.rate).sort((a, b) => a - b);
  log(`[find-max] ${kind} ${sc.name}: highest sustainable rate ${lo ? `${lo.offeredRate.toLocaleString('en-US')} msgs/s (ack p99 ${lo.latency.ack.p99} ms)` : 'none found'}` +
    (hi ? `; failed at ${hi.toLocaleString('en-US')} msgs/s` : '') + failedBelowText(out.failedBelow));
  return out;
}

/** The rates that failed below the highest sustained one (the p99 near the limit is not monotonic). */
function failedBelowText(rates: number[] | undefined): string {
  return rates?.length ? `; failed below it at ${rates.map((v) => v.toLocaleString('en-US')).join(', ')} msgs/s` : '';
}

// STOMP has no joined frame: without ENTER messages every MESSAGE is a CHAT and a fresh
// subscription's stream starts right after the room's last seq (read over HTTP before sending)
const protoEnv = (o: CliOptions): Record<string, string> | undefined => (o.proto === 'stomp' ? { CHAT_ENTER_QUIT: 'off' } : undefined);
/** The engine's environment for a scenario: the protocol's, then the scenario's own. */
const serverEnv = (o: CliOptions, sc: Scenario): Record<string, string | undefined> | undefined =>
  (sc.serverEnv || o.proto === 'stomp' ? { ...protoEnv(o), ...sc.serverEnv } : undefined);

async function runServer(kind: ServerKind, sc: Scenario, o: CliOptions, base: RunOptions, teardown: Teardown, extra: { env: Record<string, string>; label: string } = { env: {}, label: kind }): Promise<ServerOutcome> {
  const profileDir = o.profile ? (o.out ?? 'bench/results') + '/profile-' + kind : undefined;
  const label = o.proto === 'stomp' ? `${extra.label}/stomp` : extra.label;
  if (o.prefill > 0 && kind !== 'engine') throw new Error(`--prefill fills the engine's SQLite store, not ${kind}'s`);
  const prefillFrom = o.prefill > 0 ? prefillTemplate(o.prefill, log) : undefined;
  // one server per step (a single run is one step), each on a fresh store
  const fresh = async (): Promise<StepServer> => {
    const srv: RunningServer = await startServer({ kind, pin: o.pin, parallelGc: o.parallelGc, env: { ...(kind === 'engine' ? serverEnv(o, sc) : protoEnv(o)), ...extra.env }, teardown, profileDir, prefillFrom });
    log(`[bench] started ${extra.label} pid ${srv.pid} at ${srv.url} on a fresh store${prefillFrom ? ` of ${o.prefill.toLocaleString('en-US')} messages` : ''}${o.pin ? ` (${pinning(o, 'server')})` : ''}${o.proto === 'stomp' ? ', STOMP 1.2 (CHAT_ENTER_QUIT=off)' : ''}`);
    return {
      urls: [srv.url], pids: [srv.pid],
      async done(r) {
        if (extra.env.CHAT_WEBHOOK_URL !== undefined) log(`[bench] ${extra.label}: ${await webhookFigures(srv.url)}`);
        await srv.stop();
        if (profileDir && r) reportProfile(profileDir, srv.pid, label, [r], o);
      },
    };
  };
  return runAgainst(label, [], [], [], sc, o, base, undefined, fresh);
}

/** --profile: name the server's .cpuprofile files by thread and print each thread's top functions. */
function reportProfile(dir: string, pid: number, server: string, runs: RunResult[], o: CliOptions): void {
  const messages = runs.reduce((n, r) => n + (typeof r.extra?.messagesAcked === 'number' ? r.extra.messagesAcked : 0), 0);
  const windows = runs.map((r) => r.extra?.loadWindowUs).filter((w): w is [number, number] => Array.isArray(w) && w.length === 2);
  const { text } = profileReport(dir, pid, messages, `${server} ${runs[0]?.scenario ?? ''} @${runs[0]?.offeredRate ?? '?'}/s`, windows);
  (o.json ? process.stderr : process.stdout).write('\n' + text);
  log(`[bench] profiles named by thread in ${dir} (report: ${dir}/profile-${pid}.md)`);
}

/** Where a pinned run's processes are, for the log: `who` on core 0 (and how V8 collects there), the generator on core 1. */
function pinning(o: CliOptions, who: string): string {
  return `${who} on core 0${o.parallelGc ? '' : ' as node --single-threaded-gc'}, generator on core 1`;
}

/** --nodes N: N engine nodes on a fresh MariaDB database (N >= 2 over Redis), all stopped and the database dropped at the end. */
async function runNodes(n: number, sc: Scenario, o: CliOptions, base: RunOptions, teardown: Teardown): Promise<ServerOutcome> {
  const nodes = await startNodes({ nodes: n, pin: o.pin, parallelGc: o.parallelGc, env: serverEnv(o, sc), teardown, mysqlUrl: o.mysqlUrl, redisUrl: o.redisUrl, profileDir: o.profile ? (o.out ?? 'bench/results') + '/profile-engine' : undefined, prefill: o.prefill });
  try {
    log(`[bench] started ${nodes.label}: ${nodes.urls.map((u, i) => `node ${i + 1} pid ${nodes.pids[i]} at ${u}`).join(', ')}; database ${nodes.database}` +
      `${nodes.redisPrefix ? `, Redis prefix ${nodes.redisPrefix}` : ''}${o.pin ? `; ${pinning(o, n > 1 ? 'every node' : 'the node')}` : ''}${o.proto === 'stomp' ? ', STOMP 1.2 (CHAT_ENTER_QUIT=off)' : ''}` +
      `; server CPU/RSS = sum over ${n} process${n > 1 ? 'es' : ''}${nodes.backendPids.length ? `; database/Redis pids ${nodes.backendPids.join(',')} sampled as db+redis` : ''}`);
    return await runAgainst(o.proto === 'stomp' ? `${nodes.label}/stomp` : nodes.label, nodes.urls, nodes.pids, nodes.backendPids, sc, o, base, () => nodes.counters());
  } finally {
    await nodes.stop();
  }
}

/** The engine's webhook counters, read from /metrics before it stops. */
async function webhookFigures(wsUrl: string): Promise<string> {
  const u = new URL(wsUrl);
  try {
    const text = await fetchMetrics(`http://${u.host}`);
    const v = (name: string): string => String(metricValue(text, name)).replace('NaN', '?');
    return `webhook events pending ${v('chat_webhook_pending')}, delivered ${v('chat_webhook_delivered_total')}, retried ${v('chat_webhook_retried_total')}, dead-lettered ${v('chat_webhook_dead_lettered_total')} (overflow ${v('chat_webhook_overflow_total')})`;
  } catch (e) {
    return `webhook counters unavailable (${(e as Error).message})`;
  }
}

/** The server's CPU averaged over the seconds the harness was sending (as the ws generator's is), not the drain. */
function serverCpuOverSends(r: RunResult): number {
  const cpu = r.timeline.filter((p) => p.sent > 0 && !Number.isNaN(p.serverCpu)).map((p) => p.serverCpu);
  return cpu.length ? Math.round(cpu.reduce((a, b) => a + b, 0) / cpu.length) : NaN;
}

/**
 * crosscheck <chat|direct>: the same load at the same rate from two independently written
 * generators (the harness's lean client, then bench/lib/ws-generator.ts on the `ws` package), each
 * against a freshly started server and store; their achieved rates, latencies and the server's CPU
 * side by side. The ws generator runs twice: once in the harness's send order (the same load: the
 * two should agree), once in the other order (consecutive sends to different rooms, or the members
 * of one room sending back to back), which changes what the server pays per message.
 */
async function crosscheck(sc: Scenario, o: CliOptions, base: RunOptions, teardown: Teardown): Promise<number> {
  const same = sc.order;
  if (same === undefined) { log('crosscheck: the room loads (chat, direct, soak)'); return 2; }
  if (o.urls || o.nodes !== undefined) { log('crosscheck spawns its servers: drop --url / --nodes'); return 2; }
  const harness = await runServer(o.server, sc, { ...o, findMax: false }, base, teardown);
  const r = harness.best;
  const orders: SendOrder[] = [same, same === 'spread' ? 'grouped' : 'spread'];
  const ws: (WsGenResult & { order: string; serverCpu: number })[] = [];
  for (const order of orders) {
    if (o.waitQuiet) await waitQuiet();
    const srv = await startServer({ kind: o.server, pin: o.pin, parallelGc: o.parallelGc, teardown });
    log(`[crosscheck] ws generator (${order}): ${o.server} pid ${srv.pid} at ${srv.url} on a fresh store; ${base.clients} clients, ${base.rooms} rooms, ${base.rate}/s for ${base.warmupS}+${base.durationS} s`);
    const sampler = new ProcSampler([srv.pid]);
    let serverCpu = NaN;
    try {
      const w = await wsGenerate({
        url: srv.url, clients: base.clients, rooms: base.rooms, rate: base.rate, warmupS: base.warmupS, durationS: base.durationS, drainS: base.drainS,
        prefix: `x${Date.now().toString(36)}.`, order,
        onLoad: (phase) => { const s = sampler.sample(); if (phase === 'end') serverCpu = Math.round(s.serverCpu); },
      });
      ws.push({ ...w, order, serverCpu });
    } finally {
      await srv.stop();
    }
  }
  const line = (name: string, achieved: number, p50: number, p99: number, dp99: number, server: number, gen: number, extra: string): string =>
    `| ${name} | ${base.rate.toLocaleString('en-US')} | ${achieved.toLocaleString('en-US')} | ${p50} | ${p99} | ${dp99} | ${server}% | ${gen}% | ${extra} |`;
  const out = [
    `\ncrosscheck ${sc.name} on ${o.server} (a fresh server and store for each run; ${base.warmupS} s warm-up + ${base.durationS} s; server CPU over the sends, % of its core):`,
    '| generator (send order) | offered/s | achieved/s | ack p50 ms | ack p99 ms | delivery p99 ms | server CPU | generator CPU | notes |', '|---|---|---|---|---|---|---|---|---|',
    r ? line(`harness (${same})`, r.achievedRate, r.latency.ack.p50, r.latency.ack.p99, r.latency.delivery.p99, serverCpuOverSends(r), r.resources.genCpuAvg, r.correctness.ok ? 'correct' : correctnessLine(r)) : '| harness | - | not run | | | | | | |',
    ...ws.map((w) => line(`ws package (${w.order})`, w.achieved, w.ackP50, w.ackP99, w.deliveryP99, w.serverCpu, w.genCpu,
      `acked ${w.acked}/${w.sent}, delivered ${w.delivered}/${w.expectedDeliveries}${w.errors.length ? '; ' + w.errors.join('; ') : ''}`)),
  ];
  (o.json ? process.stderr : process.stdout).write(out.join('\n') + '\n');
  if (o.json) process.stdout.write(JSON.stringify({ scenario: sc.name, harness: r ?? null, ws }, null, 2) + '\n');
  return harness.fatal.length || ws.some((w) => w.acked < w.sent || w.delivered < w.expectedDeliveries) ? 1 : 0;
}

export async function main(o: CliOptions): Promise<number> {
  const teardown = new Teardown();
  teardown.trapSignals();
  try { return await mainWith(o, teardown); }
  finally { await teardown.runAll(); }
}

async function mainWith(o: CliOptions, teardown: Teardown): Promise<number> {
  const sc = SCENARIOS[o.scenario];
  if (!sc) { log(`unknown scenario "${o.scenario}"; one of: ${Object.keys(SCENARIOS).join(', ')}`); return 2; }
  for (const u of o.urls ?? []) if (!u.startsWith('http://')) parseWsUrl(u); // loopback ws:// only: throws naming the URL
  if (o.proto === 'stomp') {
    if (o.compare) { log('--proto stomp: compare runs the peers, which speak only the native protocol; run `chat --find-max --proto stomp` instead'); return 2; }
    if (!o.urls && o.server !== 'engine') { log(`--proto stomp: only the engine speaks STOMP, not --server ${o.server}`); return 2; }
    if (!STOMP_SCENARIOS.includes(sc.name)) { log(`--proto stomp: scenario ${sc.name} is native only; STOMP runs ${STOMP_SCENARIOS.join(', ')}`); return 2; }
    if (o.urls?.[0].startsWith('http://')) { log('--proto stomp: needs a ws:// URL of the engine'); return 2; }
    if (o.urls) log('[bench] --proto stomp with --url: the server must be the engine, started with CHAT_ENTER_QUIT=off and CHAT_SEND_RATE=0');
  }
  const base: RunOptions = {
    clients: o.clients ?? sc.defaults.clients, rooms: o.rooms ?? sc.defaults.rooms, rate: o.rate ?? sc.defaults.rate,
    durationS: o.durationS ?? (o.findMax || o.compare ? 8 : sc.defaults.durationS),
    warmupS: o.warmupS ?? (o.findMax || o.compare ? 2 : sc.defaults.warmupS),
    drainS: o.drainS ?? sc.defaults.drainS, p99LimitMs: o.p99LimitMs,
  };
  if (o.pin && !pinSelf(1)) log('[bench] taskset not available: server and generator float');
  const outcomes: ServerOutcome[] = [];
  if (o.prefill > 0 && (o.urls || o.crosscheck)) { log('--prefill fills the store of engines the bench spawns (not --url or crosscheck)'); return 2; }
  if (o.crosscheck) return crosscheck(sc, o, base, teardown);
  if (o.compare) {
    for (const kind of SERVER_KINDS) {
      try { outcomes.push(await runServer(kind, sc, { ...o, findMax: sc.rated }, base, teardown)); }
      catch (e) { log(`[compare] ${kind}: ${(e as Error).message.split('\n')[0]}`); outcomes.push({ server: kind, runs: [], fatal: [] }); }
    }
  } else if (o.urls) {
    if (o.pids.length > 1) log(`[bench] server CPU and RSS: the sum over pids ${o.pids.join(', ')}`);
    outcomes.push(await runAgainst(o.urls.map((u) => new URL(u).host).join('+') + (o.proto === 'stomp' ? '/stomp' : ''), o.urls, o.pids, [], sc, o, base));
  } else if (o.nodes !== undefined) {
    outcomes.push(await runNodes(o.nodes, sc, o, base, teardown));
  } else if (o.webhook !== undefined) {
    if (o.server !== 'engine') { log('--webhook: only the engine has webhooks'); return 2; }
    for (const v of o.webhook) {
      const target = await webhookTarget(v);
      try { outcomes.push(await runServer('engine', sc, o, base, teardown, { env: target.env, label: `engine webhook=${v}` })); }
      finally { await target.stop(); }
    }
    const label = (v: WebhookVariant): string => ({ none: 'no webhook', slow: `a receiver answering in ${SLOW_MS / 1000} s`, refuse: 'a receiver refusing connections' })[v];
    const lines = outcomes.map((x, i) => x.best ? `- ${label(o.webhook![i])}: ${x.best.achievedRate.toLocaleString('en-US')} of ${x.best.offeredRate.toLocaleString('en-US')} msgs/s, ack p50 ${x.best.latency.ack.p50} / p99 ${x.best.latency.ack.p99} ms, server CPU ${x.best.resources.serverCpuAvg}%` : `- ${label(o.webhook![i])}: no result`);
    (o.json ? process.stderr : process.stdout).write(`\nwebhook ${sc.name}:\n${lines.join('\n')}\n`);
  } else {
    outcomes.push(await runServer(o.server, sc, o, base, teardown));
  }

  const summary: string[] = [];
  if (o.compare || o.findMax) {
    const ceiling = outcomes.find((x) => x.server === 'ceiling')?.best;
    for (const x of outcomes) {
      const b = x.best;
      const ratio = b && ceiling ? ` = ${(b.offeredRate / ceiling.offeredRate * 100).toFixed(0)}% of the ceiling` : '';
      const cpu = b ? `server CPU ${b.resources.serverCpuAvg}%${b.resources.serverProcesses > 1 ? ` (sum of ${b.resources.serverProcesses} processes)` : ''}${Number.isNaN(b.resources.backendCpuAvg) || b.resources.backendCpuAvg === null ? '' : `, db+redis CPU ${b.resources.backendCpuAvg}%`}` : '';
      summary.push(`- ${x.server}: ${b ? `${b.offeredRate.toLocaleString('en-US')} msgs/s sustained (ack p50 ${b.latency.ack.p50} / p99 ${b.latency.ack.p99} ms, ${cpu}, generator CPU ${b.resources.genCpuAvg}%, ${b.transport} client)${ratio}${failedBelowText(x.failedBelow)}` : x.runs.length ? 'no sustainable rate found' : 'not run'}`);
    }
    (o.json ? process.stderr : process.stdout).write(`\n${o.compare ? 'compare' : 'find-max'} ${sc.name}${o.compare ? ` (each server: --find-max, ${base.warmupS} s warm-up + ${base.durationS} s per step; sustainable = achieved >= 95% of offered, ack p99 <= ${o.p99LimitMs} ms, no correctness error; steps disturbed by other processes are retried up to twice)` : ''}:\n${summary.join('\n')}\n`);
  }
  const runs = outcomes.flatMap((x) => x.runs);
  if (o.json) process.stdout.write(JSON.stringify({ scenario: sc.name, summary, outcomes: outcomes.map((x) => ({ server: x.server, best: x.best?.offeredRate ?? null, fatal: x.fatal })), runs }, null, 2) + '\n');
  if (o.out) {
    const shown = o.compare || o.findMax ? outcomes.map((x) => x.best).filter((r): r is RunResult => r !== undefined) : runs;
    writeReports(o.out, `${o.compare ? 'compare' : o.findMax ? 'find-max' : 'run'}: ${sc.name}`, shown.length ? shown : runs, summary, { steps: runs });
    log(`[bench] reports written to ${o.out}`);
  }
  const fatal = outcomes.flatMap((x) => x.fatal);
  if (fatal.length) {
    process.stderr.write(`\n!!!!!!!! CORRECTNESS ERRORS !!!!!!!!\n${fatal.map((f) => '  ' + f).join('\n')}\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n`);
    return 1;
  }
  return 0;
}
