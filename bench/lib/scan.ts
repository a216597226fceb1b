// Cheap field extraction from server JSON frames, without JSON.parse. Safe for top-level keys:
// a pattern such as `"seq":` cannot occur inside a JSON string value, where every quote is escaped.
// Only the frames that are rare (joined, error, history) get a full JSON.parse.

/** Reads an unsigned decimal integer at s[i..]; -1 if none. */
export function uintAt(s: string, i: number): number {
  let v = 0, c = s.charCodeAt(i);
  if (c < 48 || c > 57) return -1;
  do { v = v * 10 + (c - 48); c = s.charCodeAt(++i); } while (c >= 48 && c <= 57);
  return v;
}

/** Value of a top-level numeric field (`key` given as `"seq":`); -1 if absent. */
export function uintField(s: string, key: string): number {
  const i = s.indexOf(key);
  return i < 0 ? -1 : uintAt(s, i + key.length);
}

/** First character code of the op value (`"op":"m...`), enough to tell msg/ack/joined/error/pong/... apart. */
export function opChar(s: string): number {
  const i = s.indexOf('"op":"');
  return i < 0 ? 0 : s.charCodeAt(i + 6);
}

export const OP_MSG = 109, OP_ACK = 97, OP_JOINED = 106, OP_ERROR = 101, OP_PONG = 112, OP_HISTORY = 104, OP_LEFT = 108, OP_TYPING = 116;

/**
 * Our cids are `<k>.<intendedUs>` (send number, intended send time in microseconds since the run's
 * origin). Writes both into out[0], out[1]; returns false when the frame has no cid of ours.
 */
export function cidField(s: string, out: Float64Array): boolean {
  const i = s.lastIndexOf('"cid":"'); // from the end: servers tend to put cid after the text, and there is only one top-level cid
  return i >= 0 && cidAt(s, i + 7, out);
}

/** Parses one of our cids `<k>.<intendedUs>` starting at s[j] into out[0], out[1]; false if it is not one. */
export function cidAt(s: string, j: number, out: Float64Array): boolean {
  let k = 0, c = s.charCodeAt(j);
  if (c < 48 || c > 57) return false;
  do { k = k * 10 + (c - 48); c = s.charCodeAt(++j); } while (c >= 48 && c <= 57);
  if (c !== 46) return false;
  let t = 0;
  c = s.charCodeAt(++j);
  while (c >= 48 && c <= 57) { t = t * 10 + (c - 48); c = s.charCodeAt(++j); }
  out[0] = k; out[1] = t;
  return true;
}

/** Our room names are `<prefix><index>`; returns the index, or -1 if the frame's room is not ours. */
export function roomIndex(s: string, prefix: string, key = '"room":"'): number {
  const i = s.indexOf(key);
  if (i < 0) return -1;
  const p = i + key.length;
  if (!s.startsWith(prefix, p)) return -1;
  return uintAt(s, p + prefix.length);
}

// STOMP frames (`COMMAND\nheader:value\n...\n\nbody\0`). Header lookups search for `\n<name>:`,
// which cannot occur in a JSON body (JSON has no raw newlines), so no header/body split is needed.
export const STOMP_SEQ = '\nseq:', STOMP_ROOM = '\nroom:', STOMP_RECEIPT_ID = '\nreceipt-id:';
