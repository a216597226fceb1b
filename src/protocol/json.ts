// chat.v1.json: text frames. Decoding (strict UTF-8, then JSON) and the server frames, encoded from
// precomputed pieces where the hot path needs them.

import type * as Protocol from '../../client/src/protocol.ts';
import { jsonInner, type Delivered } from '../../workers/contract.ts';
import { ERRORS, type ErrorCode } from './errors.ts';
import type { Decoded, ReplyFields } from './frames.ts';
import { fail, validate } from './validate.ts';
import { jsonTopic, type AckFields, type ReceiptFields, type Wire } from './wire.ts';

// Not text.ts's STRICT_UTF8: a JSON frame may start with a BOM, which that decoder keeps as text.
const textDecoder = new TextDecoder('utf-8', { fatal: true });
const Q = JSON.stringify;

export function decodeJson(data: ArrayBuffer, isBinary: boolean): Decoded {
  if (isBinary) return fail('bad_frame', 'this connection speaks chat.v1.json: send text frames');
  let raw: unknown;
  try {
    raw = JSON.parse(textDecoder.decode(data));
  } catch {
    return fail('bad_frame', 'frame is not valid JSON');
  }
  return validate(raw);
}

/** The `msg` frame: the actor's Message JSON with the op spliced in front. */
export function msgFrameJson(json: string): string {
  return '{"op":"msg",' + json.slice(1);
}

/** The pieces of an ack being joined (reused: building the frame allocates only the frame). */
const ACK: (string | number)[] = new Array<string>(17).fill('');

export function ackJson(a: AckFields, ref: string | undefined): string {
  const p = ACK;
  const cid = a.cid === undefined;
  p[0] = '{"op":"ack"'; p[1] = cid ? '' : ',"cid":"'; p[2] = cid ? '' : jsonInner(a.cid!); p[3] = cid ? ',"room":"' : '","room":"';
  p[4] = a.room; p[5] = '","id":"'; p[6] = a.id; p[7] = '","seq":'; p[8] = a.seq; p[9] = ',"at":'; p[10] = a.at;
  p[11] = a.target === undefined ? '' : ',"target":"'; p[12] = a.target ?? ''; p[13] = a.target === undefined ? '' : '"';
  p[14] = ref === undefined ? '' : ',"ref":"'; p[15] = ref === undefined ? '' : jsonInner(ref); p[16] = ref === undefined ? '}' : '"}';
  return p.join('');
}

/** A read receipt: `{"op":"receipt","room","user","seq"}`. */
export function receiptJson(r: ReceiptFields): string {
  return `{"op":"receipt","room":"${r.room}","user":${Q(r.user)},"seq":${r.seq}}`;
}

/** The error frame's fields, shared with MessagePack. */
export function errorFields(code: ErrorCode, message: string | undefined, ref: string | undefined, cid: string | undefined): Protocol.ErrorFrame {
  const f: Protocol.ErrorFrame = { op: 'error', code, message: message ?? ERRORS[code].message };
  if (ref !== undefined) f.ref = ref;
  if (cid !== undefined) f.cid = cid;
  return f;
}

export function errorJson(code: ErrorCode, message: string | undefined, ref: string | undefined, cid: string | undefined): string {
  return Q(errorFields(code, message, ref, cid));
}

/** Any other frame: plain fields plus an optional message list, each message given as its JSON. */
export function replyJson(fields: ReplyFields, messages?: Delivered[], ref?: string): string {
  let s = Q(ref === undefined ? fields : { ...fields, ref });
  if (messages) s = s.slice(0, -1) + ',"messages":[' + messages.map((d) => d.json).join(',') + ']}';
  return s;
}

/** The wire adapter of every chat.v1.json connection. */
export const JSON_WIRE: Wire = {
  reply: (sink, fields, messages, ref) => sink.send(replyJson(fields, messages, ref)),
  error: (sink, code, message, ref, cid) => sink.send(errorJson(code, message, ref, cid)),
  ack: ackJson,
  topic: jsonTopic,
  subscribed: () => undefined,
  message: (_room, d) => msgFrameJson(d.json),
  typing: (fields) => replyJson(fields),
  receipt: receiptJson,
};
