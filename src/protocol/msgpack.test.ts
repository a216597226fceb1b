// The MessagePack UTF-8 check (msgpack.ts stringsAreUtf8): every string in a frame, at any depth,
// must be valid UTF-8, whatever else the frame holds.

import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeMsgpack, stringsAreUtf8 } from './msgpack.ts';

const packr = new Packr({ useRecords: false });

describe('stringsAreUtf8', () => {
  it('accepts frames of every MessagePack type with valid strings (fix/8/16/32 lengths, nested, bin, ext, numbers)', () => {
    const values: unknown[] = [
      { op: 'send', room: 'r', text: 'h\u00e9llo \u{1F600} \ufffd', cid: 'c-1' },
      { a: [1, -1, 255, -129, 70000, -70000, 2 ** 40, -(2 ** 40), 1.5, 0.1, true, false, null], s: 'x'.repeat(40), m: 'y'.repeat(300), l: 'z'.repeat(70_000) },
      { bin: new Uint8Array([0xff, 0xfe, 0xc3, 0x41]), date: new Date(1_700_000_000_000), nested: { deeper: [{ k: '\u00fc' }] } },
      Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])), // map 16
      Array.from({ length: 20 }, (_, i) => `v${i}`), // array 16
    ];
    for (const v of values) expect(stringsAreUtf8(packr.pack(v)), JSON.stringify(v).slice(0, 60)).toBe(true);
  });

  it('refuses a string with an invalid sequence, also one msgpackr would decode to a different valid character', () => {
    const cid = (bytes: number[]): Uint8Array => {
      const f = packr.pack({ op: 'send', room: 'r', text: 'x', cid: 'A'.repeat(bytes.length) });
      const at = Buffer.from(f).lastIndexOf(Buffer.from('A'.repeat(bytes.length)));
      f.set(bytes, at);
      return f;
    };
    expect(stringsAreUtf8(cid([0x61, 0xc3, 0x81]))).toBe(true); // "aÁ", valid
    expect(stringsAreUtf8(cid([0x61, 0xc3, 0x41]))).toBe(false); // a bad continuation byte
    expect(stringsAreUtf8(cid([0x61, 0xff]))).toBe(false);
    // A U+FFFD elsewhere in the frame does not hide a bad cid.
    const f = packr.pack({ op: 'send', room: 'r', text: 'x', cid: 'AA', x: ['\ufffd'] });
    f.set([0x61, 0xff], Buffer.from(f).indexOf(Buffer.from('AA')));
    expect(stringsAreUtf8(f)).toBe(false);
    expect(decodeMsgpack(f.slice().buffer, true)).toMatchObject({ error: 'bad_frame' });
  });

  it('refuses truncated input and the never-used 0xc1, and walks 100,000 nested arrays without recursion', () => {
    const f = packr.pack({ op: 'ping', ref: 'abcdef' });
    expect(stringsAreUtf8(f.subarray(0, f.length - 2))).toBe(false);
    expect(stringsAreUtf8(new Uint8Array([0xc1]))).toBe(false);
    const deep = new Uint8Array(100_001).fill(0x91); // [[[...[nil]...]]]
    deep[100_000] = 0xc0;
    expect(stringsAreUtf8(deep)).toBe(true);
  });
});
