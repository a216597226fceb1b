// The hostile side of the `abuse` scenario, on a worker thread of the generator: each flood opens
// its connections from a source address of its own (127.0.1.<n>) and sends at a fixed rate per
// connection, several times what the engine's limit for that operation allows, counting every reply
// by what it was (accepted, refused with which code, closed with which close code or HTTP status).
// Paced rather than as-fast-as-possible: the honest clients share this process's core, and a flood
// thread at 100% would measure the generator's starvation, not the engine.
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { WsConn, type WsTarget, type WsHandlers } from './wsclient.ts';
import { HttpConn } from './httpclient.ts';

export interface FloodInput { target: WsTarget; prefix: string; rooms: number; only?: string[]; scale: number }

/** Per flood: what it is, and outcome -> count. */
export type FloodCounts = Record<string, { what: string; sent: number; outcomes: Record<string, number> }>;

export interface FloodOutput { counts: FloodCounts; elu: number }

const TICK_MS = 20;
const HIGH_WATER = 256 * 1024;            // bytes queued in a socket: skip its turn (the engine is not reading)

interface Flood {
  name: string;
  what: string;
  conns: number;
  /** Subprotocol offered (default: the JSON protocol). */
  protocol?: string;
  /** Frames sent once open (join a room), then `next` at `rate` per second; no next = send nothing. */
  first?(i: number): string[];
  next?(i: number, k: number): string;
  rate?: number;
  /** Reconnect when closed (floods whose point is being closed). */
  reconnect?: boolean;
}

const input = workerData as FloodInput;
const room = (i: number): string => input.prefix + (i % input.rooms);
const OLDEST = '0000000000001';           // a since older than anything: the deepest recovery read
const NEAR_CAP = '\\u0001'.repeat(2600);  // ~15.6 KB stored as JSON: under CHAT_MAX_TEXT_BYTES (16 KiB)
const OVER_CAP = '\\u0001'.repeat(3000);  // ~18 KB stored: too_large
const OVERSIZE = 'x'.repeat(70 * 1024);   // a frame over CHAT_MAX_PAYLOAD (64 KiB): closed 1009

const FLOODS: Flood[] = [
  { name: 'text', what: 'control-character texts at and over the byte cap, into rooms of its own', conns: 20, rate: 200,
    first: (i) => [`{"op":"join","room":"${input.prefix}x${i}","limit":0}`],
    next: (i, k) => `{"op":"send","room":"${input.prefix}x${i}","text":"${k % 2 ? OVER_CAP : NEAR_CAP}","cid":"f${k}"}` },
  { name: 'joinleave', what: 'join/leave loop on the honest rooms (ENTER/QUIT in their history)', conns: 20, rate: 200,
    next: (i, k) => (k % 2 ? `{"op":"leave","room":"${room(i)}"}` : `{"op":"join","room":"${room(i)}","limit":0}`) },
  { name: 'since', what: `join with since=${OLDEST} (deepest recovery read), then leave, on the honest rooms`, conns: 10, rate: 200,
    next: (i, k) => (k % 2 ? `{"op":"leave","room":"${room(i + 7)}"}` : `{"op":"join","room":"${room(i + 7)}","since":"${OLDEST}","limit":100}`) },
  { name: 'history', what: 'history pages of 100 from the honest rooms', conns: 10, rate: 200,
    next: (i) => `{"op":"history","room":"${room(i + 3)}","limit":100}` },
  { name: 'typing', what: 'typing events into the honest rooms', conns: 10, rate: 200,
    first: (i) => [`{"op":"join","room":"${room(i + 5)}","limit":0}`],
    next: (i) => `{"op":"typing","room":"${room(i + 5)}"}` },
  { name: 'oversize', what: 'frames over CHAT_MAX_PAYLOAD, reconnecting after each close', conns: 4, rate: 50, reconnect: true,
    next: () => OVERSIZE },
  { name: 'conns', what: 'connections from one address, held open without a frame', conns: 1200 },
  { name: 'stomp-silent', what: 'STOMP connections that never send CONNECT', conns: 200, protocol: 'v12.stomp' },
];

const counts: FloodCounts = {};
let stopped = false;
const live: WsConn[] = [];
const timers: Array<() => void> = [];
/** Open flood connections that send, and what each is owed (frames, fractional) at the next tick. */
const senders: Array<{ conn: WsConn; f: Flood; i: number; owed: number }> = [];
let k = 0;
const ticker = setInterval(() => {
  for (const x of senders) {
    if (!x.conn.isOpen) continue;
    x.owed += (x.f.rate! * input.scale * TICK_MS) / 1000;
    if (x.conn.socket.writableLength > HIGH_WATER) { x.owed = 0; count(x.f.name, 'skipped (socket full)'); continue; }
    for (; x.owed >= 1; x.owed--) { x.conn.sendText(x.f.next!(x.i, k++)); counts[x.f.name].sent++; }
  }
}, TICK_MS);
timers.push(() => clearInterval(ticker));

function count(flood: string, outcome: string, n = 1): void {
  const o = counts[flood].outcomes;
  o[outcome] = (o[outcome] ?? 0) + n;
}

/** `"op":"x"` and, for errors, `"code":"y"` of a reply, without parsing the rest. */
function outcomeOf(s: string): string {
  const op = /"op":"([a-z]+)"/.exec(s)?.[1] ?? (s.startsWith('ERROR') ? 'stomp ERROR' : 'other');
  if (op !== 'error') return op;
  return 'error ' + (/"code":"([a-z_]+)"/.exec(s)?.[1] ?? '?');
}

function runFlood(f: Flood, index: number): void {
  counts[f.name] = { what: f.what, sent: 0, outcomes: {} };
  const localAddress = `127.0.1.${index + 1}`;
  const target: WsTarget = { ...input.target, protocol: f.protocol ?? input.target.protocol };
  const open = (i: number): void => {
    if (stopped) return;
    const user = `hostile-${f.name}-${i}`;
    const path = `${target.path}${target.path.includes('?') ? '&' : '?'}user=${user}&name=${user}`;
    const h: WsHandlers = {
      open(conn) {
        count(f.name, 'opened');
        for (const frame of f.first?.(i) ?? []) conn.sendText(frame);
        if (f.next) senders.push({ conn, f, i, owed: 0 });
      },
      message(_conn, buf, start, end) { count(f.name, outcomeOf(buf.toString('latin1', start, Math.min(end, start + 200)))); },
      close(conn, code) {
        count(f.name, `closed ${code}`);
        const at = live.indexOf(conn);
        if (at >= 0) live.splice(at, 1);
        const si = senders.findIndex((x) => x.conn === conn);
        if (si >= 0) senders.splice(si, 1);
        if (f.reconnect && !stopped) setImmediate(() => open(i));
      },
    };
    live.push(new WsConn(target, path, localAddress, h, i));
  };
  // open in waves of 100 so a 1,200-connection flood does not stall the thread
  const wave = (from: number): void => {
    for (let i = from; i < Math.min(f.conns, from + 100); i++) open(i);
    if (from + 100 < f.conns && !stopped) { const t = setTimeout(() => wave(from + 100), 50); timers.push(() => clearTimeout(t)); }
  };
  wave(0);
}

function runHttpFlood(index: number): void {
  const name = 'http';
  counts[name] = { what: 'HTTP API history requests from one address, 4 in flight back to back', sent: 0, outcomes: {} };
  const u = input.target;
  for (let w = 0; w < 4; w++) {
    const conn = new HttpConn(u.host, u.port, `127.0.1.${index + 1}`);
    const go = (): void => {
      if (stopped) { conn.close(); return; }
      counts[name].sent++;
      conn.get(`/api/rooms/${encodeURIComponent(room(w))}/messages?limit=100`, (status, _body, err) => {
        count(name, err ? `failed ${err}` : `HTTP ${status}`);
        setImmediate(go);
      });
    };
    go();
  }
}

const elu0 = performance.eventLoopUtilization();
const chosen = (name: string): boolean => input.only === undefined || input.only.includes(name);
FLOODS.forEach((f, i) => { if (chosen(f.name)) runFlood(f, i); });
if (chosen('http')) runHttpFlood(FLOODS.length);

parentPort!.on('message', (m: string) => {
  if (m !== 'stop') return;
  stopped = true;
  for (const t of timers) t();
  const elu = performance.eventLoopUtilization(elu0).utilization;
  const out: FloodOutput = { counts, elu };
  parentPort!.postMessage(out);
  for (const c of live) c.destroy();
});
