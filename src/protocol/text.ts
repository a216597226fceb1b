// Text the engine accepts from clients must be well-formed UTF-16: a lone surrogate (which JSON's
// \ud800 escapes can carry) has no UTF-8 form, so it would be stored and compared as U+FFFD
// (msgpack, SQLite, MySQL all write UTF-8), and two different cids could become one.

const LONE_SURROGATE = /\p{Cs}/u;

/** Strict UTF-8 (throws on an invalid sequence), keeping a leading BOM as text. */
export const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function wellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/** At most `max` UTF-16 units, never cutting a surrogate pair in half. */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  const code = s.charCodeAt(max - 1);
  return s.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

/**
 * Refused in a name others see (display names, room names, subjects): control characters (C0,
 * DEL, C1), bidirectional controls (they can reorder what is shown around the name) and invisible
 * characters (zero-width, word joiner, BOM), and lone surrogates. Everything else is kept as typed.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/;

export function printable(s: string): boolean {
  return !UNPRINTABLE.test(s) && wellFormed(s);
}
