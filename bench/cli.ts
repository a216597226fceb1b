// npm run bench -- <scenario|compare <scenario>> [--url ws://127.0.0.1:8080/ws[,ws://...]] [--server engine|ceiling|ws-sqlite|socketio]
//   [--nodes N [--mysql-url URL] [--redis-url URL]]
//   [--rate N] [--duration S] [--warmup S] [--drain S] [--clients N] [--rooms N] [--find-max] [--json] [--out dir]
//   [--profile] [--no-pin] [--pid N[,N]] [--p99-limit MS] [--proto native|stomp] [--webhook none|slow|refuse|all]
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
if (!existsSync(path.join(here, 'node_modules', 'hdr-histogram-js'))) {
  process.stderr.write('bench: its own dependencies are not installed; run `npm --prefix bench ci` first (once), then retry.\n');
  process.exit(2);
}

const USAGE = `usage: npm run bench -- <scenario> [flags]      scenarios: chat fanout direct openchat storm history soak abuse idle
       npm run bench -- compare <scenario> [flags]  engine, ceiling, ws-sqlite, socketio one after another, as ratios of the ceiling
       npm run bench -- crosscheck <chat|direct> --rate N [flags]  the same load from the harness and from an independent ws-package generator, each on a fresh server
flags: --url ws://127.0.0.1:PORT/ws[,ws://127.0.0.1:PORT2/ws] (target running server(s): clients spread round-robin over the URLs; else one is spawned: --server engine|ceiling|ws-sqlite|socketio, default engine)
       --nodes N (engine: spawn N nodes on a fresh MariaDB database, N >= 2 in cluster mode over Redis; --nodes 1 = one node on MariaDB, the baseline)
       --mysql-url mysql://root@127.0.0.1:3306 (server for --nodes' scratch database)  --redis-url redis://127.0.0.1:6379 (for --nodes >= 2)
       --rate N  --duration S  --warmup S  --drain S  --clients N  --rooms N  --find-max  --p99-limit MS
       --prefill N (engine on SQLite: every step starts on a store already holding N messages; the store is built once into /tmp)
       --json  --out DIR  --profile (server CPU profile into DIR)  --no-pin (let server and generator float)  --parallel-gc (a pinned server keeps V8's GC helper threads; by default it runs with node --single-threaded-gc)  --no-wait-quiet (do not wait for a quiet box)  --pid N[,N] (with --url: sample these pids, CPU and RSS summed)
       --sio-client lean|official (Socket.IO peer: our lean client speaking its wire format, default, or socket.io-client)
       --proto native|stomp (engine only, chat/direct/fanout/soak: drive the engine over STOMP 1.2 instead of its native protocol)
       --webhook none|slow|refuse|all (spawned engine: webhooks on, public rooms included, to a receiver answering in 2 s (slow), to a port refusing connections (refuse), or off (none); all = the three one after another, compared)`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' }, server: { type: 'string', default: 'engine' },
    rate: { type: 'string' }, duration: { type: 'string' }, warmup: { type: 'string' }, drain: { type: 'string' },
    clients: { type: 'string' }, rooms: { type: 'string' }, prefill: { type: 'string' }, pid: { type: 'string' }, nodes: { type: 'string' },
    'mysql-url': { type: 'string', default: 'mysql://root@127.0.0.1:3306' }, 'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' }, 'p99-limit': { type: 'string' }, 'sio-client': { type: 'string', default: 'lean' }, proto: { type: 'string', default: 'native' }, webhook: { type: 'string' },
    json: { type: 'boolean', default: false }, out: { type: 'string' }, 'no-pin': { type: 'boolean', default: false }, 'parallel-gc': { type: 'boolean', default: false },
    'find-max': { type: 'boolean', default: false }, 'no-wait-quiet': { type: 'boolean', default: false }, profile: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
  },
});

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) { process.stderr.write(`bench: --${name} must be a non-negative number, got "${v}"\n`); process.exit(2); }
  return n;
}

if (values.help || positionals.length === 0) { process.stdout.write(USAGE + '\n'); process.exit(values.help ? 0 : 2); }
const compare = positionals[0] === 'compare';
const crosscheck = positionals[0] === 'crosscheck';
const scenario = compare || crosscheck ? positionals[1] : positionals[0];
if (!scenario) { process.stderr.write(USAGE + '\n'); process.exit(2); }
const server = values.server as string;
if (!['engine', 'ceiling', 'ws-sqlite', 'socketio'].includes(server)) { process.stderr.write(`bench: --server must be engine, ceiling, ws-sqlite or socketio\n`); process.exit(2); }
const proto = values.proto as string;
if (proto !== 'native' && proto !== 'stomp') { process.stderr.write(`bench: --proto must be native or stomp\n`); process.exit(2); }
const fail = (m: string): never => { process.stderr.write(`bench: ${m}\n`); process.exit(2); };
const list = (v: string | undefined): string[] | undefined => (v === undefined ? undefined : v.split(',').map((x) => x.trim()).filter((x) => x !== ''));
const urls = list(values.url);
if (urls && urls.length === 0) fail('--url needs at least one URL');
if (urls && urls.length > 1 && urls.some((u) => !u.startsWith('ws://'))) fail('several --url: each must be ws://... (the Socket.IO peer is one process)');
const pids = (list(values.pid) ?? []).map((p) => { const n = Number(p); if (!Number.isInteger(n) || n <= 0) fail(`--pid takes process ids (comma-separated), got "${p}"`); return n; });
if (pids.length && !urls) fail('--pid goes with --url (a spawned server is sampled by itself)');
const webhook = values.webhook === undefined ? undefined : values.webhook === 'all' ? ['none', 'slow', 'refuse'] as const : [values.webhook];
if (webhook && !webhook.every((w) => w === 'none' || w === 'slow' || w === 'refuse')) fail(`--webhook must be none, slow, refuse or all, got "${values.webhook}"`);
if (webhook && (urls || compare || values.nodes !== undefined)) fail('--webhook spawns the engine itself: drop --url, --nodes and compare');
const nodes = values.nodes === undefined ? undefined : Number(values.nodes);
if (nodes !== undefined) {
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 64) fail(`--nodes must be an integer from 1 to 64, got "${values.nodes}"`);
  if (urls) fail('--nodes spawns the engine nodes itself: drop --url (or drop --nodes and pass every node as --url a,b --pid p,q)');
  if (compare) fail('--nodes: compare runs the single-process peers; run `chat --find-max --nodes N` instead');
  if (server !== 'engine') fail(`--nodes: only the engine has a cluster mode, not --server ${server}`);
}

const { main } = await import('./lib/runner.ts'); // after the dependency check: the runner imports hdr-histogram-js
const code = await main({
  scenario, compare, crosscheck, prefill: num('prefill', values.prefill) ?? 0, urls, server: server as 'engine', nodes, mysqlUrl: values['mysql-url'] as string, redisUrl: values['redis-url'] as string,
  rate: num('rate', values.rate), durationS: num('duration', values.duration), warmupS: num('warmup', values.warmup),
  drainS: num('drain', values.drain), clients: num('clients', values.clients), rooms: num('rooms', values.rooms),
  pids, p99LimitMs: num('p99-limit', values['p99-limit']) ?? 100,
  waitQuiet: !values['no-wait-quiet'],
  sioClient: values['sio-client'] === 'official' ? 'official' : 'lean', proto, webhook: webhook as ('none' | 'slow' | 'refuse')[] | undefined,
  json: values.json, out: values.out, pin: !values['no-pin'], parallelGc: values['parallel-gc'], findMax: values['find-max'], profile: values.profile,
}).catch((e: Error) => { process.stderr.write(`bench: ${e.message}\n`); return 2; });
process.exit(code);
