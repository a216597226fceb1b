// The host app's events (docs/webhooks.md): what an outbox row holds, how each event is built,
// and the outbox's storage contract. A row is written in the transaction of its cause (the group
// commit for a message, the directory operation for rooms, members and blocks), so an event
// exists if and only if its cause is durable; delivery reads, leases and marks rows afterwards.

import { newMessageJson, type EventState, type StoredEvent } from '../contract.ts';
import type { Awaitable, MessageEventSpec, NewEvent, NewMessage } from './store.ts';

export type { EventState, EventType, StoredEvent } from '../contract.ts';
export type { MessageEventSpec, NewEvent } from './store.ts';

export const STATE_CODE: Record<EventState, number> = { pending: 0, delivered: 1, dead: 2 };
export const STATE_NAME: EventState[] = ['pending', 'delivered', 'dead'];

/** The error of an event written straight to the dead-letter list (the outbox was full). */
export const OVERFLOW_ERROR = 'overflow: CHAT_WEBHOOK_MAX_PENDING';

/** Every row column as the stores select them. */
export const EVENT_COLS = 'id, room, type, at, body, state, attempts, done_at, error';

export interface EventDbRow {
  id: number | string;
  room: string;
  type: StoredEvent['type'];
  at: number;
  body: string;
  state: number;
  attempts: number;
  done_at: number | null;
  error: string | null;
}

export function toStoredEvent(r: EventDbRow): StoredEvent {
  return { id: Number(r.id), room: r.room, type: r.type, at: Number(r.at), body: r.body, state: STATE_NAME[r.state], attempts: Number(r.attempts), doneAt: r.done_at === null ? null : Number(r.done_at), error: r.error };
}

/** The event as the receiver gets it: `{"id","type","at","room",...its own fields}`. */
export function eventJson(e: Pick<StoredEvent, 'id' | 'type' | 'at' | 'room' | 'body'>): string {
  const head = `{"id":"${e.id}","type":"${e.type}","at":${e.at},"room":${e.room === '' ? 'null' : JSON.stringify(e.room)}`;
  return e.body === '{}' ? head + '}' : head + ',' + e.body.slice(1);
}

const Q = JSON.stringify;

/** A message's protocol JSON, encoded once: every copy the front thread publishes is these bytes. */
export function jsonOf(m: NewMessage): string {
  return newMessageJson(m.id, m.room, m.seq, m.type, m.fromId, m.fromName, m.text, m.at, m.cid, m.target);
}

/**
 * The message events of a batch whose messages have their ids and seqs: message.created for a
 * message, message.deleted or message.edited for a DELETE or EDIT (keyed by the message it changes,
 * so erasing that message's text reaches these rows too).
 */
export function messageEvents(msgs: NewMessage[]): NewEvent[] {
  const out: NewEvent[] = [];
  for (const m of msgs) {
    if (!m.event) continue;
    if (m.target === null) out.push(messageCreated(m.room, m.at, m.id, jsonOf(m), m.event));
    else out.push(messageRetracted(m, m.target, m.event));
  }
  return out;
}

/** message.deleted `{message: {id}, by}` / message.edited `{message: {id, text, editedAt}, by}`. */
export function messageRetracted(m: NewMessage, target: string, spec: MessageEventSpec): NewEvent {
  const deleted = m.type === 'DELETE';
  const message = deleted ? `{"id":"${target}"}` : `{"id":"${target}","text":${Q(m.text)},"editedAt":${m.at}}`;
  return { room: m.room, type: deleted ? 'message.deleted' : 'message.edited', at: m.at, messageId: target, body: `{"message":${message},"by":${Q(m.fromId)}}`, dead: spec.dead };
}

/** message.created: the message as the protocol shows it, and who had no connection in the room. */
export function messageCreated(room: string, at: number, messageId: string, messageJson: string, spec: MessageEventSpec): NewEvent {
  return { room, type: 'message.created', at, messageId, body: `{"message":${messageJson},"recipients":${Q(spec.recipients)}}`, dead: spec.dead };
}

export function roomCreated(room: { id: string; kind: string; name: string | null; subject: string | null; createdBy: string | null }, members: string[], at: number, dead: boolean): NewEvent {
  return { room: room.id, type: 'room.created', at, messageId: null, body: Q({ kind: room.kind, name: room.name, subject: room.subject, members: room.kind === 'public' ? null : members, by: room.createdBy }), dead };
}

export function roomDeleted(room: string, at: number, dead: boolean): NewEvent {
  return { room, type: 'room.deleted', at, messageId: null, body: '{}', dead };
}

/** One event per user added or removed; `dead` is asked for each. */
export function memberEvents(room: string, users: string[], added: boolean, at: number, dead: () => boolean): NewEvent[] {
  return users.map((user) => ({ room, type: added ? 'member.added' : 'member.removed', at, messageId: null, body: Q({ user }), dead: dead() }));
}

export function blockEvent(blocker: string, blocked: string, on: boolean, at: number, dead: boolean): NewEvent {
  return { room: '', type: on ? 'user.blocked' : 'user.unblocked', at, messageId: null, body: Q({ blocker, blocked }), dead };
}

/** Rooms whose oldest pending event is due now, and when the next one that is not falls due. */
export interface DueRooms {
  rooms: string[];
  /** The earliest next attempt of a room not yet due (ms), null if none waits. */
  nextAt: number | null;
}

/** Which rows an admin listing shows. */
export interface EventQuery {
  /** Events with an id at or above this. */
  from: number;
  state: EventState | null;
  limit: number;
}

/**
 * The outbox's storage. Rows are inserted by the stores' own write transactions (commit,
 * createRoom, deleteRoom, setMembers, setBlock); this is what delivery and the admin API do.
 */
export interface EventStore {
  /** Up to `max` rooms whose oldest pending event may be attempted at `now`, oldest first. */
  dueRooms(now: number, max: number): Awaitable<DueRooms>;
  /**
   * Cluster: take or renew the delivery lease of `rooms` for `node` until `until`; the rooms this
   * node holds now. A room whose lease another node holds and has not let expire is left out.
   */
  leaseRooms(node: number, rooms: string[], now: number, until: number): Awaitable<string[]>;
  /** The pending events of `rooms`, oldest first, at most `limit`: a prefix of each room's. */
  pendingOf(rooms: string[], limit: number): Awaitable<StoredEvent[]>;
  delivered(ids: number[], now: number): Awaitable<void>;
  /**
   * A failed attempt: each row's attempts + 1, next attempt at `nextAt`; rows that have had
   * `maxAttempts` go to the dead-letter list. Returns how many did.
   */
  failed(ids: number[], error: string, nextAt: number, maxAttempts: number, now: number): Awaitable<number>;
  /** Straight to the dead-letter list (a 4xx answer). */
  deadLetter(ids: number[], error: string, now: number): Awaitable<void>;
  /** Pending rows in all. */
  pendingCount(): Awaitable<number>;
  listEvents(q: EventQuery): Awaitable<StoredEvent[]>;
  /**
   * Deliver again: every delivered or dead-lettered event with an id at or above `from`, or (ids)
   * exactly these; back to pending with no attempts. Returns how many.
   */
  replay(sel: { from: number } | { ids: number[] }): Awaitable<number>;
  /** Delete up to `max` delivered or dead-lettered rows done before `before`; how many. */
  purgeEvents(before: number, max: number): Awaitable<number>;
  /** Erase a message's text from its rows not yet delivered; how many. */
  eraseText(messageId: string): Awaitable<number>;
}
