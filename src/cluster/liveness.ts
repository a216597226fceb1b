// Liveness: each node holds its CHAT_NODE_ID as a key with a TTL and heartbeats; every node looks
// for silent nodes, and the reap script lets exactly one survivor undo a dead node's presence (the
// QUITs of users then online nowhere). A node's own previous life (killed) is reaped at its start.

import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.ts';
import { reapedOf, type Keys, type Reaped, type Scripts } from './scripts.ts';

export class NodeIdTakenError extends Error {
  override name = 'NodeIdTakenError';
}

export class Liveness {
  private readonly token = randomUUID();
  /** The value of the epoch key when this node last looked; a new value means Redis lost its data. */
  private epoch: string | null = null;

  constructor(
    private readonly cmd: Redis,
    private readonly scripts: Scripts,
    private readonly keys: Keys,
    private readonly nodeId: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  /**
   * Claim the node id, waiting up to the timeout for a dead holder's claim to expire; then reap
   * what this node id left behind in an earlier life. Throws NodeIdTakenError if a live node has it.
   */
  async claim(prefix: string): Promise<Reaped[]> {
    const deadline = Date.now() + this.timeoutMs + 1000;
    while ((await this.beat()) === 0) {
      if (Date.now() > deadline) throw new NodeIdTakenError(`CHAT_NODE_ID ${this.nodeId} is held by another live node of cluster "${prefix}"; give every node its own id`);
      await new Promise((r) => setTimeout(r, 250));
    }
    return this.reapNode(this.nodeId, -1);
  }

  /** 0: another node holds the id; 1: refreshed; 2: this node was not listed (reaped, or Redis lost its data). */
  async beat(): Promise<number> {
    return Number(await this.scripts.beat(this.keys.nodes, this.keys.claim(this.nodeId), this.nodeId, this.token, this.timeoutMs));
  }

  /** A heartbeat; says the claim is contested in the log. */
  async heartbeat(): Promise<number> {
    const r = await this.beat();
    if (r === 0) this.log.error({ node: this.nodeId }, 'bus: another live node claims this CHAT_NODE_ID; ids may collide, check the cluster configuration');
    return r;
  }

  /** True if Redis lost its data since this node last looked (its epoch key is new). */
  async checkEpoch(): Promise<boolean> {
    await this.cmd.set(this.keys.epoch, randomUUID(), 'NX');
    const now = await this.cmd.get(this.keys.epoch);
    const lost = this.epoch !== null && now !== this.epoch;
    this.epoch = now;
    return lost;
  }

  private async reapNode(node: number, timeoutMs: number): Promise<Reaped[]> {
    const flat = await this.scripts.reap(this.keys.nodes, this.keys.presn(node), node, this.keys.pres(''), timeoutMs);
    const out: Reaped[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push(reapedOf(flat[i], flat[i + 1]));
    return out;
  }

  /** Reap every node silent past the timeout; the script lets exactly one survivor reap each. */
  async reapDead(): Promise<Reaped[]> {
    const quits: Reaped[] = [];
    const dead = await this.scripts.deadNodes(this.keys.nodes, this.timeoutMs);
    for (const d of dead) {
      const node = Number(d);
      if (node === this.nodeId) continue;
      const q = await this.reapNode(node, this.timeoutMs);
      this.log.warn({ node, quits: q.length }, 'bus: reaped a silent node');
      quits.push(...q);
    }
    return quits;
  }

  /** Leaving on purpose: mark this node dead now so a survivor reaps it at once, and free the id. */
  async handOver(): Promise<void> {
    await this.cmd.multi()
      .zadd(this.keys.nodes, 0, String(this.nodeId))
      .eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, this.keys.claim(this.nodeId), this.token)
      .exec();
  }
}
