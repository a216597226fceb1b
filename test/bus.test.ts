// The cluster bus's presence bookkeeping against the real Redis, with races made deterministic by
// running a join exactly while one of the bus's own Redis calls is in flight.

import { afterEach, describe, expect, it } from 'vitest';
import { Bus } from '../src/cluster/bus.ts';
import type { Reaped } from '../src/cluster/scripts.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { dropRedisKeys, REDIS_URL, redisAvailable, uniquePrefix } from './support/cluster.ts';

const HAVE_REDIS = await redisAvailable();

interface BusInternals {
  up: boolean;
  recovering: boolean;
}

interface PresenceInternals {
  scripts: { presLeave: (...a: string[]) => Promise<number> };
  quitIfGone(keys: string[]): Promise<void>;
}

describe.skipIf(!HAVE_REDIS)('cluster bus presence (real Redis)', () => {
  const started: { bus: Bus; prefix: string }[] = [];
  afterEach(async () => {
    for (const { bus, prefix } of started.splice(0)) {
      await bus.close(false);
      await dropRedisKeys(prefix + ':');
    }
  });

  async function start(): Promise<{ bus: Bus; inner: BusInternals; quits: Reaped[]; prefix: string }> {
    const prefix = uniquePrefix();
    const cfg = loadConfig({ CHAT_STORE: 'mysql://root@127.0.0.1:3306/test', CHAT_REDIS_URL: REDIS_URL, CHAT_REDIS_PREFIX: prefix, CHAT_NODE_ID: '7', CHAT_NODE_TIMEOUT: '2s' });
    const bus = await Bus.start(cfg, createLogger('silent'));
    started.push({ bus, prefix });
    const quits: Reaped[] = [];
    bus.listen({ onMessages: () => undefined, onControl: () => undefined, onReconnect: () => undefined, onReaped: (q) => quits.push(...q) });
    return { bus, inner: bus as unknown as BusInternals, quits, prefix };
  }

  function presenceOf(bus: Bus): PresenceInternals {
    return bus.presence as unknown as PresenceInternals;
  }

  /** Run `during` once, while the next presLeave call is inside Redis. */
  function duringNextLeave(bus: Bus, during: () => void): void {
    const inner = presenceOf(bus);
    const orig = inner.scripts.presLeave.bind(inner.scripts);
    inner.scripts.presLeave = async (...a: string[]) => {
      inner.scripts.presLeave = orig;
      const p = orig(...a);
      during();
      return p;
    };
  }

  /** The user joins here, then leaves while Redis is "unreachable": the leave is only noted, Redis still lists the user. */
  async function leaveWhileDown(bus: Bus, inner: BusInternals, room: string, user: string, name: string): Promise<void> {
    expect(await bus.presence.join(room, user, name, true)).toBe(true);
    inner.up = false;
    expect(await bus.presence.leave(room, user)).toBe(false);
  }

  /** Redis is back: the reconnect's resync, as onReady runs it. */
  async function resync(bus: Bus, inner: BusInternals): Promise<void> {
    inner.recovering = true;
    await bus.presence.resync();
    inner.recovering = false;
    inner.up = true;
  }

  it('a user who left while Redis was unreachable and joins again during the resync gets no QUIT and stays online in Redis', async () => {
    const { bus, inner, quits } = await start();
    await leaveWhileDown(bus, inner, 'room-a', 'u1', 'Ann');
    // The reconnect's resync: while it takes u1 out of Redis, u1 joins again on this node.
    let joined: Promise<boolean> | null = null;
    duringNextLeave(bus, () => { joined = bus.presence.join('room-a', 'u1', 'Ann', true); });
    await resync(bus, inner);
    expect(joined).not.toBeNull();
    expect(await joined!).toBe(false); // no ENTER either: online all along as far as the room knows
    expect(quits).toEqual([]);
    expect(await bus.presence.online('room-a')).toEqual(['u1']);
    // And the presence is exact afterwards: the real leave is the last one, with its QUIT.
    expect(await bus.presence.leave('room-a', 'u1')).toBe(true);
    expect(await bus.presence.online('room-a')).toEqual([]);
  });

  it('a leave still undecided (its Redis call failed) and a rejoin racing its check: no QUIT, still online', async () => {
    const { bus, inner, quits } = await start();
    await leaveWhileDown(bus, inner, 'room-b', 'u2', 'Bo');
    inner.up = true;
    // The rejoin's own presJoin lands first, then the pending check's leave takes the entry out.
    const joined: Promise<boolean>[] = [];
    duringNextLeave(bus, () => { joined.push(bus.presence.join('room-b', 'u2', 'Bo', true)); });
    await presenceOf(bus).quitIfGone([JSON.stringify(['room-b', 'u2'])]);
    expect(joined).toHaveLength(1);
    await Promise.all(joined);
    expect(quits).toEqual([]);
    expect(await bus.presence.online('room-b')).toEqual(['u2']);
  });

  it('a leave while Redis was unreachable, with no rejoin, gets its one QUIT from the resync', async () => {
    const { bus, inner, quits } = await start();
    await leaveWhileDown(bus, inner, 'room-c', 'u3', 'Cy');
    await resync(bus, inner);
    expect(quits).toEqual([{ room: 'room-c', user: 'u3', name: 'Cy', announce: true }]);
    expect(await bus.presence.online('room-c')).toEqual([]);
  });
});
