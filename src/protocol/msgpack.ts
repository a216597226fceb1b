// chat.v1.msgpack: binary frames, the same shapes as JSON. Decoding checks every string is UTF-8
// before validation; server frames are packed from the same fields JSON encodes.

import { Packr } from 'msgpackr';
import { isUtf8 } from 'node:buffer';
import type * as Protocol from '../../client/src/protocol.ts';
import type { Delivered, Message } from '../../workers/contract.ts';
import type { ErrorCode } from './errors.ts';
import type { Decoded, ReplyFields } from './frames.ts';
import { errorFields } from './json.ts';
import { fail, validate } from './validate.ts';
import { msgpackTopic, type AckFields, type ReceiptFields, type Wire } from './wire.ts';

const unpackr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
const packr = new Packr({ useRecords: false });

export function decodeMsgpack(data: ArrayBuffer, isBinary: boolean): Decoded {
  if (!isBinary) return fail('bad_frame', 'this connection speaks chat.v1.msgpack: send binary frames');
  const bytes = new Uint8Array(data);
  let raw: unknown;
  try {
    raw = unpackr.unpack(bytes);
  } catch {
    return fail('bad_frame', 'frame is not valid MessagePack');
  }
  if (!stringsAreUtf8(bytes)) return fail('bad_frame', 'a MessagePack string is not valid UTF-8');
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

export function msgFrameMsgpack(json: string): Uint8Array {
  const m = JSON.parse(json) as Record<string, unknown>;
  return packr.pack({ op: 'msg', ...m });
}

export function ackMsgpack(a: AckFields, ref: string | undefined): Uint8Array {
  const f: Protocol.AckFrame = { op: 'ack', ...a };
  if (f.cid === undefined) delete f.cid;
  if (f.target === undefined) delete f.target;
  if (ref !== undefined) f.ref = ref;
  return packr.pack(f);
}

export function receiptMsgpack(r: ReceiptFields): Uint8Array {
  return packr.pack({ op: 'receipt', room: r.room, user: r.user, seq: r.seq } satisfies Protocol.ReceiptFrame);
}

export function errorMsgpack(code: ErrorCode, message: string | undefined, ref: string | undefined, cid: string | undefined): Uint8Array {
  return packr.pack(errorFields(code, message, ref, cid));
}

export function replyMsgpack(fields: ReplyFields, messages?: Delivered[], ref?: string): Uint8Array {
  const f: Record<string, unknown> = { ...fields };
  if (messages) f.messages = messages.map((d) => JSON.parse(d.json) as Message);
  if (ref !== undefined) f.ref = ref;
  return packr.pack(f);
}

/** The wire adapter of every chat.v1.msgpack connection. */
export const MSGPACK_WIRE: Wire = {
  reply: (sink, fields, messages, ref) => sink.send(replyMsgpack(fields, messages, ref)),
  error: (sink, code, message, ref, cid) => sink.send(errorMsgpack(code, message, ref, cid)),
  ack: ackMsgpack,
  topic: msgpackTopic,
  subscribed: () => undefined,
  message: (_room, d) => msgFrameMsgpack(d.json),
  typing: (fields) => replyMsgpack(fields),
  receipt: receiptMsgpack,
};
