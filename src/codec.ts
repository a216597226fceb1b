// Where a frame comes in and is validated: client frames are decoded (JSON text or MessagePack
// binary, by the connection's subprotocol) and checked here, once; everything past this file takes
// a typed ClientFrame. Server frames are encoded here too, JSON from precomputed pieces.

import { Packr } from 'msgpackr';
import { isUtf8 } from 'node:buffer';
import type * as Wire from '../client/src/protocol.ts';
import { messageJson, type Delivered, type Message } from '../workers/contract.ts';
import { TSID_RE } from '../workers/ids.ts';
import { ERRORS, type ErrorCode } from './errors.ts';
import { wellFormed } from './text.ts';

export const Codec = { Json: 0, Msgpack: 1, Stomp: 2 } as const;
export type Codec = (typeof Codec)[keyof typeof Codec];

/** Subprotocols in the engine's order of preference. */
export const SUBPROTOCOLS: Record<string, Codec> = {
  'chat.v1.json': Codec.Json,
  'chat.v1.msgpack': Codec.Msgpack,
  'v12.stomp': Codec.Stomp,
  'v11.stomp': Codec.Stomp,
  'v10.stomp': Codec.Stomp,
};

export const ROOM_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const MAX_REF = 128;
const MAX_CID = 128;

/**
 * A client frame as validate() returns it: the wire frame of client/src/protocol.ts with every
 * optional field present (undefined when absent) and `limit` defaulted.
 */
type Validated<F> = F extends Wire.ClientFrame
  ? { [K in keyof Required<F>]: K extends 'limit' ? number : undefined extends F[K] ? F[K] | undefined : F[K] }
  : never;
export type ClientFrame = Validated<Wire.ClientFrame>;

/** A refused frame: what the error frame must carry. */
export interface FrameError {
  error: ErrorCode;
  message: string;
  ref: string | undefined;
  cid: string | undefined;
}

export type Decoded = ClientFrame | FrameError;

export function isFrameError(d: Decoded): d is FrameError {
  return (d as FrameError).error !== undefined;
}

const unpackr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
const packr = new Packr({ useRecords: false });
const textDecoder = new TextDecoder('utf-8', { fatal: true });

function fail(error: ErrorCode, message: string, ref?: string, cid?: string): FrameError {
  return { error, message, ref, cid };
}

/** Decode one WebSocket message according to the connection's codec. */
export function decodeFrame(codec: Codec, data: ArrayBuffer, isBinary: boolean): Decoded {
  let raw: unknown;
  if (codec === Codec.Json) {
    if (isBinary) return fail('bad_frame', 'this connection speaks chat.v1.json: send text frames');
    try {
      raw = JSON.parse(textDecoder.decode(data));
    } catch {
      return fail('bad_frame', 'frame is not valid JSON');
    }
  } else {
    if (!isBinary) return fail('bad_frame', 'this connection speaks chat.v1.msgpack: send binary frames');
    const bytes = new Uint8Array(data);
    try {
      raw = unpackr.unpack(bytes);
    } catch {
      return fail('bad_frame', 'frame is not valid MessagePack');
    }
    if (!stringsAreUtf8(bytes)) return fail('bad_frame', 'a MessagePack string is not valid UTF-8');
  }
  return validate(raw);
}

/**
 * True when every string in a MessagePack value is valid UTF-8. msgpackr decodes an invalid
 * sequence leniently (as U+FFFD, or with its JS decoder as some other character), silently: two
 * cids that differ only in such bytes could become one. Walks the bytes without recursion (a
 * deeply nested frame cannot overflow the stack); a truncated value counts as not valid.
 */
export function stringsAreUtf8(b: Uint8Array): boolean {
  let pos = 0;
  let items = 1; // values still to read
  const str = (len: number, at: number): boolean => at + len <= b.length && isUtf8(b.subarray(at, at + len));
  const u16 = (at: number): number => (b[at] << 8) | b[at + 1];
  const u32 = (at: number): number => ((b[at] << 24) >>> 0) + (b[at + 1] << 16) + (b[at + 2] << 8) + b[at + 3];
  while (items > 0) {
    if (pos >= b.length) return false;
    items--;
    const t = b[pos];
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) { pos += 1; continue; }
    if (t >= 0x80 && t <= 0x8f) { items += 2 * (t & 0x0f); pos += 1; continue; }
    if (t >= 0x90 && t <= 0x9f) { items += t & 0x0f; pos += 1; continue; }
    if (t >= 0xa0 && t <= 0xbf) { const n = t & 0x1f; if (!str(n, pos + 1)) return false; pos += 1 + n; continue; }
    switch (t) {
      case 0xd9: { const n = b[pos + 1]; if (!str(n, pos + 2)) return false; pos += 2 + n; break; }
      case 0xda: { const n = u16(pos + 1); if (!str(n, pos + 3)) return false; pos += 3 + n; break; }
      case 0xdb: { const n = u32(pos + 1); if (!str(n, pos + 5)) return false; pos += 5 + n; break; }
      case 0xc4: pos += 2 + b[pos + 1]; break; // bin 8/16/32
      case 0xc5: pos += 3 + u16(pos + 1); break;
      case 0xc6: pos += 5 + u32(pos + 1); break;
      case 0xc7: pos += 3 + b[pos + 1]; break; // ext 8/16/32 (+ type byte)
      case 0xc8: pos += 4 + u16(pos + 1); break;
      case 0xc9: pos += 6 + u32(pos + 1); break;
      case 0xca: pos += 5; break; // float 32/64
      case 0xcb: pos += 9; break;
      case 0xcc: case 0xd0: pos += 2; break; // (u)int 8/16/32/64
      case 0xcd: case 0xd1: pos += 3; break;
      case 0xce: case 0xd2: pos += 5; break;
      case 0xcf: case 0xd3: pos += 9; break;
      case 0xd4: pos += 3; break; // fixext 1/2/4/8/16
      case 0xd5: pos += 4; break;
      case 0xd6: pos += 6; break;
      case 0xd7: pos += 10; break;
      case 0xd8: pos += 18; break;
      case 0xdc: items += u16(pos + 1); pos += 3; break; // array 16/32
      case 0xdd: items += u32(pos + 1); pos += 5; break;
      case 0xde: items += 2 * u16(pos + 1); pos += 3; break; // map 16/32
      case 0xdf: items += 2 * u32(pos + 1); pos += 5; break;
      default: return false; // 0xc1: never used
    }
  }
  return pos <= b.length;
}

function optString(v: unknown): v is string | undefined {
  return v === undefined || typeof v === 'string';
}

function isId(v: unknown): v is string {
  return typeof v === 'string' && TSID_RE.test(v);
}

function intIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
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
  const needRoom = (): FrameError => fail('invalid', 'room must match [A-Za-z0-9._:-]{1,64}', ref);
  switch (op) {
    case 'send': {
      const cid = typeof f.cid === 'string' && f.cid.length >= 1 && f.cid.length <= MAX_CID ? f.cid : undefined;
      const echoCid = typeof f.cid === 'string' ? f.cid.slice(0, MAX_CID) : undefined;
      if (cid === undefined) return fail('invalid', `cid must be a string of 1..${MAX_CID} characters`, ref, echoCid);
      if (!wellFormed(cid)) return fail('invalid', 'cid must be well-formed Unicode (no lone surrogate)', ref, cid);
      if (!roomOk) return fail('invalid', 'room must match [A-Za-z0-9._:-]{1,64}', ref, cid);
      if (typeof f.text !== 'string') return fail('invalid', 'text must be a string', ref, cid);
      if (!wellFormed(f.text)) return fail('invalid', 'text must be well-formed Unicode (no lone surrogate)', ref, cid);
      return { op, ref, room: room as string, text: f.text, cid };
    }
    case 'join': {
      if (!roomOk) return needRoom();
      if (f.since !== undefined && !isId(f.since)) return fail('invalid', 'since must be a message id', ref);
      if (f.limit !== undefined && !intIn(f.limit, 0, 100)) return fail('invalid', 'limit must be an integer 0..100', ref);
      return { op, ref, room: room as string, since: f.since as string | undefined, limit: (f.limit as number | undefined) ?? 50 };
    }
    case 'leave':
    case 'typing':
      if (!roomOk) return needRoom();
      return { op, ref, room: room as string };
    case 'history': {
      if (!roomOk) return needRoom();
      const q = checkPage(f.before, f.after, f.limit);
      if (typeof q === 'string') return fail('invalid', q, ref);
      return { op, ref, room: room as string, ...q };
    }
    case 'read':
      if (!roomOk) return needRoom();
      if (!isId(f.upTo)) return fail('invalid', 'upTo must be a message id', ref);
      return { op, ref, room: room as string, upTo: f.upTo };
    case 'ping':
      return { op, ref };
    default:
      return fail('unknown_op', `unknown op "${op.slice(0, 32)}"`, ref);
  }
}

export interface PageParams {
  before: string | undefined;
  after: string | undefined;
  limit: number;
}

/** Validate history cursors and limit; returns an error message or the typed parameters. */
export function checkPage(before: unknown, after: unknown, limit: unknown): PageParams | string {
  if (before !== undefined && !isId(before)) return 'before must be a message id';
  if (after !== undefined && !isId(after)) return 'after must be a message id';
  if (before !== undefined && after !== undefined) return 'give before or after, not both';
  if (limit !== undefined && !intIn(limit, 1, 100)) return 'limit must be an integer 1..100';
  return { before: before as string | undefined, after: after as string | undefined, limit: (limit as number | undefined) ?? 50 };
}

// ---- server frames -----------------------------------------------------------------------------

/** A server frame ready to send: a string for text frames, bytes for binary ones. */
export type Out = string | Uint8Array;

/** Pieces of a frame that are the same for every copy, computed once. */
const Q = JSON.stringify;

function refPart(ref: string | undefined): string {
  return ref === undefined ? '' : `,"ref":${Q(ref)}`;
}

/** The `msg` frame for JSON subscribers: the actor's Message JSON with the op spliced in front. */
export function msgFrameJson(json: string): string {
  return '{"op":"msg",' + json.slice(1);
}

export function msgFrameMsgpack(json: string): Uint8Array {
  const m = JSON.parse(json) as Record<string, unknown>;
  return packr.pack({ op: 'msg', ...m });
}

export function encodeAck(codec: Codec, cid: string, room: string, id: string, seq: number, at: number, ref: string | undefined): Out {
  if (codec === Codec.Json) return `{"op":"ack","cid":${Q(cid)},"room":"${room}","id":"${id}","seq":${seq},"at":${at}${refPart(ref)}}`;
  return packr.pack((ref === undefined ? { op: 'ack', cid, room, id, seq, at } : { op: 'ack', cid, room, id, seq, at, ref }) satisfies Wire.AckFrame);
}

export function encodeError(codec: Codec, code: ErrorCode, message: string | undefined, ref: string | undefined, cid: string | undefined): Out {
  const f: Wire.ErrorFrame = { op: 'error', code, message: message ?? ERRORS[code].message };
  if (ref !== undefined) f.ref = ref;
  if (cid !== undefined) f.cid = cid;
  return codec === Codec.Json ? Q(f) : packr.pack(f);
}

/** Any other frame: plain fields plus an optional message list, each message given as its JSON. */
export function encodeFrame(codec: Codec, fields: Record<string, unknown>, messages?: Delivered[], ref?: string): Out {
  if (codec === Codec.Json) {
    let s = Q(ref === undefined ? fields : { ...fields, ref });
    if (messages) s = s.slice(0, -1) + ',"messages":[' + messages.map((d) => d.json).join(',') + ']}';
    return s;
  }
  const f: Record<string, unknown> = { ...fields };
  if (messages) f.messages = messages.map((d) => JSON.parse(d.json) as Message);
  if (ref !== undefined) f.ref = ref;
  return packr.pack(f);
}

/** A stored message (from a reader) in the form the front thread keeps. */
export function toDelivered(m: Message): Delivered {
  return { room: m.room, seq: m.seq, id: m.id, at: m.at, from: m.from.id, json: messageJson(m) };
}
