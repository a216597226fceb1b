// The cluster's Lua scripts, run atomically by Redis on the command connection. Presence is kept in
// two hashes per (room, node): a room's hash counts, per user, the nodes the user is online on; a
// node's hash lists what it contributed ([room, user] -> [name, announce]), so a survivor can undo
// a dead node's share. Liveness is a sorted set of heartbeats and a claim key per node id.

import type { Redis } from 'ioredis';

/** The scripts as ioredis defines them on the command connection. */
export interface Scripts {
  presJoin(roomKey: string, nodeKey: string, user: string, field: string, value: string): Promise<number>;
  presLeave(roomKey: string, nodeKey: string, user: string, field: string): Promise<number>;
  beat(nodesKey: string, claimKey: string, node: number, token: string, ttlMs: number): Promise<number>;
  deadNodes(nodesKey: string, timeoutMs: number): Promise<string[]>;
  reap(nodesKey: string, presnKey: string, node: number, presPrefix: string, timeoutMs: number): Promise<string[]>;
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

/** Define the scripts on a command connection. */
export function defineScripts(cmd: Redis): Scripts {
  cmd.defineCommand('presJoin', { numberOfKeys: 2, lua: JOIN_LUA });
  cmd.defineCommand('presLeave', { numberOfKeys: 2, lua: LEAVE_LUA });
  cmd.defineCommand('beat', { numberOfKeys: 2, lua: BEAT_LUA });
  cmd.defineCommand('deadNodes', { numberOfKeys: 1, lua: DEAD_LUA });
  cmd.defineCommand('reap', { numberOfKeys: 2, lua: REAP_LUA });
  return cmd as unknown as Scripts;
}

/** Every Redis key and channel name of one cluster (CHAT_REDIS_PREFIX). */
export class Keys {
  readonly p: string;
  constructor(prefix: string) {
    this.p = prefix + ':';
  }
  /** A room's message channel. */
  channel(room: string): string {
    return this.p + 'r:' + room;
  }
  /** The control channel (directory changes, typing). */
  get control(): string {
    return this.p + 'ctl';
  }
  /** A room's presence hash: user -> number of nodes with the user in the room. */
  pres(room: string): string {
    return this.p + 'pres:' + room;
  }
  /** A node's presence hash: [room, user] -> [name, announce]. */
  presn(node: number): string {
    return this.p + 'presn:' + node;
  }
  get nodes(): string {
    return this.p + 'nodes';
  }
  claim(node: number): string {
    return this.p + 'node:' + node;
  }
  get epoch(): string {
    return this.p + 'epoch';
  }
}

/** A user a dead node had online in a room, who is now online nowhere. */
export interface Reaped {
  room: string;
  user: string;
  name: string;
  /** The room announces ENTER/QUIT. */
  announce: boolean;
}

/** Decode the [field, value] pairs a reap or a presence hash returns. */
export function reapedOf(field: string, value: string): Reaped {
  const [room, user] = JSON.parse(field) as [string, string];
  const [name, announce] = JSON.parse(value) as [string, number];
  return { room, user, name, announce: announce === 1 };
}
