// SQLite's dedupe window (workers/stores/sqlite/dedupe-window.ts) against a plain model of its rule,
// over seeded random adds, forgets and clock steps: a (sender, cid) stored within the window maps
// to the tsid of its newest message; older ones, and forgotten ones, are not found. Enough pairs
// that its ring grows several times and wraps around while it does.

import { describe, expect, it, onTestFailed } from 'vitest';
import { DedupeWindow } from '../workers/stores/sqlite/dedupe-window.ts';
import { rng } from './reliability-helpers.ts';

describe('the dedupe window', () => {
  it('answers as the model does over 54,000 seeded operations', () => {
    const seed = Number(process.env.FUZZ_SEED ?? 2026);
    onTestFailed(() => console.log(`dedupe window: FUZZ_SEED=${seed} replays this run`));
    const r = rng(seed);
    let clock = 1_000_000;
    const windowMs = 5_000;
    const w = new DedupeWindow(windowMs, () => clock);
    /** The model: key -> [tsid, at] of the newest message stored with it, while not forgotten. */
    const model = new Map<string, [bigint, number]>();
    let tsid = 1n;
    const key = (s: string, c: string): string => `${s}\u0000${c}`;
    // Phases: the clock jumps past the window (everything expires; the ring's head is left
    // anywhere), then more pairs than the phase before arrive while the clock creeps, so the ring
    // grows while it wraps.
    let i = 0;
    let swept = clock;
    for (let phase = 0; phase < 8; phase++) {
      clock += windowMs + 1;
      for (let n = 0; n < 1500 * (phase + 1); n++, i++) {
        const sender = `u${Math.floor(r() * 50)}`;
        // a small cid space per sender: pairs come back, within the window and after it
        const cid = `c${Math.floor(r() * 400)}`;
        const x = r();
        if (x < 0.85) {
          // stored: only a pair not found in the window is stored again (the engine's rule)
          if (w.get(sender, cid) === undefined) {
            w.add(sender, cid, tsid, clock);
            model.set(key(sender, cid), [tsid, clock]);
            tsid++;
          }
        } else if (x < 0.9) {
          const t = w.get(sender, cid);
          if (t !== undefined) {
            w.forget(sender, cid, t);
            model.delete(key(sender, cid));
          }
        } else if (x < 0.92) {
          w.forget(sender, cid, 0n); // not its tsid: nothing happens
        } else {
          clock += Math.floor(r() * 3);
        }
        w.expire();
        if (clock !== swept) for (const [k, [, at]] of model) if (at < clock - windowMs) model.delete(k);
        swept = clock;
        const m = model.get(key(sender, cid));
        expect(w.get(sender, cid), `op ${i}: ${sender}/${cid}`).toBe(m?.[0]);
        if (i % 997 === 0) {
          expect(w.size, `op ${i}: size`).toBe(model.size);
          for (const [k, [t]] of model) {
            const [s, c] = k.split('\u0000');
            expect(w.get(s, c), `op ${i}: ${k}`).toBe(t);
          }
        }
      }
    }
    expect(tsid).toBeGreaterThan(8192n); // the ring grew past its first sizes
  });

  it('tells pairs apart where the sender ends and the cid begins, whatever the characters', () => {
    const w = new DedupeWindow(5_000, () => 0);
    w.add('x\uffff', 'y', 1n, 0);
    w.add('ab', 'c', 2n, 0);
    expect(w.get('x', '\uffffy')).toBeUndefined();
    expect(w.get('a', 'bc')).toBeUndefined();
    expect(w.get('x\uffff', 'y')).toBe(1n);
    expect(w.get('ab', 'c')).toBe(2n);
    expect(w.size).toBe(2);
  });
});
