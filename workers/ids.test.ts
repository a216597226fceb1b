// The TSID encoder and generator, and the templated message JSON against JSON.stringify.

import { describe, expect, it, onTestFailed } from 'vitest';
import { messageJson, type Message } from './contract.ts';
import { IdGenerator, TSID_RE, tsidFloor, tsidToBigInt, tsidToString } from './ids.ts';
import { rng } from '../test/reliability-helpers.ts';

/** The reference: base32 of a 65-bit field, one BigInt division per character. */
function reference(n: bigint): string {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let out = '';
  for (let i = 0; i < 13; i++) {
    out = alphabet[Number(n % 32n)] + out;
    n /= 32n;
  }
  return out;
}

const EPOCH = Date.UTC(2020, 0, 1);
const parts = (t: bigint): { ms: number; node: number; counter: number } => ({ ms: Number(t >> 22n), node: Number((t >> 12n) & 1023n), counter: Number(t & 0xfffn) });

describe('ids', () => {
  it('encodes as the TSID reference does, and decodes back', () => {
    // Known values (the canonical forms other TSID libraries give for these integers).
    const known: [bigint, string][] = [
      [0n, '0000000000000'], [1n, '0000000000001'], [31n, '000000000000Z'], [32n, '0000000000010'],
      [(1n << 30n) - 1n, '0000000ZZZZZZ'], [1n << 30n, '0000001000000'], [(1n << 63n) - 1n, '7ZZZZZZZZZZZZ'],
      [0x0123456789abcdefn, '028T5CY4TQKFF'], [745386241000742912n, '0MP14TS1N0800'], [1n << 62n, '4000000000000'],
    ];
    for (const [n, s] of known) {
      expect(tsidToString(n)).toBe(s);
      expect(reference(n)).toBe(s);
      expect(tsidToBigInt(s)).toBe(n);
    }
    const seed = Number(process.env.IDS_SEED ?? Math.floor(Math.random() * 2 ** 31));
    onTestFailed(() => console.log(`ids: IDS_SEED=${seed} replays this run`));
    const rand = rng(seed);
    for (let i = 0; i < 50_000; i++) {
      const n = (BigInt(Math.floor(rand() * 2 ** 31)) << 32n) | BigInt(Math.floor(rand() * 2 ** 32));
      expect(tsidToString(n)).toBe(reference(n));
      expect(tsidToBigInt(tsidToString(n))).toBe(n);
    }
  });

  it('generates canonical, strictly increasing ids: time, node, counter', () => {
    const ids = new IdGenerator(3);
    let prev = '';
    const before = Date.now();
    for (let i = 0; i < 20_000; i++) {
      const { id, tsid } = ids.next();
      expect(TSID_RE.test(id)).toBe(true);
      expect(id > prev).toBe(true);
      expect(tsidToBigInt(id)).toBe(tsid);
      expect(tsidToString(tsid)).toBe(id);
      expect(parts(tsid).node).toBe(3);
      prev = id;
    }
    const first = parts(new IdGenerator(3).next().tsid);
    expect(first.ms + EPOCH).toBeGreaterThanOrEqual(before);
    expect(first.ms + EPOCH).toBeLessThanOrEqual(Date.now());
  });

  it('refuses a node id outside 0..1023, and takes both ends', () => {
    for (const bad of [-1, 1024, 1.5, Number.NaN]) expect(() => new IdGenerator(bad)).toThrow(RangeError);
    expect(parts(new IdGenerator(0).next().tsid).node).toBe(0);
    expect(parts(new IdGenerator(1023).next().tsid).node).toBe(1023);
  });

  it('counts up within a millisecond, takes the next one past 4,095, and goes on when the clock steps back', () => {
    let now = EPOCH + 1_000_000;
    const ids = new IdGenerator(9, () => now);
    const first = ids.next();
    expect(tsidToString(first.tsid)).toBe(first.id);
    const a = parts(first.tsid);
    expect(a.ms).toBe(1_000_000);
    // Within one clock millisecond: counter + 1 each, until it passes 4,095.
    let last = a;
    for (let i = 0; i < 4095 - a.counter; i++) {
      const r = ids.next();
      expect(tsidToString(r.tsid)).toBe(r.id);
      const p = parts(r.tsid);
      expect(p).toEqual({ ms: 1_000_000, node: 9, counter: last.counter + 1 });
      last = p;
    }
    expect(last.counter).toBe(4095);
    expect(parts(ids.next().tsid)).toEqual({ ms: 1_000_001, node: 9, counter: 0 });
    // The clock steps back a second: ids go on from the last.
    now -= 1000;
    expect(parts(ids.next().tsid)).toEqual({ ms: 1_000_001, node: 9, counter: 1 });
    // A new clock millisecond past the last id's: a fresh counter, not always the same.
    const starts = new Set<number>();
    for (let i = 0; i < 20; i++) {
      now = EPOCH + 2_000_000 + i;
      const p = parts(ids.next().tsid);
      expect(p.ms).toBe(2_000_000 + i);
      starts.add(p.counter);
    }
    expect(starts.size).toBeGreaterThan(1);
  });

  it('carries the node id in its node bits, and nextAbove passes any other node\'s id', () => {
    let now = EPOCH + 5_000_000;
    const a = new IdGenerator(7, () => now);
    const b = new IdGenerator(900, () => now);
    const checked = (r: { id: string; tsid: bigint }): bigint => {
      expect(tsidToString(r.tsid)).toBe(r.id);
      expect(TSID_RE.test(r.id)).toBe(true);
      return r.tsid;
    };
    expect(parts(checked(a.next())).node).toBe(7);
    expect(parts(checked(b.next())).node).toBe(900);
    // b's id from 50 ms ahead (a clock ahead): a's next id in that room must still be above it.
    const ahead = checked(b.nextAbove(tsidFloor(now + 50)));
    expect(parts(ahead)).toEqual({ ms: 5_000_050, node: 900, counter: 0 });
    const x = checked(a.nextAbove(ahead));
    expect(parts(x)).toEqual({ ms: 5_000_051, node: 7, counter: 0 });
    expect(checked(a.next()) > x).toBe(true);
    // a higher node id passing a lower one within the same millisecond
    const y = checked(b.nextAbove(x + 5n));
    expect(parts(y)).toEqual({ ms: 5_000_051, node: 900, counter: 0 });
    // this node's own id ahead of it (written by an earlier run of this node): the next counter,
    // or the next millisecond past counter 4,095
    const own = (5_000_100n << 22n) | (7n << 12n) | 5n;
    expect(parts(checked(a.nextAbove(own)))).toEqual({ ms: 5_000_100, node: 7, counter: 6 });
    const full = (5_000_200n << 22n) | (7n << 12n) | 0xfffn;
    expect(parts(checked(a.nextAbove(full)))).toEqual({ ms: 5_000_201, node: 7, counter: 0 });
    // a floor behind the clock: the plain next id
    now += 1_000;
    const behind = checked(a.nextAbove(y));
    expect(parts(behind).ms).toBe(5_001_000);
    expect(behind > y).toBe(true);
  });

  it('counts a clock before 2020 as 2020, and refuses a time past 2089', () => {
    const early = new IdGenerator(1, () => EPOCH - 10_000);
    const e = early.next();
    expect(parts(e.tsid)).toMatchObject({ ms: 0, node: 1 });
    expect(TSID_RE.test(e.id)).toBe(true);
    const late = new IdGenerator(1, () => EPOCH + 2 ** 41 - 1);
    expect(parts(late.next().tsid).ms).toBe(2 ** 41 - 1);
    expect(() => late.nextAbove(((2n ** 41n - 1n) << 22n) | (1n << 12n) | 0xfffn)).toThrow(RangeError);
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
