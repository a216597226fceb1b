// Reliability helpers shared by test/reliability.test.ts and scripts/crash-cycles.ts: the crash
// cycle (load, kill -9, restart, audit of the store), the frame fuzzer and /proc sampling. The raw
// RFC 6455 client (idle, half-open and malformed-framing connections) is test/support/raw-ws.ts.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { Client, getJson, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';
import { sleep, until } from './support/wait.ts';

/** The pipeline in isolation: no ENTER/QUIT messages, no send limits (count or bytes), and no
 *  HTTP rate limit (an audit pages through every room's history as fast as the engine answers). */
export const CORE = { CHAT_ENTER_QUIT: 'off', ...SEND_LIMITS_OFF, CHAT_HTTP_RATE: '0' };

/** A listener that counts frames without the O(n) scans of Client.waitFor (for long runs). */
export function tap(c: Client, onFrame: (f: Frame) => void): void {
  c.ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) onFrame(JSON.parse(data.toString()) as Frame);
  });
}

/** The client's TCP socket (to pause reading, as a slow or half-open peer does). */
export function socketOf(c: Client): net.Socket {
  return (c.ws as unknown as { _socket: net.Socket })._socket;
}

// ---- /proc and /metrics ------------------------------------------------------------------------

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Open sockets of a process (`socket:[inode]` entries of /proc/<pid>/fd). */
export function socketFdCount(pid: number): number {
  let n = 0;
  for (const f of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${f}`).startsWith('socket:')) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

export async function metric(http: string, name: string): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`metric ${name} not found in /metrics`);
  return Number(m[1]);
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

/** Every stored message of a room over HTTP, paging backwards with `before`; oldest first. */
export async function fetchRoom(http: string, room: string): Promise<Frame[]> {
  const pages: Frame[][] = [];
  let before: string | undefined;
  for (;;) {
    const { status, body } = await getJson(`${http}/api/rooms/${room}/messages?limit=100${before ? `&before=${before}` : ''}`);
    if (status === 404) return [];
    if (status !== 200) throw new Error(`history of ${room}: HTTP ${status} ${JSON.stringify(body)}`);
    pages.unshift(body.messages as Frame[]);
    if (!body.more || body.messages.length === 0) break;
    before = body.messages[0].id;
  }
  return pages.flat();
}

// ---- crash cycles ------------------------------------------------------------------------------

export interface CrashOptions {
  clients: number;
  rooms: number;
  /** Aggregate offered sends per second over all clients. */
  rate: number;
  /** Kill once this many sends of the cycle were acked (plus a random 0..200 ms). */
  killAfterAcks: number;
  env?: Record<string, string>;
  log?: (line: string) => void;
  /** Draws the extra 0..200 ms before each kill; seeded by the caller so a run replays. */
  random?: () => number;
  /**
   * Cluster: how many nodes share the store (default 1). Client i is on node
   * floor(i / rooms) % nodes, so every room has members on every node; cycle n kills node
   * (n - 1) % nodes while the others run on, and proves their members caught up.
   */
  nodes?: number;
  /** Starts node i (0-based); default: one engine on the run's data dir with `env`. */
  start?: (node: number) => Promise<EngineProc>;
  /**
   * Cluster: each room's highest stored seq, read from the database itself (a node's own answer
   * would come from its hot window, which is what the survivors check is about).
   */
  storedLastSeqs?: (rooms: string[]) => Promise<Map<string, number>>;
}

interface SendRec { user: string; room: string; cid: string; text: string }
interface AckRec { id: string; room: string; seq: number }
interface SeenRec { room: string; seq: number; cid: string | undefined; from: string }

export interface AuditResult {
  acked: number;
  stored: number;
  lost: number;
  duplicates: number;
  gaps: number;
  /** msg frames some client received whose message is not in the store (or differs from it). */
  phantom: number;
  /** acks whose (from.id, cid) is stored under another id. */
  mismatched: number;
  epochChanged: number;
  /** A member's live stream of its room not going on at +1 (a gap, a repeat, a msg before joined). */
  streamBreaks: number;
  /** Cluster: members of a surviving node that never got a room's last stored message after a kill. */
  survivorsBehind: number;
  problems: string[];
}

/** True when an audit found a broken guarantee (what `npm run crash` exits 1 on). */
export function auditBroken(x: AuditResult): boolean {
  return x.lost + x.duplicates + x.gaps + x.phantom + x.mismatched + x.epochChanged + x.streamBreaks + x.survivorsBehind > 0;
}

/** State carried across the cycles of one data dir. */
export class CrashRun {
  readonly acked = new Map<string, AckRec>(); // key user\0cid
  readonly pending = new Map<string, SendRec>(); // sent, never acked (yet)
  readonly seen = new Map<string, SeenRec>(); // message id -> what a client received
  readonly epochs = new Map<string, string>();
  /** Delivery-order violations seen live and other problems found while running, for the report. */
  readonly streamProblems: string[] = [];
  /** A member's stream of a room not continuing at +1 (counted; the first ones are in streamProblems). */
  streamBreaks = 0;
  sent = 0;
  retried = 0;
  kills = 0;
  errors = new Map<string, number>();
  cycles: { cycle: number; acked: number; sent: number; killedAfterMs: number }[] = [];

  /** Members of a surviving node that did not catch up with their room after a kill. */
  survivorsBehind = 0;
  /** The nodes now running (null: killed, or not started yet). */
  private readonly running: (EngineProc | null)[];

  constructor(readonly dir: string, readonly o: CrashOptions) {
    this.running = new Array<EngineProc | null>(o.nodes ?? 1).fill(null);
  }

  /** Start every node that is not running; all of them, in node order. */
  private async startNodes(): Promise<EngineProc[]> {
    for (let i = 0; i < this.running.length; i++) {
      this.running[i] ??= await (this.o.start ? this.o.start(i) : startEngine({ ...CORE, ...this.o.env }, this.dir));
    }
    return this.running as EngineProc[];
  }

  /** Kill -9 whatever still runs and wait for it to exit (a failed cycle leaves nothing behind). */
  async killAll(): Promise<void> {
    await Promise.all(this.running.map(async (e, i) => {
      if (e === null) return;
      if (e.proc.exitCode === null && e.proc.signalCode === null) e.proc.kill('SIGKILL');
      await e.exited;
      this.running[i] = null;
    }));
  }

  /** The node client i talks to: consecutive blocks of `rooms` clients per node, so each room spans the nodes. */
  nodeOf(i: number): number {
    return Math.floor(i / this.o.rooms) % this.running.length;
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  room(i: number): string {
    return `crash-${i % this.o.rooms}`;
  }

  /** One cycle: start the nodes that are down, audit, resend what was never acked, load, kill -9 one node. */
  async cycle(n: number): Promise<AuditResult> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const nodes = await this.startNodes();
      const victim = (n - 1) % nodes.length;
      const audit = await this.audit(nodes[0]);
      const clients = await Promise.all(Array.from({ length: this.o.clients }, (_, i) => this.connect(nodes[this.nodeOf(i)], i)));
      // Resend every send the previous cycle never saw acked, with its original cid.
      const retries = [...this.pending.values()];
      this.retried += retries.length;
      for (const r of retries) clients[Number(r.user.split('-')[1])].send(r);
      let cycleAcks = 0;
      let counter = 0;
      const onAck = (): void => { cycleAcks++; };
      for (const c of clients) c.onAck = onAck;
      const started = Date.now();
      // Open loop: every tick, the sends that are due, round-robin over the clients.
      const tickMs = 5;
      let due = 0;
      timer = setInterval(() => {
        due += (this.o.rate * tickMs) / 1000;
        while (due >= 1) {
          due--;
          const i = counter++ % clients.length;
          const user = `cc-${i}`;
          const cid = `c${n}.${counter}`;
          this.sent++;
          clients[i].send({ user, room: this.room(i), cid, text: `m ${n} ${counter} ${'x'.repeat(counter % 64)}` });
        }
      }, tickMs);
      await until(`${this.o.killAfterAcks} acks in cycle ${n}`, () => (cycleAcks >= this.o.killAfterAcks ? true : undefined), 60_000, 5);
      await sleep(Math.floor((this.o.random ?? Math.random)() * 200));
      const dead = nodes[victim];
      dead.proc.kill('SIGKILL');
      this.kills++;
      await dead.exited;
      this.running[victim] = null;
      clearInterval(timer);
      const killedAfterMs = Date.now() - started;
      const onDead = clients.filter((_, i) => this.nodeOf(i) === victim);
      await Promise.all(onDead.map((c) => c.closed));
      const survivors = clients.filter((_, i) => this.nodeOf(i) !== victim);
      if (survivors.length > 0) {
        await this.catchUp(survivors);
        await Promise.all(survivors.map((c) => c.close()));
      }
      this.cycles.push({ cycle: n, acked: cycleAcks, sent: counter, killedAfterMs });
      this.log(`cycle ${n}: ${counter} sent, ${cycleAcks} acked, killed ${nodes.length > 1 ? `node ${victim + 1} ` : ''}after ${killedAfterMs} ms; pending ${this.pending.size}`);
      return audit;
    } catch (err) {
      clearInterval(timer);
      await this.killAll();
      throw err;
    }
  }

  /**
   * Cluster: a node died mid-load; every member on a surviving node must still get every message
   * of its room up to the last one stored, the dead node's committed ones included (read from the
   * store after CHAT_GAP_WAIT, or by the node's sweep when nothing follows them). Waits up to 25 s
   * (two sweeps); members still behind are counted in survivorsBehind.
   */
  private async catchUp(members: LoadClient[]): Promise<void> {
    const lastSeqs = this.o.storedLastSeqs;
    if (lastSeqs === undefined) throw new Error('a cluster crash run needs storedLastSeqs');
    const rooms = [...new Set(members.map((c) => c.room))];
    const behind = async (): Promise<LoadClient[]> => {
      const last = await lastSeqs(rooms);
      return members.filter((c) => c.lastSeq < (last.get(c.room) ?? 0));
    };
    const late = await until('members on the surviving nodes to catch up', async () => ((await behind()).length === 0 ? [] : undefined), 25_000, 100)
      .catch(() => behind());
    this.survivorsBehind += late.length;
    for (const c of late.slice(0, 10)) this.streamProblems.push(`survivor ${c.user} stopped at ${c.room}#${c.lastSeq} after the kill`);
  }

  /** The last step: restart, audit, resend what is pending, audit again, stop cleanly. */
  async finish(): Promise<{ before: AuditResult; after: AuditResult; stopCode: number | null }> {
    try {
      const nodes = await this.startNodes();
      const before = await this.audit(nodes[0]);
      const clients = await Promise.all(Array.from({ length: this.o.clients }, (_, i) => this.connect(nodes[this.nodeOf(i)], i)));
      const retries = [...this.pending.values()];
      this.retried += retries.length;
      for (const r of retries) clients[Number(r.user.split('-')[1])].send(r);
      await until('acks of every retried send', () => (this.pending.size === 0 ? true : undefined), 30_000);
      await Promise.all(clients.map((c) => c.close()));
      const after = await this.audit(nodes[0]);
      let stopCode: number | null = 0;
      for (const e of nodes) {
        const code = await e.stop('SIGTERM');
        if (code !== 0) stopCode = code;
      }
      return { before, after, stopCode };
    } finally {
      await this.killAll();
    }
  }

  private connect(eng: EngineProc, i: number): Promise<LoadClient> {
    return LoadClient.open(eng.url, `cc-${i}`, this.room(i), this);
  }

  onAck(user: string, f: Frame): void {
    const key = `${user}\u0000${f.cid}`;
    const prev = this.acked.get(key);
    if (prev && prev.id !== f.id) this.streamProblems.push(`ack of ${key} changed id ${prev.id} -> ${f.id}`);
    this.acked.set(key, { id: f.id, room: f.room, seq: f.seq });
    this.pending.delete(key);
  }

  streamBreak(what: string): void {
    this.streamBreaks++;
    if (this.streamBreaks <= 20) this.streamProblems.push(what);
  }

  onError(f: Frame): void {
    this.errors.set(f.code, (this.errors.get(f.code) ?? 0) + 1);
  }

  onJoined(f: Frame): void {
    const prev = this.epochs.get(f.room);
    if (prev !== undefined && prev !== f.epoch) this.streamProblems.push(`epoch of ${f.room} changed ${prev} -> ${f.epoch}`);
    this.epochs.set(f.room, f.epoch);
  }

  onMsg(f: Frame): void {
    this.seen.set(f.id, { room: f.room, seq: f.seq, cid: f.cid, from: f.from.id });
  }

  /** Everything the store holds against everything acked and everything any client received. */
  async audit(eng: EngineProc): Promise<AuditResult> {
    const r: AuditResult = { acked: this.acked.size, stored: 0, lost: 0, duplicates: 0, gaps: 0, phantom: 0, mismatched: 0, epochChanged: 0, streamBreaks: 0, survivorsBehind: this.survivorsBehind, problems: [] };
    const byId = new Map<string, Frame>();
    const byKey = new Map<string, Frame[]>();
    for (let k = 0; k < this.o.rooms; k++) {
      const room = `crash-${k}`;
      const msgs = await fetchRoom(eng.http, room);
      r.stored += msgs.length;
      msgs.forEach((m, i) => {
        if (m.seq !== i + 1) {
          r.gaps++;
          if (r.problems.length < 20) r.problems.push(`${room}: position ${i} has seq ${m.seq}`);
        }
        if (byId.has(m.id)) r.duplicates++;
        byId.set(m.id, m);
        const key = `${m.from.id}\u0000${m.cid}`;
        const list = byKey.get(key) ?? [];
        list.push(m);
        byKey.set(key, list);
      });
    }
    for (const list of byKey.values()) if (list.length > 1) r.duplicates += list.length - 1;
    for (const [key, a] of this.acked) {
      const list = byKey.get(key);
      if (!list) {
        r.lost++;
        if (r.problems.length < 20) r.problems.push(`lost: acked ${key.replace('\u0000', '/')} id ${a.id}`);
      } else if (list[0].id !== a.id || list[0].seq !== a.seq) {
        r.mismatched++;
        if (r.problems.length < 20) r.problems.push(`acked ${key.replace('\u0000', '/')} as ${a.id}#${a.seq}, stored as ${list[0].id}#${list[0].seq}`);
      }
    }
    for (const [id, s] of this.seen) {
      const m = byId.get(id);
      if (!m || m.seq !== s.seq || m.room !== s.room || m.cid !== s.cid || m.from.id !== s.from) {
        r.phantom++;
        if (r.problems.length < 20) r.problems.push(`received ${id} (${s.room}#${s.seq} ${s.cid}) but the store has ${m ? `${m.room}#${m.seq} ${m.cid}` : 'nothing'}`);
      }
    }
    r.epochChanged = this.streamProblems.filter((p) => p.startsWith('epoch')).length;
    r.streamBreaks = this.streamBreaks;
    r.problems.push(...this.streamProblems.slice(0, 20));
    return r;
  }
}

/** A lean load client on `ws`: joins its room, sends, and reports acks and msgs to the run. */
class LoadClient {
  onAck: () => void = () => {};
  readonly closed: Promise<void>;
  /** The last seq of its room this member got (its joined seq before any msg). */
  lastSeq = -1;

  private constructor(private readonly ws: WebSocket, readonly user: string, readonly room: string, private readonly run: CrashRun) {
    this.closed = new Promise((res) => ws.once('close', () => res()));
    ws.on('message', (data: Buffer) => this.onFrame(JSON.parse(data.toString()) as Frame));
    ws.on('error', () => {});
  }

  static async open(url: string, user: string, room: string, run: CrashRun): Promise<LoadClient> {
    const ws = new WebSocket(`${url}?user=${user}`, 'chat.v1.json');
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    const c = new LoadClient(ws, user, room, run);
    const joined = new Promise<void>((res) => { c.joinedResolve = res; });
    ws.send(JSON.stringify({ op: 'join', room, limit: 0 }));
    await joined;
    return c;
  }

  private joinedResolve: () => void = () => {};

  private onFrame(f: Frame): void {
    switch (f.op) {
      case 'joined':
        this.run.onJoined(f);
        this.lastSeq = f.seq;
        this.joinedResolve();
        break;
      case 'msg':
        if (this.lastSeq < 0) this.run.streamBreak(`${this.user}: msg ${f.room}#${f.seq} before joined`);
        else if (f.seq !== this.lastSeq + 1) this.run.streamBreak(`${this.user}: ${f.room} went ${this.lastSeq} -> ${f.seq}`);
        this.lastSeq = f.seq;
        this.run.onMsg(f);
        break;
      case 'ack':
        this.run.onAck(this.user, f);
        this.onAck();
        break;
      case 'error':
        this.run.onError(f);
        break;
    }
  }

  send(r: SendRec): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.run.pending.set(`${r.user}\u0000${r.cid}`, r);
    this.ws.send(JSON.stringify({ op: 'send', room: r.room, text: r.text, cid: r.cid }));
  }

  close(): Promise<void> {
    this.ws.close();
    return this.closed;
  }
}

// ---- the frame fuzzer --------------------------------------------------------------------------

/** A deterministic PRNG (mulberry32), so a failing fuzz run can be replayed with its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` bytes drawn from a seeded generator. */
export function seededBytes(r: () => number, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * 256);
  return out;
}

export interface FuzzFrame {
  data: string | Buffer;
  binary: boolean;
  kind: string;
}

const OPS = ['join', 'leave', 'send', 'history', 'read', 'typing', 'ping'];
const FIELDS = ['op', 'room', 'text', 'cid', 'since', 'before', 'after', 'limit', 'upTo', 'ref'];

/**
 * Frames for one connection's codec. Most are wrong in some way; a mutation may produce a valid
 * frame by chance, which the engine then simply serves.
 */
export class Fuzzer {
  private readonly r: () => number;
  private readonly packr = new Packr({ useRecords: false });

  constructor(seed: number, readonly rooms: string[]) {
    this.r = rng(seed);
  }

  private int(n: number): number {
    return Math.floor(this.r() * n);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** `n` bytes from the seeded generator (never the system's randomness: a run must replay). */
  private bytes(n: number): Buffer {
    return seededBytes(this.r, n);
  }

  /** A wrong value of any type. */
  value(depth = 0): unknown {
    switch (this.int(depth > 2 ? 14 : 18)) {
      case 0: return null;
      case 1: return this.r() < 0.5;
      case 2: return this.pick([0, -1, 1.5, -0, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, 2 ** 64, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 101, 1e-300]);
      case 3: return '';
      case 4: return 'x'.repeat(this.pick([1, 64, 65, 128, 129, 1000, 30_000]));
      case 5: return this.pick(['0000000000000', 'ZZZZZZZZZZZZZ', 'FZZZZZZZZZZZZ', '0K5Z3QY8W1T4B', '0k5z3qy8w1t4b', '0K5Z3QY8W1T4', 'IIIIIIIIIIIII', 'OOOOOOOOOOOOO']);
      case 6: return this.pick(['bad room!', '../etc/passwd', 'a/b', '', ' ', 'ok', this.pick(this.rooms), 'é', '\u0000', 'x'.repeat(65), '%2e%2e', 'null', '__proto__', 'constructor']);
      case 7: return this.pick(OPS);
      case 8: return '\ud800'; // a lone surrogate
      case 9: return '\u202e\u0000\uffff\ufeff';
      case 10: return this.bytes(this.int(40)).toString('latin1');
      case 11: return [];
      case 12: return {};
      case 13: return this.pick([-2147483649, 4294967296, 1e21, 1.2345678901234568e29]);
      case 14: return [this.value(depth + 1), this.value(depth + 1)];
      case 15: return { [this.pick(FIELDS)]: this.value(depth + 1) };
      case 16: return { __proto__: { op: 'ping' } as unknown, op: this.value(depth + 1) };
      default: return this.object(depth + 1);
    }
  }

  /** An op-shaped object with some fields right and some wrong. */
  object(depth = 0): Record<string, unknown> {
    const o: Record<string, unknown> = {};
    const op = this.r() < 0.85 ? this.pick(OPS) : this.value(depth + 1);
    if (this.r() < 0.95) o.op = op;
    const good: Record<string, () => unknown> = {
      room: () => this.pick(this.rooms),
      text: () => 'fuzz',
      cid: () => `f${this.int(1e9)}`,
      since: () => '0000000000000',
      before: () => 'ZZZZZZZZZZZZZ',
      after: () => '0000000000001',
      limit: () => 1 + this.int(50),
      upTo: () => '0000000000002',
      ref: () => `ref${this.int(1000)}`,
    };
    for (const f of FIELDS.slice(1)) {
      const roll = this.r();
      if (roll < 0.35) o[f] = good[f]();
      else if (roll < 0.6) o[f] = this.value(depth + 1);
    }
    if (this.r() < 0.1) o[this.pick(['extra', '__proto__', 'constructor', 'toString', ''])] = this.value(depth + 1);
    return o;
  }

  private deep(n: number, open: string, close: string): string {
    return open.repeat(n) + close.repeat(n);
  }

  /** One JSON-connection frame. */
  json(): FuzzFrame {
    const t = (data: string, kind: string): FuzzFrame => ({ data, binary: false, kind });
    const k = this.int(20);
    switch (k) {
      case 0: return t('', 'empty');
      case 1: return t(this.pick(['{', '}', '[', 'null', 'true', '1', '"op"', '[]', '{}', '{"op"}', '{"op":}', 'NaN', 'undefined', '{"op":"ping",}', "{'op':'ping'}", '\u0000']), 'not an object');
      case 2: { const s = JSON.stringify(this.object()); return t(s.slice(0, this.int(s.length)), 'truncated'); }
      case 3: return t(this.deep(this.pick([1000, 10_000, 32_000]), '[', ']'), 'deep nesting');
      case 4: return t(`{"op":"send","room":"${this.pick(this.rooms)}","cid":"d${this.int(1e6)}","text":${this.deep(20_000, '[', ']')}}`, 'deep field');
      case 5: return t(`{"op":"join","room":"${this.pick(this.rooms)}","limit":${this.pick(['1e400', '-1e400', '99999999999999999999999', '1.0000000000000001', '0.5', '-0', '1E2', '0x10'])}}`, 'huge number');
      case 6: return { data: Buffer.from([0x7b, 0x22, 0x6f, 0x70, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc0, 0xaf, 0x22, 0x7d]), binary: false, kind: 'invalid utf-8' };
      case 7: return { data: this.bytes(1 + this.int(200)), binary: true, kind: 'binary on json' };
      case 8: { const s = Buffer.from(JSON.stringify(this.object())); s[this.int(s.length)] = this.int(256); return t(s.toString('latin1'), 'byte flip'); }
      case 9: return t(JSON.stringify({ op: this.pick(OPS), room: this.pick(this.rooms), [this.pick(FIELDS)]: this.value() }), 'one field wrong');
      case 10: return t(`{"op":"send","room":"${this.pick(this.rooms)}","cid":"dup","cid":${JSON.stringify(this.value())},"text":"t"}`, 'duplicate keys');
      case 11: return t(JSON.stringify({ op: 'send', room: this.pick(this.rooms), cid: 'x'.repeat(this.pick([0, 129, 5000])), text: 'x' }), 'bad cid');
      case 12: return t(JSON.stringify({ op: 'ping', ref: this.value() }), 'bad ref');
      case 13: return t(`{"__proto__":{"op":"ping"},"constructor":{"prototype":{"polluted":1}},"op":${JSON.stringify(this.value())}}`, 'proto keys');
      default: return t(JSON.stringify(this.object()), 'mutated op');
    }
  }

  /** One msgpack-connection frame. */
  msgpack(): FuzzFrame {
    const b = (data: Buffer, kind: string): FuzzFrame => ({ data, binary: true, kind });
    const k = this.int(16);
    switch (k) {
      case 0: return b(this.bytes(1 + this.int(300)), 'garbage');
      case 1: return b(Buffer.from(this.pick([[0xc1], [0xdd, 0xff, 0xff, 0xff, 0xff], [0xdf, 0xff, 0xff, 0xff, 0xff], [0xdb, 0xff, 0xff, 0xff, 0xff, 0x41], [0xc6, 0x7f, 0xff, 0xff, 0xff], [0xd9], [0xcf], [0x81], [0x81, 0xa2, 0x6f, 0x70]])), 'bad length');
      case 2: return b(Buffer.from([...Array<number>(this.pick([1000, 30_000])).fill(0x91), 0xc0]), 'deep nesting');
      case 3: return b(Buffer.from([0xc7, 0x04, this.int(256) - 128, 1, 2, 3, 4]), 'ext type');
      case 4: return b(Buffer.from([0xd4, this.pick([0xff, 0x72, 0x65, 0x78, 0x69, 0x74, 0x73, 0x6d, 0x40]), this.int(256)]), 'fixext');
      case 5: return b(Buffer.from([0xd6, 0xff, 0xff, 0xff, 0xff, 0xff]), 'timestamp ext');
      case 6: { const p = this.packr.pack(this.object()); return b(p.subarray(0, this.int(p.length)), 'truncated'); }
      case 7: { const p = Buffer.from(this.packr.pack(this.object())); p[this.int(p.length)] = this.int(256); return b(p, 'byte flip'); }
      case 8: return b(Buffer.from(this.packr.pack({ op: 'join', room: this.pick(this.rooms), limit: this.pick([2 ** 63, -(2 ** 63), 1.5, 1e300]) })), 'huge number');
      case 9: return b(Buffer.concat([Buffer.from([0x82, 0xa2, 0x6f, 0x70, 0xa4, 0x73, 0x65, 0x6e, 0x64, 0xa4, 0x74, 0x65, 0x78, 0x74, 0xd3]), this.bytes(8)]), 'int64 text');
      case 10: return b(Buffer.from([0x81, 0xa2, 0x6f, 0x70, 0xa4, 0x70, 0xff, 0x6e, 0x67]), 'invalid utf-8 str');
      case 11: return { data: JSON.stringify(this.object()), binary: false, kind: 'text on msgpack' };
      default: return b(Buffer.from(this.packr.pack(this.object())), 'mutated op');
    }
  }
}

/** A frame of this fuzz run that the engine may legitimately answer with nothing (a relayed typing). */
export function maySilentlySucceed(f: FuzzFrame, unpack: (b: Buffer) => unknown): boolean {
  try {
    const v = (f.binary ? unpack(f.data as Buffer) : JSON.parse(typeof f.data === 'string' ? f.data : f.data.toString('utf8'))) as Frame;
    return v !== null && typeof v === 'object' && v.op === 'typing';
  } catch {
    return false;
  }
}

/** Write a raw HTTP/1.1 request and resolve with the status (0 = closed without an answer). */
export function rawHttp(port: number, request: string | Buffer, timeoutMs = 5000): Promise<number> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let head = '';
    let done = false;
    const finish = (status: number): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(status);
    };
    const timer = setTimeout(() => finish(-1), timeoutMs);
    sock.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (m) finish(Number(m[1]));
    });
    sock.on('error', () => finish(0));
    sock.on('close', () => finish(0));
    sock.on('connect', () => sock.write(request));
  });
}

// ---- the fuzz run --------------------------------------------------------------------------------

export interface FuzzStats {
  sent: number;
  /** error frames, by code */
  errors: Record<string, number>;
  /** other direct replies (joined, ack, history, left, read, pong of a fuzzed ping) */
  replies: number;
  /** connections the server closed, by close code (1006 = dropped without a close frame) */
  closes: Record<string, number>;
  /** frames answered by nothing: a valid relayed `typing` (allowed) */
  silentTyping: number;
  /** frames (not a typing) that got neither a reply nor a close: must be 0 */
  unanswered: number;
  unansweredKinds: Record<string, number>;
  unansweredSamples: string[];
  /** which fuzz kinds the closes followed */
  closeKinds: Record<string, number>;
  /** replies beyond the first in a frame's window, and replies outside any window: both should be 0 */
  extraReplies: number;
  lateReplies: number;
  reconnects: number;
  byKind: Record<string, number>;
}

/**
 * One fuzz connection: after every fuzz frame a `ping` with a fresh ref; everything that arrives
 * before its `pong` answers the fuzz frame. A close answers it too (then reconnect and go on).
 */
export async function fuzzConnection(url: string, user: string, msgpack: boolean, frames: number, seed: number, rooms: string[], stats: FuzzStats): Promise<void> {
  const fz = new Fuzzer(seed, rooms);
  const packr = new Packr({ useRecords: false });
  const unpack = (b: Buffer): unknown => packr.unpack(b);
  const proto = msgpack ? 'chat.v1.msgpack' : 'chat.v1.json';
  const open = (): Promise<WebSocket> => new Promise((res, rej) => {
    const ws = new WebSocket(`${url}?user=${user}`, proto, { maxPayload: 64 << 20 });
    ws.once('open', () => res(ws));
    ws.once('error', rej);
  });
  let ws = await open();
  let window = 0;
  let surplus = 0; // replies that arrived outside any frame's window (should not happen)
  let inFrame = false;
  let wsClosed = false;
  let waiting: { ref: string; resolve: (closed: number | null) => void } | null = null;
  const attach = (w: WebSocket): void => {
    w.on('error', () => {});
    w.on('message', (data: Buffer, isBinary: boolean) => {
      let f: Frame;
      try {
        f = (isBinary ? packr.unpack(data) : JSON.parse(data.toString())) as Frame;
      } catch {
        stats.errors['<undecodable server frame>'] = (stats.errors['<undecodable server frame>'] ?? 0) + 1;
        return;
      }
      if (f.op === 'msg' || f.op === 'typing') return;
      if (f.op === 'pong' && waiting && f.ref === waiting.ref) {
        const w2 = waiting;
        waiting = null;
        w2.resolve(null);
        return;
      }
      if (f.op === 'error') stats.errors[f.code] = (stats.errors[f.code] ?? 0) + 1;
      else stats.replies++;
      if (inFrame) window++;
      else surplus++;
    });
    w.once('close', (code: number) => {
      wsClosed = true;
      if (waiting) {
        const w2 = waiting;
        waiting = null;
        w2.resolve(code);
      }
    });
  };
  attach(ws);
  for (let i = 0; i < frames; i++) {
    const f = msgpack ? fz.msgpack() : fz.json();
    stats.byKind[f.kind] = (stats.byKind[f.kind] ?? 0) + 1;
    window = 0;
    inFrame = true;
    const ref = `fz${i}`;
    const done = new Promise<number | null>((resolve) => { waiting = { ref, resolve }; });
    ws.send(f.data, { binary: f.binary });
    ws.send(msgpack ? packr.pack({ op: 'ping', ref }) : JSON.stringify({ op: 'ping', ref }), { binary: msgpack });
    stats.sent++;
    const closed = await Promise.race([done, sleep(10_000).then(() => -1)]);
    if (closed === -1) throw new Error(`no pong and no close within 10 s after a fuzz frame (${f.kind}) on ${user}`);
    if (closed !== null) {
      stats.closes[String(closed)] = (stats.closes[String(closed)] ?? 0) + 1;
      stats.closeKinds[f.kind] = (stats.closeKinds[f.kind] ?? 0) + 1;
      stats.reconnects++;
      inFrame = false;
      ws = await open();
      wsClosed = false;
      attach(ws);
      continue;
    }
    if (window === 0 && !maySilentlySucceed(f, unpack)) {
      // An async reply (an ack after its commit, a page from a reader thread) comes after the
      // synchronous pong: wait for it before the next frame, so every reply belongs to its frame.
      const deadline = Date.now() + 3000;
      while (window === 0 && !wsClosed && Date.now() < deadline) await sleep(1);
      if (window === 0) {
        if (wsClosed) throw new Error(`connection ${user} closed while awaiting the reply to a ${f.kind} frame`);
        stats.unanswered++;
        stats.unansweredKinds[f.kind] = (stats.unansweredKinds[f.kind] ?? 0) + 1;
        if (stats.unansweredSamples.length < 10) stats.unansweredSamples.push(typeof f.data === 'string' ? f.data.slice(0, 300) : f.data.subarray(0, 64).toString('hex'));
      }
    } else if (window === 0) stats.silentTyping++;
    if (window > 1) stats.extraReplies += window - 1;
    inFrame = false;
  }
  stats.lateReplies += surplus;
  ws.close();
}

export function newFuzzStats(): FuzzStats {
  return { sent: 0, errors: {}, replies: 0, closes: {}, silentTyping: 0, unanswered: 0, unansweredKinds: {}, unansweredSamples: [], closeKinds: {}, extraReplies: 0, lateReplies: 0, reconnects: 0, byKind: {} };
}

/** Malformed requests at every HTTP route; resolves with the count of each status (0 = closed unanswered). */
export async function fuzzHttp(port: number, adminToken: string, seed: number, count: number): Promise<{ statuses: Record<string, number>; fiveHundreds: string[]; unansweredSamples: string[]; wellFormedUnanswered: string[] }> {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const routes: [string, string][] = [
    ['GET', '/healthz'], ['GET', '/metrics'], ['GET', '/api/rooms/:room/messages'], ['POST', '/api/rooms/:room/messages'],
    ['GET', '/api/rooms'], ['POST', '/api/rooms'], ['DELETE', '/api/rooms/:room'], ['POST', '/api/rooms/:room/members'],
    ['DELETE', '/api/rooms/:room/members/:user'], ['GET', '/api/me/rooms'], ['GET', '/api/me/blocks'],
    ['PUT', '/api/me/blocks/:user'], ['DELETE', '/api/me/blocks/:user'], ['GET', '/'], ['GET', '/ws'],
  ];
  const params = ['fzh', 'fzh-2', '%', '%zz', '%E0%A4%A', '%00', '..%2F..', '%2e%2e', 'x'.repeat(65), 'x'.repeat(9000), '%C0%AF', '%FF%FE', 'caf\u00e9', 'a b', '%20', '', 'admin', '%F0%9F%92%A9', "x'%20OR%201=1"];
  const queries = ['', '?', '?limit=abc', '?limit=-1', '?limit=0', '?limit=101', '?limit=1e3', '?limit=99999999999999999999', '?before=%zz', '?before=ZZZZZZZZZZZZZ&after=0000000000000',
    '?after=0000000000000', '?subject=%', '?subject=', '?subject=article:1', '?subject=' + 'y'.repeat(200), '?limit=1&limit=2', '?' + 'a=b&'.repeat(3000), '?%00=%00', '?user=%ff', '?user=bad%20user',
    '?user=' + 'u'.repeat(100), '?user=fzh-user&name=%FF', '?token=abc', '?name=' + 'n'.repeat(5000), '?before=0K5Z3QY8W1T4B&limit=50'];
  const bodies: (string | Buffer)[] = ['', '{', 'null', '[]', '"x"', '1e400', '{"kind":1}', '{"kind":"group","members":"all"}', '{"kind":"public","id":"../x"}', '{"kind":"direct","members":[1,2]}',
    '{"text":""}', '{"text":1e400}', '{"text":"' + 'x'.repeat(70_000) + '"}', '{"users":[]}', '{"users":["ok", 5]}', JSON.stringify({ users: Array.from({ length: 2000 }, (_, i) => `u${i}`) }),
    '['.repeat(30_000) + ']'.repeat(30_000), '{"kind":"public","name":"\u0000"}', '{"kind":"public","subject":"' + 's'.repeat(500) + '"}', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
    '{"__proto__":{"admin":true},"kind":"public"}', '{"kind":"public","members":null,"name":null}', 'x'.repeat(200_000)];
  const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'FOO', 'G\u0000T'];
  const statuses: Record<string, number> = {};
  const fiveHundreds: string[] = [];
  const unansweredSamples: string[] = [];
  // well-formed HTTP/1.1 (a standard method, content-length framing, a path without spaces or
  // control characters): the engine's routes must answer every one of them
  const wellFormedUnanswered: string[] = [];
  const one = async (): Promise<void> => {
    const [m0, pattern] = pick(routes);
    const method = r() < 0.8 ? m0 : pick(methods);
    const path = pattern.replace(':room', r() < 0.5 ? 'fzh' : pick(params)).replace(':user', r() < 0.5 ? 'fzh-user' : pick(params));
    const query = r() < 0.5 ? '' : pick(queries);
    const body = method === 'GET' || method === 'HEAD' ? (r() < 0.1 ? pick(bodies) : '') : pick(bodies);
    const bodyBuf = typeof body === 'string' ? Buffer.from(body) : body;
    const auth = r() < 0.5 ? `Authorization: Bearer ${adminToken}\r\n` : r() < 0.3 ? `Authorization: ${pick(['Bearer', 'Bearer x', 'Basic Zm9vOmJhcg==', 'Bearer ' + 'a'.repeat(5000)])}\r\n` : '';
    const ctype = pick(['content-type: application/json\r\n', '', 'content-type: text/plain\r\n', 'content-type: application/json; charset=latin1\r\n', 'content-type: multipart/form-data; boundary=x\r\n']);
    const framing = r() < 0.9 ? `content-length: ${bodyBuf.length}\r\n` : 'transfer-encoding: chunked\r\n';
    const payload = framing.startsWith('transfer') ? Buffer.concat([Buffer.from(pick(['5\r\nhello\r\n0\r\n\r\n', 'zz\r\n', 'ffffffffffffffff\r\nx\r\n', '0\r\n\r\n'])), Buffer.alloc(0)]) : bodyBuf;
    const req = Buffer.concat([Buffer.from(`${method} ${path}${query} HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}${ctype}${framing}connection: close\r\n\r\n`, 'latin1'), payload]);
    const wellFormed = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'].includes(method) && framing.startsWith('content-length') && /^[\x21-\x7e]*$/.test(path + query);
    // A well-formed request must be answered: its wait only guards against a hang, however busy
    // the box. uWS may hold a malformed one until its own timeout, so that wait is short.
    const status = await rawHttp(port, req, wellFormed ? 30_000 : 2000);
    statuses[String(status)] = (statuses[String(status)] ?? 0) + 1;
    const what = `${method} ${path.slice(0, 80)}${query.slice(0, 60)} [${auth ? 'auth' : 'anon'}] ${ctype.trim()} ${framing.trim()} body(${bodyBuf.length}) ${bodyBuf.subarray(0, 40).toString('latin1')}`;
    if (status >= 500) fiveHundreds.push(`${status} <- ${what}`);
    if (status <= 0 && unansweredSamples.length < 30) unansweredSamples.push(`${status} <- ${what}`);
    if (status <= 0 && wellFormed) wellFormedUnanswered.push(`${status} <- ${what}`);
  };
  // Requests that are malformed at the HTTP/1.1 level itself.
  const garbage = ['GET\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', '\r\n\r\n', 'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 'GET /' + 'a'.repeat(100_000) + ' HTTP/1.1\r\n\r\n',
    'GET /healthz HTTP/1.1\r\n' + 'X-A: b\r\n'.repeat(2000) + '\r\n', 'POST /api/rooms HTTP/1.1\r\ncontent-length: -1\r\n\r\n', 'POST /api/rooms HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!',
    'GET /api/rooms/%/messages HTTP/1.1\r\n\r\n', '\u0000\u0001\u0002 garbage\r\n\r\n'];
  await Promise.all(garbage.map(async (g) => {
    const status = await rawHttp(port, Buffer.from(g, 'latin1'), 2000);
    statuses[String(status)] = (statuses[String(status)] ?? 0) + 1;
    if (status >= 500) fiveHundreds.push(`${status} <- ${JSON.stringify(g.slice(0, 80))}`);
    if (status <= 0) unansweredSamples.push(`${status} <- ${JSON.stringify(g.slice(0, 80))}`);
  }));
  let left = count;
  await Promise.all(Array.from({ length: 8 }, async () => { while (left-- > 0) await one(); }));
  return { statuses, fiveHundreds, unansweredSamples, wellFormedUnanswered };
}

export interface FuzzRun {
  stats: FuzzStats;
  http: Awaited<ReturnType<typeof fuzzHttp>>;
  /** The well-behaved client's ack latencies (ms) and how many sends it made. */
  goodLatencies: number[];
  goodSent: number;
  healthStatus: number;
  alive: boolean;
  errorLogs: string[];
  figures: Record<string, unknown>;
}

/**
 * `frames` fuzz frames over 5 connections (3 JSON, 2 msgpack) and ~`frames / 20` malformed HTTP
 * requests, while a well-behaved client (`fz-good`) sends every 20 ms and times its acks.
 */
export async function fuzzEngine(eng: EngineProc, adminToken: string, frames: number, seed: number): Promise<FuzzRun> {
  const rooms = ['fz-a', 'fz-b', 'fz-c'];
  const good = await Client.connect(eng.url, { user: 'fz-good' });
  await good.request({ op: 'join', room: 'fz-good', limit: 0 });
  const sentAt = new Map<string, number>();
  const lat: number[] = [];
  tap(good, (f) => { if (f.op === 'ack') lat.push(performance.now() - sentAt.get(f.cid)!); });
  let goodSent = 0;
  const pump = setInterval(() => {
    const cid = `g${goodSent++}`;
    sentAt.set(cid, performance.now());
    good.send({ op: 'send', room: 'fz-good', text: 'still here', cid });
  }, 20);
  const stats = newFuzzStats();
  const t0 = Date.now();
  const conns = 5;
  let http: FuzzRun['http'];
  try {
    const fuzzing = Promise.all(Array.from({ length: conns }, (_, i) =>
      fuzzConnection(eng.url, `fz-${i}`, i >= 3, Math.ceil(frames / conns), seed + i, rooms, stats)));
    http = await fuzzHttp(eng.port, adminToken, seed, Math.max(500, Math.floor(frames / 20)));
    await fuzzing;
  } finally {
    clearInterval(pump);
  }
  const fuzzMs = Date.now() - t0;
  await until('the good client\'s last acks', () => (lat.length === goodSent ? true : undefined), 10_000);
  const health = await getJson(`${eng.http}/healthz`);
  await good.close();
  const errorLogs = eng.stderr.join('').split('\n').filter((l) => /"level":(50|60)|unhandled|uncaught/i.test(l));
  return {
    stats, http, goodLatencies: lat, goodSent, healthStatus: health.status, alive: eng.proc.exitCode === null, errorLogs,
    figures: {
      frames: stats.sent, seed, fuzzMs, errors: stats.errors, otherReplies: stats.replies, closes: stats.closes, silentTyping: stats.silentTyping,
      closeKinds: stats.closeKinds, unanswered: stats.unanswered, unansweredKinds: stats.unansweredKinds, unansweredSamples: stats.unansweredSamples,
      extraReplies: stats.extraReplies, lateReplies: stats.lateReplies, http: http.statuses, httpUnansweredSamples: http.unansweredSamples.slice(0, 5), goodAcks: lat.length,
      goodAckP99ms: +percentile(lat, 99).toFixed(1), goodAckMaxMs: +Math.max(...lat).toFixed(1),
    },
  };
}
