// Runs a scenario against one server (spawned or --url), a --find-max rate search, or `compare`.
import { startServer, pinSelf, waitQuiet, ProcSampler, SERVER_KINDS, type ServerKind, type RunningServer } from './proc.ts';
import { RawTransport, SocketIoTransport, SioLeanTransport, StompTransport } from './transport.ts';
import { parseWsUrl } from './wsclient.ts';
import type { RunEnv } from './roomload.ts';
import type { RunResult } from './stats.ts';
import type { RunOptions, Scenario } from '../scenarios/types.ts';
import { SCENARIOS } from '../scenarios/index.ts';
import { textReport, writeReports, hardErrors, correctnessLine } from '../report.ts';

export interface CliOptions {
  scenario: string;
  url?: string;
  server: ServerKind;
  rate?: number; durationS?: number; warmupS?: number; drainS?: number; clients?: number; rooms?: number;
  json: boolean; out?: string; pin: boolean; findMax: boolean; profile: boolean;
  pid?: number; p99LimitMs: number;
  compare: boolean;
  /** Socket.IO peer: lean = our raw client speaking its wire format; official = socket.io-client. */
  sioClient: 'lean' | 'official';
  /** Before each run, wait (up to 60 s) until other processes use < 20% of a core. */
  waitQuiet: boolean;
  /** Wire protocol of the lean client: native (PROTOCOL.md JSON) or stomp (the engine's STOMP 1.2). */
  proto: 'native' | 'stomp';
}

/** Scenarios that --proto stomp drives (the open-loop room load). */
export const STOMP_SCENARIOS = ['chat', 'direct', 'fanout', 'soak'];

interface ServerOutcome { server: string; runs: RunResult[]; best?: RunResult; fatal: string[] }

const log = (s: string): void => { process.stderr.write(s + '\n'); };
/** Two significant digits: find-max steps land on readable rates. */
const nice = (v: number): number => { const p = Math.pow(10, Math.max(0, Math.floor(Math.log10(v)) - 1)); return Math.max(1, Math.round(v / p) * p); };

function makeEnv(kind: string, url: string, sampler: ProcSampler, step: number, sioClient: 'lean' | 'official', proto: 'native' | 'stomp'): RunEnv {
  const prefix = `b${Date.now().toString(36)}${step}.`;
  if (url.startsWith('http://')) {
    const u = new URL(url);
    const host = u.hostname;
    if (!host.startsWith('127.')) throw new Error(`load tests target loopback only, not ${host}`);
    return { serverLabel: kind, url, httpBase: url.replace(/\/$/, ''), prefix, sampler, transport: (sink) => sioClient === 'official' ? new SocketIoTransport(host, Number(u.port), prefix, sink) : new SioLeanTransport(host, Number(u.port), prefix, sink) };
  }
  const t = parseWsUrl(url);
  return {
    serverLabel: kind, url, httpBase: `http://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`, prefix, sampler,
    transport: (sink) => proto === 'stomp' ? new StompTransport(t, prefix, sink) : new RawTransport(t, prefix, sink),
  };
}

/** A run's correctness failure that no overload explains (fatal even in a find-max step that fails). */
function fatalOf(r: RunResult, searching: boolean, p99Limit: number): string | undefined {
  if (r.correctness.ok) return undefined;
  const overloaded = r.achievedRate < 0.95 * r.offeredRate || r.latency.ack.p99 > p99Limit;
  if (hardErrors(r) === 0 && searching && overloaded) return undefined; // a server past its limit may leave sends unacked or close slow consumers
  return `${r.server} ${r.scenario} @${r.offeredRate}/s: ${correctnessLine(r)}`;
}

async function runAgainst(kind: string, url: string, pid: number | undefined, sc: Scenario, o: CliOptions, base: RunOptions): Promise<ServerOutcome> {
  const sampler = new ProcSampler(pid);
  const out: ServerOutcome = { server: kind, runs: [], fatal: [] };
  let step = 0;
  const one = async (rate: number, searching: boolean): Promise<RunResult> => {
    let r: RunResult;
    for (let attempt = 0; ; attempt++) {
      if (o.waitQuiet) await waitQuiet();
      r = await sc.run({ ...base, rate }, makeEnv(kind, url, sampler, step++, o.sioClient, o.proto));
      out.runs.push(r);
      if (!o.json) process.stdout.write(textReport(r) + '\n');
      // a failed step during which other processes took a core's quarter or more says nothing: retry it (twice at most)
      if (r.sustainable || r.resources.otherCpuMax < 25 || attempt >= 2 || !o.waitQuiet) break;
      log(`[bench] ${kind} @${rate}/s failed while other processes used up to ${r.resources.otherCpuMax}% of a core: retrying`);
    }
    const f = fatalOf(r, searching, o.p99LimitMs);
    if (f) out.fatal.push(f);
    return r;
  };
  if (!o.findMax || !sc.rated) {
    out.best = await one(base.rate, false);
    return out;
  }
  // --find-max: x1.3 until a step fails, then two bisection steps between the last pass and the fail
  let rate = o.rate ?? sc.defaults.findMaxStart;
  let lo: RunResult | undefined, hi: number | undefined;
  for (let i = 0; i < 14 && hi === undefined; i++) {
    const r = await one(rate, true);
    if (r.sustainable) { lo = r; rate = nice(rate * 1.3); }
    else if (lo === undefined && i < 3) { rate = nice(rate / 2); }
    else hi = rate;
    if (out.fatal.length) break;
  }
  for (let i = 0; i < 2 && lo && hi && (hi - lo.offeredRate) / hi > 0.08 && !out.fatal.length; i++) {
    const mid = nice((lo.offeredRate + hi) / 2);
    if (mid <= lo.offeredRate || mid >= hi) break;
    const r = await one(mid, true);
    if (r.sustainable) lo = r; else hi = mid;
  }
  out.best = lo;
  log(`[find-max] ${kind} ${sc.name}: highest sustainable rate ${lo ? lo.offeredRate + '/s (ack p99 ' + lo.latency.ack.p99 + ' ms)' : 'none found'}` +
    (hi ? `; failed at ${hi}/s` : ''));
  return out;
}

async function runServer(kind: ServerKind, sc: Scenario, o: CliOptions, base: RunOptions): Promise<ServerOutcome> {
  let srv: RunningServer | undefined;
  try {
    // STOMP has no joined frame: without ENTER messages every MESSAGE is a CHAT and a fresh
    // subscription's stream starts right after the room's last seq (read over HTTP before sending)
    const env = o.proto === 'stomp' ? { CHAT_ENTER_QUIT: 'off' } : undefined;
    srv = await startServer({ kind, pin: o.pin, env, profileDir: o.profile ? (o.out ?? 'bench/results') + '/profile-' + kind : undefined });
    log(`[bench] started ${kind} pid ${srv.pid} at ${srv.url}${o.pin ? ' (server on core 0, generator on core 1)' : ''}${o.proto === 'stomp' ? ', STOMP 1.2 (CHAT_ENTER_QUIT=off)' : ''}`);
    return await runAgainst(o.proto === 'stomp' ? `${kind}/stomp` : kind, srv.url, srv.pid, sc, o, base);
  } finally {
    if (srv) await srv.stop();
  }
}

export async function main(o: CliOptions): Promise<number> {
  const sc = SCENARIOS[o.scenario];
  if (!sc) { log(`unknown scenario "${o.scenario}"; one of: ${Object.keys(SCENARIOS).join(', ')}`); return 2; }
  if (o.proto === 'stomp') {
    if (o.compare) { log('--proto stomp: compare runs the peers, which speak only the native protocol; run `chat --find-max --proto stomp` instead'); return 2; }
    if (!o.url && o.server !== 'engine') { log(`--proto stomp: only the engine speaks STOMP, not --server ${o.server}`); return 2; }
    if (!STOMP_SCENARIOS.includes(sc.name)) { log(`--proto stomp: scenario ${sc.name} is native only; STOMP runs ${STOMP_SCENARIOS.join(', ')}`); return 2; }
    if (o.url?.startsWith('http://')) { log('--proto stomp: needs a ws:// URL of the engine'); return 2; }
    if (o.url) log('[bench] --proto stomp with --url: the server must be the engine, started with CHAT_ENTER_QUIT=off and CHAT_SEND_RATE=0');
  }
  const base: RunOptions = {
    clients: o.clients ?? sc.defaults.clients, rooms: o.rooms ?? sc.defaults.rooms, rate: o.rate ?? sc.defaults.rate,
    durationS: o.durationS ?? (o.findMax || o.compare ? 8 : sc.defaults.durationS),
    warmupS: o.warmupS ?? (o.findMax || o.compare ? 2 : sc.defaults.warmupS),
    drainS: o.drainS ?? sc.defaults.drainS, p99LimitMs: o.p99LimitMs,
  };
  if (o.pin && !pinSelf(1)) log('[bench] taskset not available: server and generator float');
  const outcomes: ServerOutcome[] = [];
  if (o.compare) {
    for (const kind of SERVER_KINDS) {
      try { outcomes.push(await runServer(kind, sc, { ...o, findMax: sc.rated }, base)); }
      catch (e) { log(`[compare] ${kind}: ${(e as Error).message.split('\n')[0]}`); outcomes.push({ server: kind, runs: [], fatal: [] }); }
    }
  } else if (o.url) {
    outcomes.push(await runAgainst(new URL(o.url).host + (o.proto === 'stomp' ? '/stomp' : ''), o.url, o.pid, sc, o, base));
  } else {
    outcomes.push(await runServer(o.server, sc, o, base));
  }

  const summary: string[] = [];
  if (o.compare || o.findMax) {
    const ceiling = outcomes.find((x) => x.server === 'ceiling')?.best;
    for (const x of outcomes) {
      const b = x.best;
      const ratio = b && ceiling ? ` = ${(b.offeredRate / ceiling.offeredRate * 100).toFixed(0)}% of the ceiling` : '';
      summary.push(`- ${x.server}: ${b ? `${b.offeredRate.toLocaleString('en-US')} msgs/s sustained (ack p50 ${b.latency.ack.p50} / p99 ${b.latency.ack.p99} ms, server CPU ${b.resources.serverCpuAvg}%, generator CPU ${b.resources.genCpuAvg}%, ${b.transport} client)${ratio}` : x.runs.length ? 'no sustainable rate found' : 'not run'}`);
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
