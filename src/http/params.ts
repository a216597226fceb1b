// HTTP parameters and body fields, checked with the protocol's rules (protocol/validate.ts): a bad
// one is a ChatError, answered 400.

import type { Identity } from '../auth.ts';
import { ChatError } from '../protocol/errors.ts';
import { printable } from '../protocol/text.ts';
import { ROOM_RE, ROOM_SHAPE, USER_RE, USER_SHAPE } from '../protocol/validate.ts';

/** A room name or subject: 1..128 characters, each printable (protocol/text.ts). */
export const SUBJECT_RE = /^[\s\S]{1,128}$/;
const MAX_MEMBERS = 1000;

/** A percent-encoded path segment, decoded and checked against its pattern. */
function pathParam(raw: string, what: string, re: RegExp, shape: string): string {
  let v: string;
  try {
    v = decodeURIComponent(raw);
  } catch {
    throw new ChatError('invalid', `${what} is not valid percent-encoding`);
  }
  if (!re.test(v)) throw new ChatError('invalid', `${what} must match ${shape}`);
  return v;
}

export const roomParam = (raw: string): string => pathParam(raw, 'room', ROOM_RE, ROOM_SHAPE);
export const userParam = (raw: string): string => pathParam(raw, 'user', USER_RE, USER_SHAPE);

export function requireAdmin(who: Identity): void {
  if (!who.admin) throw new ChatError('forbidden', 'this is the host app API: an admin token is required');
}

export function obj(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ChatError('invalid', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}

export function userList(v: unknown, name: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > MAX_MEMBERS || !v.every((u) => typeof u === 'string' && USER_RE.test(u))) {
    throw new ChatError('invalid', `${name} must be an array of at most ${MAX_MEMBERS} user ids`);
  }
  return v as string[];
}

export function optText(v: unknown, name: string, re: RegExp): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || !re.test(v) || !printable(v)) throw new ChatError('invalid', `${name} must be a string of 1..128 printable characters`);
  return v;
}

/** An optional room id in a body. */
export function optRoomId(v: unknown): string | null {
  if (v === undefined) return null;
  if (typeof v === 'string' && ROOM_RE.test(v)) return v;
  throw new ChatError('invalid', `id must match ${ROOM_SHAPE}`);
}
