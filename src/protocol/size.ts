// The size of a string as it is stored and sent: JSON-encoded (with its quotes), in UTF-8 bytes.
// A control character becomes six bytes (\u0001), a quote or backslash two; so a text of 64 KiB of
// \x01 is 393 KB on the wire, and this is what limits and budgets count.

const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

export function jsonStringBytes(s: string): number {
  // The common case: nothing to escape, and UTF-8 length is native.
  if (!NEEDS_ESCAPE.test(s)) return Buffer.byteLength(s, 'utf8') + 2;
  let n = 2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20) n += c === 8 || c === 9 || c === 10 || c === 12 || c === 13 ? 2 : 6;
    else if (c === 0x22 || c === 0x5c) n += 2;
    else if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4; // a surrogate pair (lone surrogates are refused before this is asked)
      i++;
    } else n += 3;
  }
  return n;
}
