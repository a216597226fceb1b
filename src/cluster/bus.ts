// The cluster bus: several engine nodes share one MySQL store and one Redis server (ioredis), over
// two connections (commands, and subscriptions). It composes the broker (messages and control
// events between nodes), presence (who is online where) and liveness (node ids, heartbeats,
// reaping), and brings all three back after Redis was unreachable or restarted empty. Redis keeps
// no message: everything it carries can be rebuilt from the store, so a Redis restart costs
// latency, never a message.

import { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { Broker, type BrokerHandler } from './broker.ts';
import { Liveness } from './liveness.ts';
import { Presence } from './presence.ts';
import { defineScripts, Keys, type Reaped } from './scripts.ts';

export { NodeIdTakenError } from './liveness.ts';

export interface BusHandler extends BrokerHandler {
  /** Redis came back after an outage: subscriptions are restored; check every room for gaps. */
  onReconnect(): void;
  /** Users who are now online nowhere (a dead node's, or left while Redis was down): post their QUIT. */
  onReaped(quits: Reaped[]): void;
}

export class Bus {
  private readonly cmd: Redis;
  private readonly sub: Redis;
  readonly broker: Broker;
  readonly presence: Presence;
  private readonly liveness: Liveness;
  /** QUITs found before the engine listened (this node id's previous life, reaped at start). */
  private pendingReaped: Reaped[] = [];
  /** A re-registration after a reconnect is running (one at a time). */
  recovering = false;
  /** A connection became ready again while a recovery ran. */
  private readyAgain = false;
  private handler: BusHandler | null = null;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  up = false;

  private constructor(private readonly cfg: Config, private readonly log: Logger) {
    const url = cfg.redisUrl!;
    const retryStrategy = (times: number): number => Math.min(100 * times, 1000);
    // Commands fail at once while Redis is down (no unbounded offline queue): a publish that fails
    // is a gap the receivers fill from the store.
    this.cmd = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000, retryStrategy, connectionName: `chat-node-${cfg.nodeId}` });
    this.sub = new Redis(url, { lazyConnect: true, retryStrategy, connectionName: `chat-node-${cfg.nodeId}-sub` });
    for (const c of [this.cmd, this.sub]) c.on('error', () => undefined); // logged once per state change below
    const scripts = defineScripts(this.cmd);
    const keys = new Keys(cfg.redisPrefix);
    this.broker = new Broker(this.cmd, this.sub, keys, cfg.nodeId, () => this.up, log);
    this.presence = new Presence(this.cmd, scripts, keys, cfg.nodeId, this);
    this.liveness = new Liveness(this.cmd, scripts, keys, cfg.nodeId, cfg.nodeTimeoutMs, log);
    this.presence.onQuits = (quits) => this.handler?.onReaped(quits);
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
    let quits: Reaped[];
    try {
      quits = await bus.liveness.claim(cfg.redisPrefix);
    } catch (err) {
      await bus.close(false);
      throw err;
    }
    await bus.liveness.checkEpoch();
    bus.up = true;
    await bus.broker.start();
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
    this.broker.listen(handler);
    const quits = this.pendingReaped;
    this.pendingReaped = [];
    if (quits.length > 0) handler.onReaped(quits);
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
      try {
        const lostData = await this.liveness.checkEpoch();
        const listed = await this.liveness.beat();
        // Listed afresh without Redis having lost its data: a survivor reaped this node while it was
        // cut off, and posted the QUITs of everyone it had (those who left meanwhile included).
        if (listed === 2 && !lostData) this.presence.forgetLeftWhileDown();
        // Presence: this node's users, again (Redis may have restarted empty, or leaves happened
        // while it was unreachable). No ENTER for those re-added: they were here all along.
        await this.presence.resync();
        ok = true;
      } catch (err) {
        this.presence.needResync = true;
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
      this.presence.scheduleLeftWhileDown(Math.max(1000, this.cfg.nodeTimeoutMs / 2));
      if (wasDown) this.log.info({}, 'bus up: Redis reachable again; checking every room for gaps');
      this.handler?.onReconnect();
    })();
  }

  /**
   * A node that finds itself unlisted was reaped (it stalled past the timeout) or Redis lost its
   * data: its users' presence is re-registered (without ENTER).
   */
  private async heartbeat(): Promise<void> {
    if (this.closed) return;
    try {
      const r = await this.liveness.heartbeat();
      if ((r === 2 || this.presence.needResync) && this.up && !this.recovering) {
        this.presence.needResync = false;
        try {
          await this.presence.resync();
        } catch (err) {
          this.presence.needResync = true;
          throw err;
        }
      }
    } catch {
      // Redis is down: the reconnect re-registers everything.
    }
  }

  /** Every node looks for silent nodes; the script lets exactly one reap each. */
  private async reapDead(): Promise<void> {
    if (!this.up || this.closed) return;
    try {
      const quits = await this.liveness.reapDead();
      if (quits.length > 0) this.handler?.onReaped(quits);
    } catch {
      // Redis is down; the next round tries again.
    }
  }

  /**
   * Leave the cluster. `handOver`: mark this node dead now so a survivor reaps its presence (and
   * posts the QUITs) at once, instead of after CHAT_NODE_TIMEOUT.
   */
  async close(handOver = true): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    if (handOver && this.cmd.status === 'ready') await this.liveness.handOver().catch(() => undefined);
    this.cmd.disconnect();
    this.sub.disconnect();
  }
}
