// npm run bench -- <scenario|compare <scenario>> [--url ws://127.0.0.1:8080/ws] [--server engine|ceiling|ws-sqlite|socketio]
//   [--rate N] [--duration S] [--warmup S] [--drain S] [--clients N] [--rooms N] [--find-max] [--json] [--out dir]
//   [--profile] [--no-pin] [--pid N] [--p99-limit MS] [--proto native|stomp]
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
if (!existsSync(path.join(here, 'node_modules', 'hdr-histogram-js'))) {
  process.stderr.write('bench: its own dependencies are not installed; run `npm --prefix bench ci` first (once), then retry.\n');
  process.exit(2);
}

const USAGE = `usage: npm run bench -- <scenario> [flags]      scenarios: chat fanout direct openchat storm history soak
       npm run bench -- compare <scenario> [flags]  engine, ceiling, ws-sqlite, socketio one after another, as ratios of the ceiling
flags: --url ws://127.0.0.1:PORT/ws (target a running server; else one is spawned: --server engine|ceiling|ws-sqlite|socketio, default engine)
       --rate N  --duration S  --warmup S  --drain S  --clients N  --rooms N  --find-max  --p99-limit MS
       --json  --out DIR  --profile (server CPU profile into DIR)  --no-pin (let server and generator float)  --no-wait-quiet (do not wait for a quiet box)  --pid N (sample this server pid)
       --sio-client lean|official (Socket.IO peer: our lean client speaking its wire format, default, or socket.io-client)
       --proto native|stomp (engine only, chat/direct/fanout/soak: drive the engine over STOMP 1.2 instead of its native protocol)`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' }, server: { type: 'string', default: 'engine' },
    rate: { type: 'string' }, duration: { type: 'string' }, warmup: { type: 'string' }, drain: { type: 'string' },
    clients: { type: 'string' }, rooms: { type: 'string' }, pid: { type: 'string' }, 'p99-limit': { type: 'string' }, 'sio-client': { type: 'string', default: 'lean' }, proto: { type: 'string', default: 'native' },
    json: { type: 'boolean', default: false }, out: { type: 'string' }, 'no-pin': { type: 'boolean', default: false },
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
const scenario = compare ? positionals[1] : positionals[0];
if (!scenario) { process.stderr.write(USAGE + '\n'); process.exit(2); }
const server = values.server as string;
if (!['engine', 'ceiling', 'ws-sqlite', 'socketio'].includes(server)) { process.stderr.write(`bench: --server must be engine, ceiling, ws-sqlite or socketio\n`); process.exit(2); }
const proto = values.proto as string;
if (proto !== 'native' && proto !== 'stomp') { process.stderr.write(`bench: --proto must be native or stomp\n`); process.exit(2); }

const { main } = await import('./lib/runner.ts'); // after the dependency check: the runner imports hdr-histogram-js
const code = await main({
  scenario, compare, url: values.url, server: server as 'engine',
  rate: num('rate', values.rate), durationS: num('duration', values.duration), warmupS: num('warmup', values.warmup),
  drainS: num('drain', values.drain), clients: num('clients', values.clients), rooms: num('rooms', values.rooms),
  pid: num('pid', values.pid), p99LimitMs: num('p99-limit', values['p99-limit']) ?? 100,
  waitQuiet: !values['no-wait-quiet'],
  sioClient: values['sio-client'] === 'official' ? 'official' : 'lean', proto,
  json: values.json, out: values.out, pin: !values['no-pin'], findMax: values['find-max'], profile: values.profile,
}).catch((e: Error) => { process.stderr.write(`bench: ${e.message}\n`); return 2; });
process.exit(code);
