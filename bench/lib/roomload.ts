// The open-loop room load behind chat, fanout, direct and soak: connect every client, join its
// rooms, send at a fixed aggregate rate (latency from the intended send time, as wrk2 does), drain,
// then check every member got every message of its rooms exactly once and in seq order.
import { Meter, nowUs, openLoop, verdict, type Correctness, type RunResult } from './stats.ts';
import { newHist, record, summarize } from './hist.ts';
import { roomName, type Sink, type Transport } from './transport.ts';
import type { ProcSampler } from './proc.ts';
import { HttpConn } from './httpclient.ts';
import { uintField } from './scan.ts';
import { sourceAddress } from './wsclient.ts';

export interface RoomLoadSpec {
  scenario: string;
  clients: number;
  rooms: number;
  /** Rooms of client c. */
  membership(c: number): number[];
  /** (client, room) pairs that send, used round-robin. */
  senders: Array<[number, number]>;
  rate: number;
  durationS: number;
  warmupS: number;
  drainS: number;
  connectConcurrency: number;
  p99LimitMs?: number;
  /** Called while the load runs, each `afterS` seconds after the first send (soak: a memory probe). */
  during?: { afterS: number; run: () => void }[];
}

export interface RunEnv {
  serverLabel: string;
  /** ws://... (or http://... for socketio) and the matching http://host:port for the HTTP API. */
  url: string;
  httpBase: string;
  /** Unique per run: room names are prefix + index. */
  prefix: string;
  sampler: ProcSampler;
  /** How many servers the clients are spread over (several --url, or --nodes). */
  servers: number;
  /**
   * Builds the transport for a run, given the sink it must feed; with several servers, nodeOf(c)
   * (0..servers-1) is client c's server (default c % servers).
   */
  transport(sink: Sink, nodeOf?: (c: number) => number): Transport;
  /** Server i for failure reports: '' with one server, else e.g. ' (node 2, ws://127.0.0.1:40001/ws)'. */
  serverName(i: number): string;
}

const ST_SENT = 1, ST_ACKED = 2, ST_REFUSED = 3, ST_SKIPPED = 4;
const NOT_JOINED = -1, START_UNKNOWN = -2; // slotNext values below any seq

/**
 * Each room's last seq from `GET /api/rooms/:room/messages?limit=1` (0 for an empty room), 16 requests
 * in flight. For protocols whose join carries no seq (STOMP): before sending starts (every member is
 * subscribed, nothing is being sent) it is every member's start; after the drain, the room's true end.
 */
export async function fetchLastSeqs(httpBase: string, prefix: string, rooms: number[]): Promise<Map<number, number>> {
  const u = new URL(httpBase);
  const out = new Map<number, number>();
  let next = 0;
  const worker = async (w: number): Promise<void> => {
    const conn = new HttpConn(u.hostname, Number(u.port), sourceAddress(w, u.hostname));
    try {
      while (next < rooms.length) {
        const r = rooms[next++];
        const path = `/api/rooms/${encodeURIComponent(roomName(prefix, r))}/messages?limit=1`;
        const seq = await new Promise<number>((resolve, reject) => conn.get(path, (status, body, err) => {
          if (err || status !== 200) reject(new Error(`GET ${path}: ${err ?? status} ${body.slice(0, 200)}`));
          else resolve(Math.max(0, uintField(body, '"seq":'))); // {"messages":[]} = an empty room: 0
        }));
        out.set(r, seq);
      }
    } finally { conn.close(); }
  };
  await Promise.all(Array.from({ length: Math.min(16, rooms.length) }, (_, w) => worker(w)));
  return out;
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runRoomLoad(spec: RoomLoadSpec, env: RunEnv): Promise<RunResult> {
  const startedAt = new Date().toISOString();
  // membership as flat typed arrays (struct of arrays): slot s = one (client, room) subscription
  const slotBase = new Int32Array(spec.clients + 1);
  const slotRoomList: number[] = [];
  for (let c = 0; c < spec.clients; c++) { slotBase[c] = slotRoomList.length; slotRoomList.push(...spec.membership(c)); }
  slotBase[spec.clients] = slotRoomList.length;
  const nSlots = slotRoomList.length;
  const slotRoom = Int32Array.from(slotRoomList);
  const slotNext = new Float64Array(nSlots).fill(NOT_JOINED); // next expected seq; -1 = not joined yet, -2 = joined, start unknown
  const roomLast = new Float64Array(spec.rooms);     // highest seq seen per room (acks and msgs)
  const total = Math.ceil(spec.rate * (spec.warmupS + spec.durationS));
  const status = new Uint8Array(total);
  const connectStart = new Float64Array(spec.clients);
  const wasOpen = new Uint8Array(spec.clients);
  let opened = 0, failed = 0, joined = 0, closing = false, startsUnknown = false;
  let acked = 0, sentCount = 0;
  const c0: Correctness = { gaps: 0, duplicates: 0, missing: 0, unacked: 0, dupAcks: 0, earlyMsgs: 0, disconnects: 0, failedConnects: 0, otherFailures: 0, ok: true, notes: [], examples: [] };
  const meter = new Meter(env.sampler, `${spec.scenario}/${env.serverLabel}`, () => sentCount - acked);
  const S = spec.senders.length;
  const sendC = Int32Array.from(spec.senders.map((p) => p[0]));
  const sendR = Int32Array.from(spec.senders.map((p) => p[1]));
  // several servers: delivery latency split by whether sender and receiver share a node (the cross-node path is the cluster's own cost)
  const multi = env.servers > 1;
  const sameNode = newHist(), crossNode = newHist();
  // the first few failures of each kind, precisely (member, node, room, seqs): counts alone do not say where to look
  const exCount = new Map<string, number>();
  const example = (kind: string, text: string): void => {
    const n = exCount.get(kind) ?? 0;
    exCount.set(kind, n + 1);
    if (n < 5) c0.examples.push(`${kind}: ${text}`);
    else if (n === 5) c0.examples.push(`${kind}: ... (more)`);
  };
  const who = (c: number, room: number): string => `u${c}${env.serverName(nodeOf[c])} in room ${roomName(env.prefix, room)}`;
  let onConnectDone: () => void = () => {};
  let onJoinDone: () => void = () => {};

  const slotOf = (c: number, room: number): number => {
    for (let s = slotBase[c], e = slotBase[c + 1]; s < e; s++) if (slotRoom[s] === room) return s;
    return -1;
  };

  const sink: Sink = {
    opened(c) {
      meter.connect.recordValue(Math.max(1, nowUs() - connectStart[c]));
      opened++;
      wasOpen[c] = 1;
      for (let s = slotBase[c]; s < slotBase[c + 1]; s++) transport.join(c, slotRoom[s], 0);
      onConnectDone();
    },
    closed(c, code) {
      if (closing) return;
      if (!wasOpen[c]) { failed++; meter.error(`connect_${code}`); onConnectDone(); return; }
      c0.disconnects++;
      meter.error(`closed_${code}`);
      example('disconnect', `u${c}${env.serverName(nodeOf[c])} closed under us (${code})`);
    },
    joined(c, room, seq) {
      const s = slotOf(c, room);
      if (s < 0) { meter.error('joined_unknown_room'); return; }
      if (slotNext[s] === NOT_JOINED) joined++;
      if (seq < 0) { slotNext[s] = START_UNKNOWN; startsUnknown = true; } // resolved over HTTP once every member is in
      else {
        slotNext[s] = seq + 1;
        if (seq > roomLast[room]) roomLast[room] = seq;
      }
      onJoinDone();
    },
    ack(c, room, seq, k, tUs) {
      if (k < 0 || k >= total || status[k] === 0) { c0.otherFailures++; meter.error('ack_unknown_cid'); example('ack of an unknown cid', `${who(c, room)}, seq ${seq}, send #${k}`); return; }
      if (status[k] === ST_ACKED) { c0.dupAcks++; example('duplicate ack', `send #${k} of ${who(c, room)}, seq ${seq}`); return; }
      status[k] = ST_ACKED;
      acked++;
      meter.onAck(nowUs(), tUs);
      if (room >= 0 && seq > roomLast[room]) roomLast[room] = seq;
    },
    msg(c, room, seq, k, tUs) {
      if (k >= 0) {
        const now = nowUs();
        meter.onDelivery(now, tUs);
        if (multi && tUs >= meter.from && tUs < meter.to) record(nodeOf[sendC[k % S]] === nodeOf[c] ? sameNode : crossNode, now - tUs);
      }
      const s = room < 0 ? -1 : slotOf(c, room);
      if (s < 0) { c0.otherFailures++; meter.error('msg_for_unjoined_room'); example('msg for a room not joined', `u${c}${env.serverName(nodeOf[c])}: room index ${room}, seq ${seq}`); return; }
      const nx = slotNext[s];
      if (nx === START_UNKNOWN) {            // subscribed, start not resolved yet: nothing of ours is sent before it is
        if (k >= 0) { c0.earlyMsgs++; example('early msg', `${who(c, room)}: seq ${seq} (send #${k}) before the start was known`); }
        return;                              // someone else's (an ENTER): below the start the HTTP API will give
      }
      if (nx < 0) { c0.earlyMsgs++; example('early msg', `${who(c, room)}: seq ${seq} before its joined`); } // a contract violation
      else if (seq === nx) slotNext[s] = nx + 1;
      else if (seq < nx) { c0.duplicates++; example('duplicate/out of order', `${who(c, room)}: seq ${seq} after ${nx - 1}`); }
      else { c0.gaps += seq - nx; example('gap', `${who(c, room)}: expected seq ${nx}, got ${seq} (${seq - nx} skipped: ${nx}${seq - nx > 1 ? '..' + (seq - 1) : ''})`); slotNext[s] = seq + 1; }
      if (seq > roomLast[room]) roomLast[room] = seq;
    },
    refused(_c, code, k) {
      meter.error(code);
      if (k >= 0 && k < total && status[k] === ST_SENT) { status[k] = ST_REFUSED; acked++; }
    },
  };
  // several servers: round-robin within each room (a member's rank in its first room), so every
  // room's members sit on different nodes; plain c % servers would put all of room c % rooms on one
  // node whenever servers divides the room count
  const nodeOf = new Int32Array(spec.clients);
  if (env.servers > 1) {
    const rank = new Int32Array(spec.rooms);
    for (let c = 0; c < spec.clients; c++) {
      const first = slotBase[c] < slotBase[c + 1] ? slotRoom[slotBase[c]] : -1;
      nodeOf[c] = first < 0 ? c % env.servers : rank[first]++ % env.servers;
    }
  }
  const transport = env.transport(sink, (c) => nodeOf[c]);

  // 1. connect, bounded concurrency; each client joins its rooms as soon as it is open
  const tConnect = performance.now();
  await new Promise<void>((resolve) => {
    let next = 0;
    const pump = (): void => {
      while (next < spec.clients && next - (opened + failed) < spec.connectConcurrency) {
        connectStart[next] = nowUs();
        transport.connect(next, `u${next}`);
        next++;
      }
      if (opened + failed >= spec.clients) resolve();
    };
    onConnectDone = pump;
    pump();
  });
  const connectS = (performance.now() - tConnect) / 1000;
  c0.failedConnects = failed;
  if (opened === 0) { transport.destroyAll(); throw new Error(`${env.serverLabel}: no client could connect to ${env.url} (${[...meter.errors.keys()].join(', ')})`); }
  // 2. wait for every joined
  await Promise.race([new Promise<void>((resolve) => { onJoinDone = () => { if (joined >= nSlots - countSlotsOfFailed()) resolve(); }; onJoinDone(); }), sleep(30_000)]);
  function countSlotsOfFailed(): number {
    let n = 0;
    for (let c = 0; c < spec.clients; c++) if (!transport.isOpen(c)) n += slotBase[c + 1] - slotBase[c];
    return n;
  }
  if (joined < nSlots) {
    c0.notes.push(`${nSlots - joined} of ${nSlots} joins never answered`);
    for (let c = 0; c < spec.clients; c++) for (let s = slotBase[c]; s < slotBase[c + 1]; s++) if (slotNext[s] === NOT_JOINED && transport.isOpen(c)) example('join never answered', who(c, slotRoom[s]));
  }
  // 2b. joins without a seq (STOMP): every member is subscribed and nothing is sent yet, so each
  // room's last seq now is where every member's stream must start
  const roomsWithMembers = [...new Set(slotRoom)];
  if (startsUnknown) {
    const last = await fetchLastSeqs(env.httpBase, env.prefix, roomsWithMembers);
    for (let s = 0; s < nSlots; s++) {
      if (slotNext[s] !== START_UNKNOWN) continue;
      const l = last.get(slotRoom[s])!;
      slotNext[s] = l + 1;
      if (l > roomLast[slotRoom[s]]) roomLast[slotRoom[s]] = l;
    }
  }
  process.stderr.write(`[${spec.scenario}/${env.serverLabel}] ${opened}/${spec.clients} connected in ${connectS.toFixed(1)} s, ${joined}/${nSlots} joined; ` +
    `offering ${spec.rate} msgs/s for ${spec.warmupS}+${spec.durationS} s\n`);

  // 3. open-loop sending: every tick sends whatever is due by now, each with its intended time
  const t0 = nowUs() + 2000;
  const loadFromUs = monoUs();
  meter.from = t0 + spec.warmupS * 1e6;
  meter.to = meter.from + spec.durationS * 1e6;
  meter.start();
  const probes = (spec.during ?? []).map((d) => setTimeout(d.run, d.afterS * 1000));
  await openLoop(spec.rate, total, t0, (k, intended, now) => {
    const i = k % S, c = sendC[i];
    if (!transport.isOpen(c)) { status[k] = ST_SKIPPED; meter.error('send_on_closed_connection'); return; }
    status[k] = ST_SENT;
    sentCount++;
    transport.send(c, sendR[i], k, intended);
    meter.onSent(now, intended);
  });
  for (const p of probes) clearTimeout(p);
  const late = (spec.during ?? []).filter((d) => d.afterS * 1e6 > nowUs() - t0);
  if (late.length) process.stderr.write(`[${spec.scenario}] the sends stopped before ${late.length} probe(s) due at ${late.map((d) => d.afterS).join(', ')} s; not run\n`);

  // 4. drain: wait for outstanding acks and deliveries, bounded
  const caughtUp = (): boolean => {
    if (acked < sentCount) return false;
    for (let s = 0; s < nSlots; s++) if (slotNext[s] >= 0 && slotNext[s] - 1 < roomLast[slotRoom[s]]) return false;
    return true;
  };
  const drainEnd = performance.now() + spec.drainS * 1000;
  while (!caughtUp() && performance.now() < drainEnd) await sleep(50);
  meter.stop();
  const loadToUs = monoUs();
  // 4b. acks without a seq (STOMP RECEIPTs): the rooms' true last seqs, so a message committed but
  // delivered to nobody still counts as missing
  if (startsUnknown) {
    const last = await fetchLastSeqs(env.httpBase, env.prefix, roomsWithMembers);
    for (const [r, l] of last) if (l > roomLast[r]) roomLast[r] = l;
    if (!caughtUp()) { const until = performance.now() + 1000; while (!caughtUp() && performance.now() < until) await sleep(50); }
  }

  // 5. correctness
  const unackedBy = new Float64Array(env.servers), missingAt = new Float64Array(env.servers);
  for (let i = 0; i < total; i++) {
    if (status[i] !== ST_SENT) continue;
    c0.unacked++;
    unackedBy[nodeOf[sendC[i % S]]]++;
    example('unacked', `send #${i} by ${who(sendC[i % S], sendR[i % S])}`);
  }
  for (let c = 0; c < spec.clients; c++) {
    for (let s = slotBase[c]; s < slotBase[c + 1]; s++) {
      if (slotNext[s] < 0) continue;
      const short = roomLast[slotRoom[s]] - (slotNext[s] - 1);
      if (short <= 0) continue;
      c0.missing += short;
      missingAt[nodeOf[c]] += short;
      example('missing', `${who(c, slotRoom[s])}: stream ends at seq ${slotNext[s] - 1}, the room is at ${roomLast[slotRoom[s]]} (never got ${slotNext[s]}${short > 1 ? '..' + roomLast[slotRoom[s]] : ''})`);
    }
  }
  c0.missing += c0.gaps;
  if (multi) {
    const perNode = (what: string, a: Float64Array): void => { if (a.some((v) => v > 0)) c0.notes.push(`${what}: ${[...a].map((v, i) => `node ${i + 1} ${v}`).join(', ')}`); };
    perNode('never delivered by the end, by the member\'s node', missingAt);
    perNode('unacked by the sender\'s node', unackedBy);
  }
  c0.ok = c0.gaps + c0.duplicates + c0.missing + c0.unacked + c0.dupAcks + c0.earlyMsgs + c0.disconnects + c0.failedConnects + c0.otherFailures === 0 && joined === nSlots;

  // 6. close politely, then make sure nothing lingers
  closing = true;
  for (let c = 0; c < spec.clients; c++) transport.close(c);
  await sleep(300);
  transport.destroyAll();

  const membersPerRoom = nSlots / spec.rooms;
  const res: RunResult = {
    scenario: spec.scenario, server: env.serverLabel, url: env.url, transport: transport.kind, startedAt,
    params: { clients: spec.clients, rooms: spec.rooms, senders: S, rate: spec.rate, durationS: spec.durationS, warmupS: spec.warmupS, membersPerRoom },
    offeredRate: spec.rate,
    sentRate: round1(meter.wSent / spec.durationS),
    achievedRate: round1(meter.wAcks / spec.durationS),
    acksPerS: round1(meter.wAcks / spec.durationS),
    deliveriesPerS: round1(meter.wDeliveries / spec.durationS),
    latency: meter.latency(), curves: meter.curves(), errors: meter.errorsObject(),
    resources: meter.resources(), correctness: c0, timeline: meter.timeline,
    sustainable: false, verdict: '',
    extra: {
      // every ack over the run, warm-up and drain included (the denominator of --profile's us/message)
      messagesAcked: acked,
      // CLOCK_MONOTONIC in us, the clock of V8's .cpuprofile timestamps: --profile counts only samples between these
      loadWindowUs: [loadFromUs, loadToUs],
      connectSeconds: round1(connectS), expectedDeliveriesPerS: round1((meter.wAcks / spec.durationS) * membersPerRoom),
      ...(multi ? { deliverySameNode: brief(sameNode), deliveryCrossNode: brief(crossNode) } : {}),
    },
  };
  Object.assign(res, verdict(res, spec.p99LimitMs));
  return res;
}

/** CLOCK_MONOTONIC in us (process.hrtime), the clock V8 stamps .cpuprofile samples with. */
const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

export const round1 = (v: number): number => Math.round(v * 10) / 10;
const brief = (h: ReturnType<typeof newHist>): { n: number; p50: number; p99: number; max: number } => { const x = summarize(h); return { n: x.count, p50: x.p50, p99: x.p99, max: x.max }; };
