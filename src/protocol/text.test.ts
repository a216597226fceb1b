// Well-formed text: lone surrogates are found, whole pairs are not, and a cut never splits a pair.

import { describe, expect, it } from 'vitest';
import { truncate, wellFormed } from './text.ts';

describe('text', () => {
  it('wellFormed: a lone high or low surrogate anywhere is ill-formed; pairs and U+FFFD are fine', () => {
    for (const bad of ['\ud800', '\udc00', 'a\ud83d', '\ude00b', '\ud83d\ud83d\ude00\ude00x\udbff']) expect(wellFormed(bad), JSON.stringify(bad)).toBe(false);
    for (const good of ['', 'plain', '\u{1F600}', 'a\u{1F600}b\u{10FFFF}', '\ufffd', 'עברית']) expect(wellFormed(good), good).toBe(true);
  });

  it('truncate: at most max UTF-16 units, never half a surrogate pair', () => {
    expect(truncate('abc', 5)).toBe('abc');
    expect(truncate('abcdef', 3)).toBe('abc');
    const s = 'x'.repeat(63) + '\u{1F600}' + 'y';
    expect(truncate(s, 64)).toBe('x'.repeat(63));
    expect(truncate(s, 65)).toBe('x'.repeat(63) + '\u{1F600}');
    expect(wellFormed(truncate(s, 64))).toBe(true);
  });
});
