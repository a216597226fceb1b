// The cluster bus: several engine nodes share one MySQL store and one Redis server (ioredis).
// - Messages: after its commit, a node publishes each room's new messages on the room's channel;
//   nodes subscribe only to rooms they serve, and relay what other nodes publish into their local
//   uWS topics (engine.ts orders them by seq and fills gaps from the store).
// - Presence: who is online in a room, across nodes, in Redis hashes changed by Lua scripts, so
//   ENTER and QUIT are decided once for the cluster.
// - Liveness: each node holds its CHAT_NODE_ID as a key with a TTL and heartbeats; a survivor reaps
//   a silent node's presence (QUIT for users who are then online nowhere).
// Redis keeps no message: everything it carries can be rebuilt from the store, so a Redis restart
// costs latency, never a message.

import { Packr } from 'msgpackr';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Delivered, RoomInfo } from '../workers/contract.ts';
import type { Config } from './config.ts';
import type { Logger } from './log.ts';

/** Changes to the directory made on one node that the others must apply to their live rooms. */
export type ControlEvt =
  | { t: 'deleted'; room: string }
  | { t: 'members'; room: string; info: RoomInfo }
  | { t: 'block'; blocker: string; blocked: string; on: boolean }
  | { t: 'typing'; room: string; user: string; name: string };

export interface BusHandler {
  /** Messages another node committed, in seq order for that node (interleaving is the engine's to sort). */
  onMessages(room: string, msgs: Delivered[]): void;
  onControl(evt: ControlEvt): void;
  /** Redis came back after an outage: subscriptions are restored; check every room for gaps. */
  onReconnect(): void;
  /** Users a dead node had online who are now online nowhere: post their QUIT. */
  onReaped(quits: Reaped[]): void;
}

/** A user a dead node had online in a room, who is now online nowhere. */
export interface Reaped {
  room: string;
  user: string;
  name: string;
  /** The room announces ENTER/QUIT. */
  announce: boolean;
}

/** The Lua scripts, as ioredis defines them on the command connection. */
interface Scripts {
  presJoin(roomKey: string, nodeKey: string, user: string, field: string, value: string): Promise<number>;
  presLeave(roomKey: string, nodeKey: string, user: string, field: string): Promise<number>;
  beat(nodesKey: string, claimKey: string, node: number, token: string, ttlMs: number): Promise<number>;
  deadNodes(nodesKey: string, timeoutMs: number): Promise<string[]>;
  reap(nodesKey: string, presnKey: string, node: number, presPrefix: string, timeoutMs: number): Promise<string[]>;
}

export class NodeIdTakenError extends Error {
  override name = 'NodeIdTakenError';
}

// KEYS[1] = the room's presence hash (user -> nodes), KEYS[2] = this node's hash ([room, user] ->
// [name, announce]); ARGV[1] = user, ARGV[2] = field, ARGV[3] = value. Returns how many nodes now have
// the user in the room, or -1 if this node was already counted.
const JOIN_LUA = `
if redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) == 0 then return -1 end
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)`;

// Same keys; returns how many nodes still have the user in the room (0: post QUIT), -1 if this node
// had no record of it.
const LEAVE_LUA = `
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then return -1 end
local total = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if total <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) total = 0 end
return total`;

// KEYS[1] = nodes zset, KEYS[2] = the node's claim key; ARGV[1] = node id, ARGV[2] = token, ARGV[3] = ttl ms.
// Refreshes the claim if it is ours (or free), records the heartbeat in Redis time; 0 if another
// holds it, 2 if this node was not listed (reaped while it stalled, or Redis restarted), else 1.
const BEAT_LUA = `
local cur = redis.call('GET', KEYS[2])
if cur and cur ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
local t = redis.call('TIME')
local added = redis.call('ZADD', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
return 1 + added`;

// KEYS[1] = nodes zset; ARGV[1] = timeout ms. The nodes silent for longer than the timeout.
const DEAD_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))`;

// KEYS[1] = nodes zset, KEYS[2] = the dead node's presence hash; ARGV[1] = node id, ARGV[2] = key
// prefix of room presence hashes, ARGV[3] = timeout ms (-1: reap unconditionally, a node's own
// previous life). Atomic, re-checks the node is still silent, and only the first reaper gets
// anything back.
const REAP_LUA = `
if tonumber(ARGV[3]) >= 0 then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not score then return {} end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tonumber(score) > now - tonumber(ARGV[3]) then return {} end
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 and tonumber(ARGV[3]) >= 0 then return {} end
local fields = redis.call('HGETALL', KEYS[2])
local out = {}
for i = 1, #fields, 2 do
  local f = cjson.decode(fields[i])
  local key = ARGV[2] .. f[1]
  local total = redis.call('HINCRBY', key, f[2], -1)
  if total <= 0 then
    redis.call('HDEL', key, f[2])
    table.insert(out, fields[i])
    table.insert(out, fields[i + 1])
  end
end
redis.call('DEL', KEYS[2])
return out`;

// Bus payload: the sender's node id (2 bytes, big-endian), then msgpack [[seq, id, at, from, json], ...].
// A node receives its own publishes too (it serves the same rooms): the prefix lets it drop them
// without decoding.
const packr = new Packr({ useRecords: false, moreTypes: false });
type Wire = [number, string, number, string, string][];

export class Bus {
  private readonly cmd: Redis;
  private readonly scripts: Scripts;
  /** This node's presence hash. */
  private readonly nodeKey: string;
  private readonly sub: Redis;
  private readonly p: string;
  private readonly token = randomUUID();
  private readonly subscribed = new Set<string>();
  /** This node's presence as it should be in Redis: field ([room, user]) -> value ([name, announce]). */
  private readonly local = new Map<string, string>();
  /** QUITs found before the engine listened (this node id's previous life, reaped at start). */
  private pendingReaped: Reaped[] = [];
  /** A re-registration after a reconnect is running (one at a time). */
  private recovering = false;
  /** A presence command failed while Redis seemed up: the next heartbeat reconciles. */
  private needResync = false;
  /** Users whose last connection here left while Redis was unreachable: their QUIT is decided after. */
  private readonly leftWhileDown = new Map<string, Reaped>();
  /** A connection became ready again while a recovery ran. */
  private readyAgain = false;
  /** The value of the epoch key when this node last looked; a new value means Redis lost its data. */
  private epoch: string | null = null;
  private handler: BusHandler | null = null;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  up = false;
  published = 0;
  received = 0;

  private constructor(private readonly cfg: Config, private readonly log: Logger) {
    const url = cfg.redisUrl!;
    this.p = cfg.redisPrefix + ':';
    const retryStrategy = (times: number): number => Math.min(100 * times, 1000);
    // Commands fail at once while Redis is down (no unbounded offline queue): a publish that fails
    // is a gap the receivers fill from the store.
    this.cmd = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000, retryStrategy, connectionName: `chat-node-${cfg.nodeId}` });
    this.sub = new Redis(url, { lazyConnect: true, retryStrategy, connectionName: `chat-node-${cfg.nodeId}-sub` });
    this.cmd.defineCommand('presJoin', { numberOfKeys: 2, lua: JOIN_LUA });
    this.cmd.defineCommand('presLeave', { numberOfKeys: 2, lua: LEAVE_LUA });
    this.cmd.defineCommand('beat', { numberOfKeys: 2, lua: BEAT_LUA });
    this.cmd.defineCommand('deadNodes', { numberOfKeys: 1, lua: DEAD_LUA });
    this.cmd.defineCommand('reap', { numberOfKeys: 2, lua: REAP_LUA });
    for (const c of [this.cmd, this.sub]) c.on('error', () => undefined); // logged once per state change below
    this.scripts = this.cmd as unknown as Scripts;
    this.nodeKey = this.presnKey(cfg.nodeId);
  }

  /**
   * Connect, claim CHAT_NODE_ID (waiting up to CHAT_NODE_TIMEOUT for a dead holder's claim to
   * expire), reap what this node id left behind in an earlier life, start heartbeats and reaping.
   */
  static async start(cfg: Config, log: Logger): Promise<Bus> {
    const bus = new Bus(cfg, log);
    try {
      await Promise.all([bus.cmd.connect(), bus.sub.connect()]);
    } catch (err) {
      bus.cmd.disconnect();
      bus.sub.disconnect();
      throw new Error(`cannot reach Redis at ${cfg.redisUrl}: ${(err as Error).message}`);
    }
    const deadline = Date.now() + cfg.nodeTimeoutMs + 1000;
    while ((await bus.beat()) === 0) {
      if (Date.now() > deadline) {
        await bus.close(false);
        throw new NodeIdTakenError(`CHAT_NODE_ID ${cfg.nodeId} is held by another live node of cluster "${cfg.redisPrefix}"; give every node its own id`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    // A previous life of this node id (killed) may have left presence behind: its users are gone.
    const quits = await bus.reapNode(cfg.nodeId, -1);
    await bus.checkEpoch();
    bus.up = true;
    bus.sub.on('messageBuffer', (ch: Buffer, msg: Buffer) => bus.onBusMessage(ch.toString(), msg));
    await bus.sub.subscribe(bus.p + 'ctl');
    // Either connection can drop alone (a proxy reset, CLIENT KILL): down when either closes, up
    // again (after re-registering) when both are ready.
    bus.sub.on('ready', () => bus.onReady());
    bus.cmd.on('ready', () => bus.onReady());
    bus.sub.on('close', () => bus.onDown());
    bus.cmd.on('close', () => bus.onDown());
    const beatEvery = Math.max(200, Math.floor(cfg.nodeTimeoutMs / 4));
    bus.timers.push(setInterval(() => void bus.heartbeat(), beatEvery));
    bus.timers.push(setInterval(() => void bus.reapDead(), Math.max(250, Math.floor(cfg.nodeTimeoutMs / 2))));
    for (const t of bus.timers) t.unref();
    bus.pendingReaped = quits;
    return bus;
  }

  listen(handler: BusHandler): void {
    this.handler = handler;
    const quits = this.pendingReaped;
    this.pendingReaped = [];
    if (quits.length > 0) handler.onReaped(quits);
  }

  private channel(room: string): string {
    return this.p + 'r:' + room;
  }

  /** A room's presence hash: user -> number of nodes with the user in the room. */
  private presKey(room: string): string {
    return this.p + 'pres:' + room;
  }

  /** A node's presence hash: [room, user] -> [name, announce]. */
  private presnKey(node: number): string {
    return this.p + 'presn:' + node;
  }

  private onDown(): void {
    if (this.closed || !this.up) return;
    this.up = false;
    this.log.error({}, 'bus down: Redis unreachable; rooms keep working from the store, reconnecting');
  }

  /** A connection is back: once both are, re-register this node, then catch up. */
  private onReady(): void {
    if (this.closed || this.cmd.status !== 'ready' || this.sub.status !== 'ready') return;
    if (this.recovering) {
      this.readyAgain = true; // a connection came back during the recovery: run it once more after
      return;
    }
    this.recovering = true;
    this.readyAgain = false;
    void (async () => {
      let ok = false;
      let lostData = false;
      try {
        lostData = await this.checkEpoch();
        const listed = await this.beat();
        // Listed afresh without Redis having lost its data: a survivor reaped this node while it was
        // cut off, and posted the QUITs of everyone it had (those who left meanwhile included).
        if (listed === 2 && !lostData) this.leftWhileDown.clear();
        // Presence: this node's users, again (Redis may have restarted empty, or leaves happened
        // while it was unreachable). No ENTER for those re-added: they were here all along.
        await this.resyncPresence();
        ok = true;
      } catch (err) {
        this.needResync = true;
        this.log.warn({ err: String(err) }, 'bus: re-registering after reconnect failed; retrying');
      }
      this.recovering = false;
      if (this.closed) return;
      if (!ok || this.readyAgain || this.cmd.status !== 'ready' || this.sub.status !== 'ready') {
        // Not done: stay down (the store sweep keeps rooms current) and try again shortly.
        setTimeout(() => this.onReady(), 500).unref();
        return;
      }
      const wasDown = !this.up;
      this.up = true;
      if (this.leftWhileDown.size > 0) {
        // Redis may have restarted empty: the other nodes re-register their users when they see it
        // back. Then each user who left here meanwhile, and has not come back, gets a QUIT if they
        // are online nowhere.
        const keys = [...this.leftWhileDown.keys()];
        setTimeout(() => void this.quitIfGone(keys), Math.max(1000, this.cfg.nodeTimeoutMs / 2)).unref();
      }
      if (wasDown) this.log.info({}, 'bus up: Redis reachable again; checking every room for gaps');
      this.handler?.onReconnect();
    })();
  }

  /** True if Redis lost its data since this node last looked (its epoch key is new). */
  private async checkEpoch(): Promise<boolean> {
    const key = this.p + 'epoch';
    await this.cmd.set(key, randomUUID(), 'NX');
    const now = await this.cmd.get(key);
    const lost = this.epoch !== null && now !== this.epoch;
    this.epoch = now;
    return lost;
  }

  /**
   * Make Redis hold exactly this node's presence: add what is missing (Redis restarted empty, or
   * this node was reaped while it stalled), remove what this node no longer has (leaves while Redis
   * was unreachable) and post the QUITs those leaves owe.
   */
  private async resyncPresence(): Promise<void> {
    const have = await this.cmd.hgetall(this.nodeKey);
    const quits: Reaped[] = [];
    // Entries taken out of Redis below: a user who joins again here meanwhile (joins during the
    // recovery only update `local`) is put back by the second loop.
    const removed = new Set<string>();
    for (const [field, value] of Object.entries(have)) {
      if (this.local.has(field)) continue;
      this.leftWhileDown.delete(field); // decided here, from what Redis still had
      const [room, user] = JSON.parse(field) as [string, string];
      const n = await this.scripts.presLeave(this.presKey(room), this.nodeKey, user, field);
      removed.add(field);
      const [name, announce] = JSON.parse(value) as [string, number];
      // Back here while the leave ran: online all along as far as the room is told, so no QUIT.
      if (Number(n) === 0 && !this.local.has(field)) quits.push({ room, user, name, announce: announce === 1 });
    }
    for (const [field, value] of this.local) {
      if (have[field] !== undefined && !removed.has(field)) continue;
      const [room, user] = JSON.parse(field) as [string, string];
      await this.scripts.presJoin(this.presKey(room), this.nodeKey, user, field, value);
    }
    if (quits.length > 0) this.handler?.onReaped(quits);
  }

  private async quitIfGone(keys: string[]): Promise<void> {
    const quits: Reaped[] = [];
    for (const field of keys) {
      const q = this.leftWhileDown.get(field);
      if (q === undefined || this.local.has(field)) continue; // decided meanwhile, or back here
      this.leftWhileDown.delete(field);
      try {
        // Our own entry may be there (re-added while the leave was pending): take it out first.
        const n = Number(await this.scripts.presLeave(this.presKey(q.room), this.nodeKey, q.user, field));
        const gone = n === 0 || (n < 0 && (await this.cmd.hexists(this.presKey(q.room), q.user)) === 0);
        const back = this.local.get(field);
        if (back !== undefined) {
          // Joined here again while this ran (its presenceJoin may have landed before our leave):
          // make sure Redis counts this node, and no QUIT.
          await this.scripts.presJoin(this.presKey(q.room), this.nodeKey, q.user, field, back);
        } else if (gone) quits.push(q);
      } catch {
        // Redis went away again: presence stays unknown, no QUIT rather than a wrong one.
      }
    }
    if (quits.length > 0) this.handler?.onReaped(quits);
  }

  /**
   * A node that finds itself unlisted was reaped (it stalled past the timeout) or Redis lost its
   * data: its users' presence is re-registered (without ENTER).
   */
  private async heartbeat(): Promise<void> {
    if (this.closed) return;
    try {
      const r = await this.beat();
      if (r === 0) this.log.error({ node: this.cfg.nodeId }, 'bus: another live node claims this CHAT_NODE_ID; ids may collide, check the cluster configuration');
      if ((r === 2 || this.needResync) && this.up && !this.recovering) {
        this.needResync = false;
        try {
          await this.resyncPresence();
        } catch (err) {
          this.needResync = true;
          throw err;
        }
      }
    } catch {
      // Redis is down: the reconnect re-registers everything.
    }
  }

  private async beat(): Promise<number> {
    const r = await this.scripts.beat(this.p + 'nodes', this.p + 'node:' + this.cfg.nodeId, this.cfg.nodeId, this.token, this.cfg.nodeTimeoutMs);
    return Number(r);
  }

  private async reapNode(node: number, timeoutMs: number): Promise<Reaped[]> {
    const flat = await this.scripts.reap(this.p + 'nodes', this.presnKey(node), node, this.presKey(''), timeoutMs);
    const out: Reaped[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const [room, user] = JSON.parse(flat[i]) as [string, string];
      const [name, announce] = JSON.parse(flat[i + 1]) as [string, number];
      out.push({ room, user, name, announce: announce === 1 });
    }
    return out;
  }

  /** Every node looks for silent nodes; the script lets exactly one reap each. */
  private async reapDead(): Promise<void> {
    if (!this.up || this.closed) return;
    try {
      const dead = await this.scripts.deadNodes(this.p + 'nodes', this.cfg.nodeTimeoutMs);
      for (const d of dead) {
        const node = Number(d);
        if (node === this.cfg.nodeId) continue;
        const quits = await this.reapNode(node, this.cfg.nodeTimeoutMs);
        this.log.warn({ node, quits: quits.length }, 'bus: reaped a silent node');
        if (quits.length > 0) this.handler?.onReaped(quits);
      }
    } catch {
      // Redis is down; the next round tries again.
    }
  }

  // ---- messages --------------------------------------------------------------------------------

  /** Subscribe to a room's channel; resolves once Redis confirms (or at once while it is down). */
  async subscribe(room: string): Promise<void> {
    if (this.subscribed.has(room)) return;
    this.subscribed.add(room);
    const p = this.sub.subscribe(this.channel(room)).catch(() => undefined);
    if (!this.up) return; // ioredis subscribes when Redis is back; the reconnect sweep fills the gap
    await Promise.race([p, new Promise((r) => setTimeout(r, 2000))]);
  }

  unsubscribe(room: string): void {
    if (!this.subscribed.delete(room)) return;
    void this.sub.unsubscribe(this.channel(room)).catch(() => undefined);
  }

  get subscriptions(): number {
    return this.subscribed.size;
  }

  /** Publish one commit's messages, grouped per room (one PUBLISH per room, pipelined). */
  publish(byRoom: Map<string, Delivered[]>): void {
    if (!this.up) return; // receivers fill the gap from the store
    const pipe = this.cmd.pipeline();
    for (const [room, list] of byRoom) {
      const wire: Wire = list.map((d) => [d.seq, d.id, d.at, d.from, d.json]);
      const body = packr.pack(wire);
      const buf = Buffer.allocUnsafe(2 + body.length);
      buf.writeUInt16BE(this.cfg.nodeId, 0);
      buf.set(body, 2);
      pipe.publish(this.channel(room), buf);
      this.published += list.length;
    }
    void pipe.exec().catch(() => undefined);
  }

  control(evt: ControlEvt): void {
    if (!this.up) return;
    void this.cmd.publish(this.p + 'ctl', JSON.stringify({ node: this.cfg.nodeId, evt })).catch(() => undefined);
  }

  private onBusMessage(channel: string, payload: Buffer): void {
    if (this.handler === null) return;
    if (channel === this.p + 'ctl') {
      try {
        const { node, evt } = JSON.parse(payload.toString()) as { node: number; evt: ControlEvt };
        if (node !== this.cfg.nodeId) this.handler.onControl(evt);
      } catch {
        this.log.warn({}, 'bus: malformed control event ignored');
      }
      return;
    }
    if (payload.length < 2 || payload.readUInt16BE(0) === this.cfg.nodeId) return;
    const room = channel.slice(this.p.length + 2);
    let wire: Wire;
    try {
      wire = packr.unpack(payload.subarray(2)) as Wire;
    } catch {
      this.log.warn({ room }, 'bus: malformed message batch ignored (the gap is filled from the store)');
      return;
    }
    this.received += wire.length;
    this.handler.onMessages(room, wire.map(([seq, id, at, from, json]) => ({ room, seq, id, at, from, json })));
  }

  // ---- presence --------------------------------------------------------------------------------

  /** This node's presence entry: keyed by (room, user); the value is what a reaper needs for the QUIT. */
  private static field(room: string, user: string): string {
    return JSON.stringify([room, user]);
  }

  /**
   * The user's first connection on this node joined the room. True when the user is now online on
   * exactly one node (post ENTER); false when already online elsewhere, or while Redis is down
   * (presence is unknown then, so nothing is announced rather than announced twice).
   */
  async presenceJoin(room: string, user: string, name: string, announce: boolean): Promise<boolean> {
    const f = Bus.field(room, user);
    const v = JSON.stringify([name, announce ? 1 : 0]);
    this.local.set(f, v);
    this.leftWhileDown.delete(f); // back before its QUIT was decided: no QUIT, no ENTER
    if (!this.up || this.recovering) return false;
    try {
      const n = await this.scripts.presJoin(this.presKey(room), this.nodeKey, user, f, v);
      return Number(n) === 1;
    } catch {
      this.needResync = true;
      return false;
    }
  }

  /** The user's last connection on this node left the room. True: online nowhere now (post QUIT). */
  async presenceLeave(room: string, user: string): Promise<boolean> {
    const f = Bus.field(room, user);
    const v = this.local.get(f);
    this.local.delete(f);
    if (!this.up || this.recovering) {
      // The resync after the reconnect removes it from Redis; the QUIT is decided then.
      if (v !== undefined) {
        const [name, announce] = JSON.parse(v) as [string, number];
        this.leftWhileDown.set(f, { room, user, name, announce: announce === 1 });
      }
      return false;
    }
    try {
      const n = await this.scripts.presLeave(this.presKey(room), this.nodeKey, user, f);
      return Number(n) === 0;
    } catch {
      // It may or may not have run: decide the QUIT later, as for a leave while Redis is down.
      if (v !== undefined) {
        const [name, announce] = JSON.parse(v) as [string, number];
        this.leftWhileDown.set(f, { room, user, name, announce: announce === 1 });
        setTimeout(() => void this.quitIfGone([f]), 1000).unref();
      }
      return false;
    }
  }

  /** Users online in a room on any node, sorted. Throws while Redis is down. */
  async online(room: string): Promise<string[]> {
    const users = await this.cmd.hkeys(this.presKey(room));
    return users.sort();
  }

  /**
   * Leave the cluster. `handOver`: mark this node dead now so a survivor reaps its presence (and
   * posts the QUITs) at once, instead of after CHAT_NODE_TIMEOUT.
   */
  async close(handOver = true): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    if (handOver && this.cmd.status === 'ready') {
      await this.cmd.multi()
        .zadd(this.p + 'nodes', 0, String(this.cfg.nodeId))
        .eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, this.p + 'node:' + this.cfg.nodeId, this.token)
        .exec()
        .catch(() => undefined);
    }
    this.cmd.disconnect();
    this.sub.disconnect();
  }
}
