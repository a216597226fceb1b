// history: autocannon against GET /api/rooms/:room/messages. Rooms are seeded over WebSocket first
// (each message acked, ids kept), then two closed-loop phases: `hot` (the latest page of a room,
// what every reconnecting client asks for) and `cold` (pages before a random older id: scrolling
// back). autocannon is closed-loop (not coordinated-omission corrected); its latencies say so.
import autocannon from 'autocannon';
import { Meter, nowUs, type Correctness, type RunResult } from '../lib/stats.ts';
import { summarize, newHist } from '../lib/hist.ts';
import { roomName, type Sink } from '../lib/transport.ts';
import { round1 } from '../lib/roomload.ts';
import type { Scenario } from './types.ts';

const PER_ROOM_DEFAULT = 2000;
const IN_FLIGHT = 64;

export const history: Scenario = {
  name: 'history',
  summary: 'seed rooms over WS, then autocannon GET /api/rooms/:room/messages: hot (latest 50) and cold (before a random id) pages',
  defaults: { clients: 50, rooms: 10, rate: PER_ROOM_DEFAULT, durationS: 10, warmupS: 1, drainS: 5, findMaxStart: 0 },
  rated: false,
  async run(o, env) {
    const startedAt = new Date().toISOString();
    const perRoom = o.rate; // --rate here means messages seeded per room
    const c0: Correctness = { gaps: 0, duplicates: 0, missing: 0, unacked: 0, dupAcks: 0, earlyMsgs: 0, disconnects: 0, failedConnects: 0, otherFailures: 0, ok: true, notes: [], examples: [] };
    const ids: string[][] = Array.from({ length: o.rooms }, () => []);
    const sentPerRoom = new Int32Array(o.rooms), ackedPerRoom = new Int32Array(o.rooms);
    let opened = 0, acked = 0, closing = false;
    let wake: () => void = () => {};
    const meter = new Meter(env.sampler, `history/${env.serverLabel}`, () => 0);
    meter.from = 0; meter.to = Infinity;
    const sendMore = (r: number): void => {
      while (sentPerRoom[r] < perRoom && sentPerRoom[r] - ackedPerRoom[r] < IN_FLIGHT) { const k = r * 1e7 + sentPerRoom[r]++; transport.send(r, r, k, nowUs()); }
    };
    const sink: Sink = {
      opened() { opened++; wake(); },
      closed(_c, code) { if (closing) return; c0.disconnects++; meter.error(`closed_${code}`); wake(); },
      joined() {},
      ack(_c, room, _seq, k, tUs, id) { meter.onAck(nowUs(), tUs); ids[room].push(id); ackedPerRoom[room]++; acked++; void k; sendMore(room); wake(); },
      msg() {},
      refused(_c, code) { meter.error(code); c0.otherFailures++; wake(); },
    };
    const transport = env.transport(sink);
    const tSeed = performance.now();
    for (let r = 0; r < o.rooms; r++) transport.connect(r, `seed${r}`);
    await until(() => opened + c0.disconnects >= o.rooms, 30_000, (f) => { wake = f; });
    for (let r = 0; r < o.rooms; r++) sendMore(r);
    await until(() => acked >= perRoom * o.rooms || c0.disconnects > 0 || c0.otherFailures > 0, 120_000, (f) => { wake = f; });
    const seedS = (performance.now() - tSeed) / 1000;
    closing = true;
    for (let r = 0; r < o.rooms; r++) transport.close(r);
    setTimeout(() => transport.destroyAll(), 300);
    c0.unacked = perRoom * o.rooms - acked;
    process.stderr.write(`[history/${env.serverLabel}] seeded ${acked} messages in ${o.rooms} rooms in ${seedS.toFixed(1)} s (${Math.round(acked / seedS)}/s); autocannon ${o.clients} connections x ${o.durationS} s per phase\n`);
    for (const a of ids) a.sort();

    const base = env.httpBase;
    const path = (r: number): string => `/api/rooms/${encodeURIComponent(roomName(env.prefix, r))}/messages`;
    let n = 0;
    const phase = async (name: string, pick: () => string): Promise<Record<string, unknown>> => {
      meter.start();
      const res = await autocannon({
        url: base, connections: o.clients, duration: o.durationS,
        requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: pick() }) }],
      });
      meter.stop();
      return {
        phase: name, reqPerS: round1(res.requests.average), total: res.requests.total, non2xx: res.non2xx, errors: res.errors, timeouts: res.timeouts,
        p50Ms: res.latency.p50, p90Ms: res.latency.p90, p99Ms: res.latency.p99, p999Ms: res.latency.p99_9, maxMs: res.latency.max,
        mbPerS: round1(res.throughput.average / 1e6),
      };
    };
    const hot = await phase('hot', () => path(n++ % o.rooms) + '?limit=50');
    const cold = await phase('cold', () => {
      const r = n++ % o.rooms;
      const a = ids[r];
      return path(r) + '?limit=50&before=' + (a.length ? a[Math.floor(Math.random() * a.length)] : '');
    });
    for (const p of [hot, cold]) {
      if ((p.non2xx as number) > 0) { meter.error(`${p.phase}_non2xx`); c0.otherFailures += p.non2xx as number; }
      if ((p.errors as number) > 0) meter.error(`${p.phase}_errors`);
    }
    c0.ok = c0.unacked + c0.disconnects + c0.otherFailures === 0;
    const res: RunResult = {
      scenario: 'history', server: env.serverLabel, url: env.url, transport: 'autocannon', startedAt,
      params: { rooms: o.rooms, messagesPerRoom: perRoom, connections: o.clients, durationS: o.durationS },
      offeredRate: 0, sentRate: 0, achievedRate: hot.reqPerS as number, acksPerS: round1(acked / seedS), deliveriesPerS: 0,
      latency: { ack: summarize(meter.ack), delivery: summarize(newHist()), connect: summarize(newHist()) },
      curves: meter.curves(), errors: meter.errorsObject(), resources: meter.resources(), correctness: c0, timeline: meter.timeline,
      sustainable: c0.ok, verdict: c0.ok ? `hot ${hot.reqPerS} req/s (p99 ${hot.p99Ms} ms), cold ${cold.reqPerS} req/s (p99 ${cold.p99Ms} ms)` : 'errors',
      extra: { seedMsgsPerS: round1(acked / seedS), hot, cold },
    };
    return res;
  },
};

async function until(cond: () => boolean, timeoutMs: number, setWake: (f: () => void) => void): Promise<void> {
  if (cond()) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    setWake(() => { if (cond()) { clearTimeout(t); resolve(); } });
  });
}
