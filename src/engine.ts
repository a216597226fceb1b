// The front thread's core, composed: each concern lives in its own module under core/ (and
// cluster/ for a node of a cluster); this file builds them, hands each the narrow dependencies it
// uses, and routes client frames and the persistence actor's events to them.

import type { TemplatedApp } from 'uWebSockets.js';
import type { FromActor, HookStats } from '../workers/contract.ts';
import type { ActorLink } from './actor-link.ts';
import type { Identity } from './auth.ts';
import { Bus } from './cluster/bus.ts';
import { DirectorySync } from './cluster/directory.ts';
import { ClusterNode } from './cluster/node.ts';
import { Sequencer } from './cluster/sequencer.ts';
import type { Config } from './config.ts';
import { Access } from './core/access.ts';
import { Admin } from './core/admin.ts';
import { Connections } from './core/connections.ts';
import { Fanout } from './core/fanout.ts';
import { History } from './core/history.ts';
import { KeyedLimits, Op, RateLimits } from './core/limits.ts';
import { LocalNode } from './core/local-node.ts';
import { Membership } from './core/membership.ts';
import { Receipts } from './core/receipts.ts';
import { Replies } from './core/replies.ts';
import { RoomChurn } from './core/room-churn.ts';
import { RoomGate } from './core/room-gate.ts';
import { RoomRegistry } from './core/rooms.ts';
import type { Session } from './core/session.ts';
import { SlowConsumers } from './core/slow-consumers.ts';
import type { Topology } from './core/topology.ts';
import { Typing } from './core/typing.ts';
import { WritePath } from './core/write-path.ts';
import type { Logger } from './log.ts';
import type { MetricsSource } from './metrics/prometheus.ts';
import { Stats } from './metrics/stats.ts';
import type { ErrorCode } from './protocol/errors.ts';
import type { ClientFrame } from './protocol/frames.ts';
import type { StompCore } from './protocol/stomp/gateway.ts';
import { StompTopics } from './protocol/stomp/wire.ts';
import type { ReadPool } from './readers.ts';
import type { TestHooks } from './test-hooks.ts';

/** CHAT_AUTH=none with CHAT_GUEST_ROOMS=public: group and direct rooms are for admins only. */
export function guestsPublicOnly(cfg: Config): boolean {
  return cfg.auth === 'none' && cfg.guestRooms === 'public';
}

/** What /healthz reports. */
export interface Health {
  accepting: boolean;
  storeOk: boolean;
  storeReason: string | null;
  buffered: number;
  /** Cluster only: whether this node's bus is up. */
  busUp: boolean | null;
  /** Webhooks on: the deliverer's figures as the actor last reported them; null otherwise. */
  hooks: HookStats | null;
}

/** Which limit each client op takes a token from (null: not limited). */
const LIMITED: Record<ClientFrame['op'], Op | null> = {
  send: Op.send, delete: Op.send, edit: Op.send, join: null, leave: null, history: Op.history, read: Op.history, typing: Op.typing, ping: null,
};

export class Engine implements StompCore<Session> {
  readonly stats = new Stats();
  readonly rooms: RoomRegistry<Session>;
  readonly stompTopics = new StompTopics();
  readonly connections: Connections;
  readonly slow: SlowConsumers;
  readonly writes: WritePath;
  readonly history: History;
  readonly membership: Membership;
  readonly admin: Admin;
  readonly receipts: Receipts;
  private readonly replies: Replies;
  private readonly typing: Typing;
  private readonly topology: Topology;
  /** Rate limits per connection, and per user (all its connections together). */
  readonly connLimits: RateLimits;
  readonly userLimits: KeyedLimits;
  private readonly addressBytes: KeyedLimits;
  private readonly churn: RoomChurn;
  /** False while the store refuses commits (reported by the actor). */
  private storeOk = true;
  private storeReason: string | null = null;

  constructor(
    private readonly cfg: Config,
    app: TemplatedApp,
    private readonly actor: ActorLink,
    readers: ReadPool,
    private readonly log: Logger,
    initialBlocks: [string, string][],
    /** Cluster mode: the Redis bus to the other nodes (null on a single node). */
    private readonly bus: Bus | null,
    /** Test hooks (CHAT_TEST_HOOKS): joins wait before `joined` while the join point is held. */
    private readonly hooks: TestHooks | null,
  ) {
    const stats = this.stats;
    const maxIdle = bus === null ? LocalNode.MAX_IDLE_ROOMS : ClusterNode.MAX_IDLE_ROOMS;
    this.rooms = new RoomRegistry<Session>({ count: cfg.window, bytes: cfg.windowBytes, total: cfg.windowsMaxBytes }, maxIdle, (room, creator) => this.topology.load(room, creator));
    this.connLimits = RateLimits.forConnections(cfg);
    this.userLimits = new KeyedLimits(RateLimits.forUsers(cfg), 'for this user');
    this.addressBytes = new KeyedLimits(RateLimits.forAddressBytes(cfg), 'from this address');
    this.churn = new RoomChurn(cfg);
    const access = new Access(initialBlocks);
    const gate = new RoomGate(this.rooms, access, cfg.auth === 'none', guestsPublicOnly(cfg));
    this.replies = new Replies(stats);
    this.connections = new Connections(cfg.maxConnsPerUser);
    this.slow = new SlowConsumers(cfg.maxBackpressure);
    const fanout = new Fanout(app, access, this.stompTopics, stats, log);
    this.writes = new WritePath(cfg, actor, this.rooms, gate, access, fanout, this.replies, stats, log);
    this.writes.useByteBudget((s, bytes, ref, cid) => this.allow(s, Op.bytes, ref, cid, bytes));
    this.receipts = new Receipts(cfg, this.rooms, gate, access, fanout);
    this.history = new History(cfg, gate, access, readers, actor, this.replies, this.receipts, log);
    this.membership = new Membership(cfg, this.rooms, gate, access, this.history, this.writes, actor, this.replies, this.receipts, hooks);
    this.typing = new Typing(this.rooms, fanout, this.replies);
    this.admin = new Admin(cfg, actor, this.rooms, gate, access, this.connections, this.membership, this.history, this.writes, this.receipts, hooks);
    const node = bus === null ? null : new ClusterNode(bus, actor, this.rooms, new Sequencer(cfg, this.rooms, fanout, this.history, this.replies, stats, log),
      new DirectorySync(actor.initialDirVersion, (task) => this.history.read(task), this.rooms, log, () => hooks?.gate('sweep') ?? null), hooks);
    this.topology = node ?? new LocalNode(actor, this.rooms, fanout, this.writes);
    for (const m of [this.writes, this.membership, this.typing, this.admin, this.receipts]) m.useTopology(this.topology);
    if (node !== null && bus !== null) {
      node.start({
        roomDeleted: (room) => this.membership.roomDeleted(room),
        membersChanged: (room, info) => this.membership.membersChanged(room, info),
        applyBlock: (blocker, blocked, on) => this.admin.applyBlock(blocker, blocked, on),
        relayTyping: (room, user, name) => this.typing.relay(room, user, name),
        relayReceipt: (room, user, seq) => this.receipts.relay(room, user, seq),
        postQuit: (room, user, name) => this.writes.postQuit(room, user, name),
      });
      stats.bus = { get published() { return bus.broker.published; }, get received() { return bus.broker.received; }, get up() { return bus.up; }, get subscriptions() { return bus.broker.subscriptions; } };
    }
    actor.listen((evts) => this.onActorEvents(evts));
  }

  // ---- connections -----------------------------------------------------------------------------

  mayConnect(userId: string): boolean {
    return this.connections.mayConnect(userId);
  }

  /** A connection opened; `identified` unless a STOMP CONNECT is still to say who it is. */
  onOpen(s: Session, identified: boolean): void {
    if (identified) this.connections.opened(s);
    this.stats.connections++;
    this.stats.connectionsTotal++;
  }

  setIdentity(s: Session, id: Identity): void {
    this.connections.setIdentity(s, id);
  }

  /** The connection closed; true if it was cut off as a slow consumer. */
  onClose(s: Session, code: number): boolean {
    s.closed = true;
    const slow = this.slow.wasSlow(s, code);
    if (slow) this.stats.slowConsumerCloses++;
    this.stats.connections--;
    this.connections.closed(s);
    this.membership.onClose(s);
    s.ws = null;
    return slow;
  }

  // ---- client frames ---------------------------------------------------------------------------

  /**
   * Take `cost` tokens of `op` for the connection and for its user (message bytes: for the client
   * address too); if one is out, the frame is refused `rate_limited` (a join or leave refused
   * posts no ENTER or QUIT) and false returned.
   */
  private allow(s: Session, op: Op, ref: string | undefined, cid?: string, cost = 1): boolean {
    const now = Date.now();
    let refusal: string | null = null;
    if (!this.connLimits.take(s.buckets, op, now, cost)) refusal = this.connLimits.refusal(op, 'on this connection');
    else if (!this.userLimits.take(s.userId, op, now, cost)) refusal = this.userLimits.refusal(op);
    else if (op === Op.bytes && !this.addressBytes.take(s.address, op, now, cost)) refusal = this.addressBytes.refusal(op);
    if (refusal === null) return true;
    this.replies.error(s, 'rate_limited', refusal, ref, cid);
    return false;
  }

  /** A join or leave: the connection's and user's join buckets, then the room's own on this connection. */
  private mayChurn(s: Session, room: string, leaving: boolean, ref: string | undefined): boolean {
    if (!this.churn.take(s, room, leaving)) {
      this.replies.error(s, 'rate_limited', this.churn.refusal(), ref);
      return false;
    }
    return this.allow(s, Op.join, ref);
  }

  onFrame(s: Session, f: ClientFrame): void {
    const op = LIMITED[f.op];
    if (op !== null && !this.allow(s, op, f.ref, f.op === 'send' || f.op === 'edit' || f.op === 'delete' ? f.cid : undefined)) return;
    switch (f.op) {
      case 'send': return this.writes.post(s, f.room, f.text, f.cid, f.ref);
      case 'delete': return this.writes.retract(s, f.room, 'DELETE', f.id, '', f.cid ?? null, f.ref);
      case 'edit': return this.writes.retract(s, f.room, 'EDIT', f.id, f.text, f.cid, f.ref);
      case 'join': return this.join(s, f.room, f.since, f.limit, f.ref);
      case 'leave': return this.leave(s, f.room, f.ref);
      case 'history': return this.history.onHistory(s, f);
      case 'read': return this.history.onRead(s, f);
      case 'typing': return this.typing.onTyping(s, f);
      case 'ping': return this.replies.reply(s, { op: 'pong' }, undefined, f.ref);
    }
  }

  /** A frame refused before it reached a module (malformed, too large). */
  error(s: Session, code: ErrorCode, message: string | undefined, ref: string | undefined, cid?: string): void {
    this.replies.error(s, code, message, ref, cid);
  }

  refused(code: ErrorCode): void {
    this.stats.refuse(code);
  }

  post(s: Session, room: string, text: string, cid: string | null, ref: string | undefined): void {
    if (this.allow(s, Op.send, ref, cid ?? undefined)) this.writes.post(s, room, text, cid, ref);
  }

  join(s: Session, room: string, since: string | undefined, limit: number, ref: string | undefined): void {
    if (this.mayChurn(s, room, false, ref)) this.membership.join(s, room, since, limit, ref);
  }

  leave(s: Session, room: string, ref: string | undefined): void {
    if (this.mayChurn(s, room, true, ref)) this.membership.leave(s, room, ref);
  }

  // ---- the persistence actor -------------------------------------------------------------------

  private onActorEvents(evts: FromActor[]): void {
    for (const e of evts) {
      switch (e.t) {
        case 'accepted': this.writes.onAccepted(e); break;
        case 'committed': this.writes.onCommitted(e); break;
        case 'room':
          this.rooms.loaded(e.room, e.state, e.refused);
          this.topology.loaded(e.room);
          break;
        case 'health':
          this.storeOk = e.ok;
          this.storeReason = e.reason;
          if (e.ok) this.log.info({}, 'store recovered');
          else this.log.error({ reason: e.reason }, 'store degraded: commits are failing; buffering');
          break;
        case 'stats':
          this.stats.actorLagMs = e.loopLagMs;
          this.stats.setHooks(e.hooks);
          break;
        case 'held': this.hooks?.onCommitHeld(e.waiting); break;
        case 'collected': this.hooks?.onActorCollected(e.gc); break;
        case 'reply': // answered by the ActorLink itself
        case 'hooksReply':
        case 'ready': break;
      }
    }
  }

  // ---- health and shutdown ---------------------------------------------------------------------

  get accepting(): boolean {
    return this.writes.accepting;
  }

  health(): Health {
    // The store's own error text stays in the log (it may name hosts, tables or SQL): only its kind here.
    const reason = this.storeReason === null ? null : `${this.storeReason.split(':')[0]}; the engine's log has the error`;
    return { accepting: this.writes.accepting, storeOk: this.storeOk, storeReason: reason, buffered: this.writes.inflight, busUp: this.bus === null ? null : this.bus.up, hooks: this.stats.hooks };
  }

  /** What the metrics read. */
  get metricsSource(): MetricsSource {
    // The getters below read live values; an object literal's getter has its own `this`.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      stats: this.stats,
      rooms: this.rooms,
      get windowBytes() { return self.rooms.budget.total; },
      get inflight() { return self.writes.inflight; },
      get inflightByteCount() { return self.writes.inflightBytes; },
      get storeOk() { return self.storeOk; },
    };
  }

  /** Stop taking sends, let the actor commit and ack what it holds, then return. */
  async drain(): Promise<void> {
    this.writes.stop();
    // The actor's final commit results (and so their acks) arrive before it exits; if it had to be
    // terminated because the store is down, what it held was never acked.
    await this.actor.shutdown();
    await this.topology.stop();
    this.receipts.stop();
    this.userLimits.stop();
    this.addressBytes.stop();
  }
}
