// A send the actor holds until it is durable, and the answers a send gets.

import type { SendResult } from '../contract.ts';
import type { CidHit, NewMessage } from '../stores/store.ts';

export interface Pending {
  msg: NewMessage;
  token: number;
  /** Its (sender, cid) pair's cidKey; null without a cid. */
  key: string | null;
  /** Tokens of retried sends (same sender and cid) waiting on this one's commit. */
  dups: number[];
}

/** A durable send: its ack, and with `deliver` the message to publish. */
export function stored(token: number, m: NewMessage, deliver: boolean): SendResult {
  return { token, room: m.room, seq: m.seq, id: m.id, at: m.at, dup: false, deliver, error: null };
}

/** A retried send: acked with the message already stored (`hit`), not delivered again. */
export function duplicate(token: number, hit: CidHit): SendResult {
  return { token, room: hit.room, seq: hit.seq, id: hit.id, at: hit.at, dup: true, deliver: false, error: null };
}

/** A send refused because its room does not exist (or was deleted): nothing stored. */
export function notFound(token: number, room: string): SendResult {
  return { token, room, seq: 0, id: '', at: 0, dup: false, deliver: false, error: 'not_found' };
}

/** A send refused because the room it would create is over its sender's quota: nothing stored. */
export function refused(token: number, room: string, message: string): SendResult {
  return rejected(token, room, 'forbidden', message);
}

/** A send refused with a reason (a quota, a retraction not allowed): nothing stored. */
export function rejected(token: number, room: string, error: 'forbidden' | 'not_found', message: string): SendResult {
  return { token, room, seq: 0, id: '', at: 0, dup: false, deliver: false, error, message };
}
