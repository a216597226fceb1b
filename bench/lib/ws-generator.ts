// A second, independently written generator of the room loads (`chat`, `direct`), for
// `npm run bench -- crosscheck`: the `ws` package as client (not the harness's lean RFC 6455
// client), every frame JSON.parse'd (not scanned), its own open-loop schedule on a
// setTimeout(0)-driven hrtime loop, and its own latency arithmetic (exact sorted samples, no HDR
// histogram). Rooms of `clients / rooms` members; every client sends in turn (client k % clients
// sends the k-th message), in the room the load's `order` puts it in (lib/room-order.ts: the load's
// definition, shared with the harness). Ack and delivery latency from each send's intended time.
import WebSocket from 'ws';
import { roomIndex, type SendOrder } from './room-order.ts';

export interface WsGenOptions {
  url: string; clients: number; rooms: number; rate: number; warmupS: number; durationS: number; drainS: number;
  /**
   * Room and user names start with this (unique per run): the engine answers a (user, cid) it has
   * seen as a retry (the first ack, no delivery), so two runs must not share users.
   */
  prefix: string;
  /** Which room client c is in (lib/room-order.ts); 'grouped' by default. */
  order?: SendOrder;
  /** Called as the first send is due and after the last one was sent (e.g. to sample server CPU). */
  onLoad?: (phase: 'start' | 'end') => void;
}

export interface WsGenResult {
  offered: number; achieved: number; ackP50: number; ackP99: number; deliveryP99: number;
  sent: number; acked: number; delivered: number; expectedDeliveries: number; genCpu: number; errors: string[];
}

const TEXT = 'The quick brown fox jumps over the lazy dog; pack my box: 0123456'; // 64 bytes, as the harness
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] * 10) / 10;
}

export async function wsGenerate(o: WsGenOptions): Promise<WsGenResult> {
  const size = Math.max(1, Math.floor(o.clients / o.rooms));
  const roomOf = (c: number): string => `${o.prefix}${roomIndex(o.order ?? 'grouped', c, o.clients, o.rooms)}`;
  const socks: WebSocket[] = [];
  const errors: string[] = [];
  const intended: number[] = [];
  const ackLat: number[] = [];
  const delLat: number[] = [];
  let acked = 0, delivered = 0, sent = 0, joined = 0, measuredAcks = 0;
  let from = Infinity, to = Infinity;
  const onFrame = (raw: WebSocket.RawData): void => {
    const f = JSON.parse(raw.toString()) as { op: string; cid?: string; room?: string };
    if (f.op === 'joined') { joined++; return; }
    if (f.op === 'error') { if (errors.length < 5) errors.push(raw.toString()); return; }
    if ((f.op !== 'ack' && f.op !== 'msg') || typeof f.cid !== 'string' || !f.cid.startsWith('x')) return;
    const k = Number(f.cid.slice(1));
    const t = intended[k];
    if (t === undefined) return;
    const now = nowMs();
    if (f.op === 'ack') {
      acked++;
      if (t >= from && t < to) { measuredAcks++; ackLat.push(now - t); }
    } else {
      delivered++;
      if (t >= from && t < to) delLat.push(now - t);
    }
  };
  // connect and join, 200 at a time, each from its own 127.0.0.x source address
  for (let c0 = 0; c0 < o.clients; c0 += 200) {
    await Promise.all(Array.from({ length: Math.min(200, o.clients - c0) }, (_, i) => new Promise<void>((resolve, reject) => {
      const c = c0 + i;
      const ws = new WebSocket(`${o.url}?user=${o.prefix}w${c}&name=w${c}`, { perMessageDeflate: false, localAddress: `127.0.${1 + Math.floor(c / 250)}.${2 + (c % 250)}` });
      socks[c] = ws;
      ws.on('message', onFrame);
      ws.once('open', () => { ws.send(JSON.stringify({ op: 'join', room: roomOf(c), limit: 0 })); resolve(); });
      ws.once('error', reject);
    })));
  }
  const joinBy = nowMs() + 30_000;
  while (joined < o.clients && nowMs() < joinBy) await new Promise((r) => setTimeout(r, 20));
  if (joined < o.clients) errors.push(`only ${joined} of ${o.clients} joined`);
  // open loop: send k is due at start + k / rate, whatever the server answered
  const cpu0 = process.cpuUsage();
  const start = nowMs() + 10;
  from = start + o.warmupS * 1000;
  to = from + o.durationS * 1000;
  const total = Math.round(o.rate * (o.warmupS + o.durationS));
  o.onLoad?.('start');
  await new Promise<void>((resolve) => {
    const loop = (): void => {
      const due = Math.min(total, Math.floor((nowMs() - start) * o.rate / 1000) + 1);
      for (; sent < due; sent++) {
        const c = sent % o.clients;
        intended[sent] = start + sent * 1000 / o.rate;
        socks[c].send(`{"op":"send","room":"${roomOf(c)}","text":"${TEXT}","cid":"x${sent}"}`);
      }
      if (sent >= total) resolve(); else setTimeout(loop, 0);
    };
    loop();
  });
  o.onLoad?.('end');
  const drainBy = nowMs() + o.drainS * 1000;
  const expectedDeliveries = sent * size;
  while ((acked < sent || delivered < expectedDeliveries) && nowMs() < drainBy) await new Promise((r) => setTimeout(r, 20));
  const cpu = process.cpuUsage(cpu0);
  const genCpu = Math.round((cpu.user + cpu.system) / 1000 / (nowMs() - start) * 100);
  for (const ws of socks) ws.terminate();
  ackLat.sort((a, b) => a - b);
  delLat.sort((a, b) => a - b);
  return {
    offered: o.rate, achieved: Math.round(measuredAcks / o.durationS), ackP50: pct(ackLat, 0.5), ackP99: pct(ackLat, 0.99), deliveryP99: pct(delLat, 0.99),
    sent, acked, delivered, expectedDeliveries, genCpu, errors,
  };
}
