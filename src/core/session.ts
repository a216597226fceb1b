// A connection as the core sees it: created complete at upgrade (a fixed shape; nothing is added
// later), with the wire adapter of its codec and the sink its frames go through.

import type { WebSocket } from 'uWebSockets.js';
import type { Identity } from '../auth.ts';
import { Codec, type Out } from '../protocol/frames.ts';
import { JSON_WIRE } from '../protocol/json.ts';
import { MSGPACK_WIRE } from '../protocol/msgpack.ts';
import type { StompState } from '../protocol/stomp/state.ts';
import { StompWire, type StompTopics } from '../protocol/stomp/wire.ts';
import type { Sink, Wire } from '../protocol/wire.ts';
import type { Buckets } from './limits.ts';
import type { Room } from './rooms.ts';

/** A join that has not answered yet, and the room frames of its connection that wait for it. */
export interface JoinInFlight {
  /** The room object once the join has it (counted in its joinsInFlight). */
  room: Room<Session> | null;
  after: (() => void)[];
}

/** What a uWS socket carries: uWS copies the object given at upgrade, so it holds the session by reference. */
export interface SocketData {
  readonly s: Session;
}

/** One connection; it is also the sink its frames go through (the socket, corked). */
export class Session implements Sink {
  userId: string;
  userName: string;
  admin: boolean;
  /** How this connection's frames are written (one adapter per codec). */
  readonly wire: Wire;
  readonly rooms = new Set<string>();
  /**
   * Joins in flight, by room, with what arrived for the room meanwhile (a leave, another join): run
   * in order once the join has answered, so join-then-leave sent together ends up left. Null while
   * none is (most of a connection's life): an idle connection holds no Map.
   */
  joining: Map<string, JoinInFlight> | null = null;
  /** Per-room join/leave buckets (core/room-churn.ts); null until the connection leaves a room. */
  churn: Map<string, number[]> | null = null;
  ws: WebSocket<SocketData> | null = null;
  closed = false;
  /** JWT expiry timer (auth jwt), cleared on close. */
  expiry: NodeJS.Timeout | null = null;
  /** When the identity's token expires (ms since the epoch); 0 = never. */
  expiresAt: number;
  /** This connection's rate-limit buckets, one per limited op (core/limits.ts). */
  readonly buckets: Buckets;
  /** Seen over the backpressure limit: uWS is dropping its frames, so it is cut off and counted. */
  slow = false;
  /** Bytes waiting in its send buffer at the last sample. */
  lastBuffered = 0;
  /**
   * This connection's own uWS topic (subscribed at open): acks go out through it, so they join the
   * room messages already queued for the same socket in uWS's end-of-turn drain: one write, not two.
   */
  readonly replyTopic: string;

  constructor(
    readonly connId: number,
    id: Identity,
    readonly codec: Codec,
    /** The client's address (its connection counts against CHAT_MAX_CONNS_PER_IP until it closes). */
    readonly address: string,
    buckets: Buckets,
    /** STOMP connections only: subscriptions, parser, heart-beats (the STOMP gateway's). */
    readonly stomp: StompState | null,
    stompTopics: StompTopics,
  ) {
    this.userId = id.id;
    this.userName = id.name;
    this.admin = id.admin;
    this.expiresAt = id.exp;
    this.wire = stomp !== null ? new StompWire(stomp, stompTopics) : codec === Codec.Msgpack ? MSGPACK_WIRE : JSON_WIRE;
    this.buckets = buckets;
    this.replyTopic = 'r/' + connId;
  }

  /** Safe outside uWS handlers (timers, worker replies) and after close (dropped). */
  send(out: Out): void {
    if (this.closed || this.ws === null) return;
    const ws = this.ws;
    ws.cork(() => {
      ws.send(out, typeof out !== 'string');
    });
  }

  end(code: number, reason: string): void {
    if (this.closed || this.ws === null) return;
    this.ws.end(code, reason);
  }
}
