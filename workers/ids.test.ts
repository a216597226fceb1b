// The fast TSID encoder and the templated message JSON match their reference implementations.

import { TSID, TSIDGenerator } from 'tsid-ts';
import { describe, expect, it } from 'vitest';
import { messageJson, type Message } from './contract.ts';
import { IdGenerator, TSID_RE, tsidFloor, tsidToBigInt, tsidToString } from './ids.ts';

describe('ids', () => {
  it('encodes exactly as tsid-ts does, and decodes back', () => {
    const g = new TSIDGenerator(5, 10);
    for (let i = 0; i < 50_000; i++) {
      const t = g.create();
      expect(tsidToString(t.toBigInt())).toBe(t.toString());
    }
    for (const n of [0n, 1n, 31n, 32n, (1n << 30n) - 1n, 1n << 30n, (1n << 63n) - 1n]) {
      expect(tsidToString(n)).toBe(new TSID(n).toString());
      expect(tsidToBigInt(tsidToString(n))).toBe(n);
    }
  });

  it('generates canonical, strictly increasing ids', () => {
    const ids = new IdGenerator(3);
    let prev = '';
    for (let i = 0; i < 20_000; i++) {
      const { id, tsid } = ids.next();
      expect(TSID_RE.test(id)).toBe(true);
      expect(id > prev).toBe(true);
      expect(tsidToBigInt(id)).toBe(tsid);
      prev = id;
    }
  });

  it('carries the node id in its node bits, and nextAbove passes any other node\'s id', () => {
    const a = new IdGenerator(7);
    const b = new IdGenerator(900);
    const node = (t: bigint): number => Number((t >> 12n) & 1023n);
    expect(node(a.next().tsid)).toBe(7);
    expect(node(b.next().tsid)).toBe(900);
    // b's id from 50 ms in the future (a clock ahead): a's next id in that room must still be above it.
    const ahead = b.nextAbove(tsidFloor(Date.now() + 50)).tsid;
    const x = a.nextAbove(ahead);
    expect(x.tsid > ahead).toBe(true);
    expect(node(x.tsid)).toBe(7);
    expect(a.next().tsid > x.tsid).toBe(true);
    // and a lower node id passing a higher one within the same millisecond, and vice versa
    const y = b.nextAbove(a.nextAbove(ahead).tsid);
    expect(node(y.tsid)).toBe(900);
    expect(a.nextAbove(y.tsid).tsid > y.tsid).toBe(true);
  });
});

describe('messageJson', () => {
  const m: Message = { id: '0SA5ABCDEFGHJ', room: 'r.1:x-y', seq: 3, type: 'CHAT', from: { id: 'u"1', name: 'Mi\nna' }, text: 'he said "hi" \u2028 </script> \\', at: 1763800000000, cid: 'c\\1"' };
  it('is byte-identical to JSON.stringify of the protocol object, with and without cid', () => {
    expect(messageJson(m)).toBe(JSON.stringify({ id: m.id, room: m.room, seq: m.seq, type: m.type, from: m.from, text: m.text, at: m.at, cid: m.cid }));
    const { cid: _cid, ...noCid } = m;
    expect(messageJson(noCid)).toBe(JSON.stringify({ id: m.id, room: m.room, seq: m.seq, type: m.type, from: m.from, text: m.text, at: m.at }));
    expect(JSON.parse(messageJson(m))).toEqual(m);
  });
});
