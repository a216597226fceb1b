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
  /**
   * The rooms this connection joined: null for none, the room id itself for one (most connections;
   * a Set costs ~150 bytes), a Set from the second on. Read and changed through the methods below.
   */
  private joined: string | Set<string> | null = null;
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
   * This connection's own uWS topic, once its first ack went out (core/fanout.ts toConnection);
   * null until then: most connections never send, and a topic costs uWS memory per connection.
   */
  replyTopic: string | null = null;

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
  }

  inRoom(room: string): boolean {
    const j = this.joined;
    return j === room || (j instanceof Set && j.has(room));
  }

  /** How many rooms it joined. */
  get roomCount(): number {
    const j = this.joined;
    return j === null ? 0 : typeof j === 'string' ? 1 : j.size;
  }

  /** The rooms it joined, as a copy (safe to leave them while iterating). */
  roomIds(): string[] {
    const j = this.joined;
    return j === null ? [] : typeof j === 'string' ? [j] : [...j];
  }

  addRoom(room: string): void {
    const j = this.joined;
    if (j === null) this.joined = room;
    else if (typeof j === 'string') {
      if (j !== room) this.joined = new Set([j, room]);
    } else j.add(room);
  }

  removeRoom(room: string): void {
    const j = this.joined;
    if (j === room) this.joined = null;
    else if (j instanceof Set) {
      j.delete(room);
      if (j.size === 1) this.joined = j.values().next().value!;
    }
  }

  leaveAllRooms(): void {
    this.joined = null;
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
