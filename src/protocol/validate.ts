// Where a client frame is validated: whatever its codec (JSON, MessagePack, or a STOMP frame mapped
// onto the same fields), every value a client sends is checked here, once, by these rules; HTTP
// parameters use the same rules. Everything past this file takes typed, already-checked values.

import { TSID_RE } from '../../workers/ids.ts';
import type { Decoded, FrameError, PageParams } from './frames.ts';
import type { ErrorCode } from './errors.ts';
import { wellFormed } from './text.ts';

export const ROOM_RE = /^[A-Za-z0-9._:-]{1,64}$/;
export const ROOM_SHAPE = '[A-Za-z0-9._:-]{1,64}';
export const USER_RE = /^[A-Za-z0-9._:@-]{1,64}$/;
export const USER_SHAPE = '[A-Za-z0-9._:@-]{1,64}';
export const MAX_REF = 128;
export const MAX_CID = 128;

export function fail(error: ErrorCode, message: string, ref?: string, cid?: string): FrameError {
  return { error, message, ref, cid };
}

function optString(v: unknown): v is string | undefined {
  return v === undefined || typeof v === 'string';
}

export function isId(v: unknown): v is string {
  return typeof v === 'string' && TSID_RE.test(v);
}

function intIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/** A cid: 1..MAX_CID characters of well-formed text; the reason when it is not one. */
export function cidProblem(cid: string): string | null {
  if (cid.length < 1 || cid.length > MAX_CID) return `cid must be a string of 1..${MAX_CID} characters`;
  if (!wellFormed(cid)) return 'cid must be well-formed Unicode (no lone surrogate)';
  return null;
}

function needRoom(ref: string | undefined): FrameError {
  return fail('invalid', `room must match ${ROOM_SHAPE}`, ref);
}

/** Check a decoded value against the protocol; returns a typed frame or the error to send. */
export function validate(raw: unknown): Decoded {
  // A plain object (a map), not a MessagePack extension decoded as a Date, bytes or the like.
  if (raw === null || typeof raw !== 'object' || Object.getPrototypeOf(raw) !== Object.prototype) return fail('bad_frame', 'a frame must be an object (a map)');
  const f = raw as Record<string, unknown>;
  const ref = f.ref;
  if (!optString(ref) || (ref !== undefined && (ref.length > MAX_REF || !wellFormed(ref)))) return fail('invalid', `ref must be a string of at most ${MAX_REF} characters`);
  const op = f.op;
  if (typeof op !== 'string') return fail('invalid', 'op is missing', ref);
  const room = f.room;
  const roomOk = typeof room === 'string' && ROOM_RE.test(room);
  switch (op) {
    case 'send': {
      if (typeof f.cid !== 'string') return fail('invalid', `cid must be a string of 1..${MAX_CID} characters`, ref);
      const bad = cidProblem(f.cid);
      if (bad !== null) return fail('invalid', bad, ref, f.cid.slice(0, MAX_CID));
      const cid = f.cid;
      if (!roomOk) return fail('invalid', `room must match ${ROOM_SHAPE}`, ref, cid);
      if (typeof f.text !== 'string') return fail('invalid', 'text must be a string', ref, cid);
      if (!wellFormed(f.text)) return fail('invalid', 'text must be well-formed Unicode (no lone surrogate)', ref, cid);
      return { op, ref, room: room as string, text: f.text, cid };
    }
    case 'edit': {
      if (typeof f.cid !== 'string') return fail('invalid', `cid must be a string of 1..${MAX_CID} characters`, ref);
      const bad = cidProblem(f.cid);
      if (bad !== null) return fail('invalid', bad, ref, f.cid.slice(0, MAX_CID));
      const cid = f.cid;
      if (!roomOk) return fail('invalid', `room must match ${ROOM_SHAPE}`, ref, cid);
      if (!isId(f.id)) return fail('invalid', 'id must be a message id', ref, cid);
      if (typeof f.text !== 'string') return fail('invalid', 'text must be a string', ref, cid);
      if (!wellFormed(f.text)) return fail('invalid', 'text must be well-formed Unicode (no lone surrogate)', ref, cid);
      return { op, ref, room: room as string, id: f.id, text: f.text, cid };
    }
    case 'delete': {
      if (f.cid !== undefined) {
        if (typeof f.cid !== 'string') return fail('invalid', `cid must be a string of 1..${MAX_CID} characters`, ref);
        const bad = cidProblem(f.cid);
        if (bad !== null) return fail('invalid', bad, ref, f.cid.slice(0, MAX_CID));
      }
      const cid = f.cid as string | undefined;
      if (!roomOk) return fail('invalid', `room must match ${ROOM_SHAPE}`, ref, cid);
      if (!isId(f.id)) return fail('invalid', 'id must be a message id', ref, cid);
      return { op, ref, room: room as string, id: f.id, cid };
    }
    case 'join': {
      if (!roomOk) return needRoom(ref);
      if (f.since !== undefined && !isId(f.since)) return fail('invalid', 'since must be a message id', ref);
      if (f.limit !== undefined && !intIn(f.limit, 0, 100)) return fail('invalid', 'limit must be an integer 0..100', ref);
      return { op, ref, room: room as string, since: f.since as string | undefined, limit: (f.limit as number | undefined) ?? 50 };
    }
    case 'leave':
    case 'typing':
      if (!roomOk) return needRoom(ref);
      return { op, ref, room: room as string };
    case 'history': {
      if (!roomOk) return needRoom(ref);
      const q = checkPage(f.before, f.after, f.limit);
      if (typeof q === 'string') return fail('invalid', q, ref);
      return { op, ref, room: room as string, ...q };
    }
    case 'read':
      if (!roomOk) return needRoom(ref);
      if (!isId(f.upTo)) return fail('invalid', 'upTo must be a message id', ref);
      return { op, ref, room: room as string, upTo: f.upTo };
    case 'ping':
      return { op, ref };
    default:
      return fail('unknown_op', `unknown op "${op.slice(0, 32)}"`, ref);
  }
}

/** Validate history cursors and limit; returns an error message or the typed parameters. */
export function checkPage(before: unknown, after: unknown, limit: unknown): PageParams | string {
  if (before !== undefined && !isId(before)) return 'before must be a message id';
  if (after !== undefined && !isId(after)) return 'after must be a message id';
  if (before !== undefined && after !== undefined) return 'give before or after, not both';
  if (limit !== undefined && !intIn(limit, 1, 100)) return 'limit must be an integer 1..100';
  return { before: before as string | undefined, after: after as string | undefined, limit: (limit as number | undefined) ?? 50 };
}
