// The ring of sends in flight: found by token whether they settle in order, out of order, or stay
// unsettled for more than a lap of the ring (then they are kept aside and still found).

import { describe, expect, it } from 'vitest';
import { InFlight } from './in-flight.ts';

describe('InFlight', () => {
  it('finds, counts and removes sends in and out of order', () => {
    const f = new InFlight<string>(3); // 8 slots
    for (let t = 1; t <= 6; t++) f.set(t, `s${t}`);
    expect(f.size).toBe(6);
    expect(f.get(4)).toBe('s4');
    expect(f.delete(4)).toBe(true);
    expect(f.delete(4)).toBe(false);
    expect(f.get(4)).toBeUndefined();
    expect(f.delete(2)).toBe(true);
    expect(f.get(9)).toBeUndefined(); // slot 1 holds token 1, not 9
    expect(f.size).toBe(4);
  });

  it('keeps a send that outlives a lap of the ring, and the one that took its slot', () => {
    const f = new InFlight<string>(2); // 4 slots
    f.set(1, 'stuck');
    for (let t = 2; t <= 20; t++) {
      f.set(t, `s${t}`);
      expect(f.get(1)).toBe('stuck');
      expect(f.get(t)).toBe(`s${t}`);
      if (t > 2) expect(f.delete(t - 1)).toBe(true);
    }
    expect(f.size).toBe(2);
    expect(f.get(5)).toBeUndefined();
    expect(f.delete(1)).toBe(true);
    expect(f.get(1)).toBeUndefined();
    expect(f.delete(20)).toBe(true);
    expect(f.size).toBe(0);
  });

  it('keeps every one of many sends held past several laps', () => {
    const f = new InFlight<number>(2);
    const held = [3, 7, 8, 13];
    for (let t = 1; t <= 40; t++) {
      f.set(t, t);
      if (t > 1 && !held.includes(t - 1)) f.delete(t - 1);
    }
    for (const t of held) expect(f.get(t)).toBe(t);
    expect(f.size).toBe(held.length + 1);
    for (const t of [...held, 40]) expect(f.delete(t)).toBe(true);
    expect(f.size).toBe(0);
  });
});
