// The hot window's bounds: it always holds the newest messages of its room, contiguous in seq,
// never more than its count or its bytes (but the newest one), and its bytes are exactly what the
// node-wide budget counts for it. Randomized, seeded (the seed is in the failure message).

import { describe, expect, it } from 'vitest';
import type { Delivered } from '../../workers/contract.ts';
import { Window, WindowBudget } from './window.ts';

const SEED = Number(process.env.TEST_SEED ?? 20261205);

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

function msg(seq: number, len: number): Delivered {
  return { room: 'r', seq, id: String(seq).padStart(13, '0'), at: 0, from: 'u', json: 'x'.repeat(len) };
}

describe('Window', () => {
  it(`holds the newest messages within its count and bytes (seed ${SEED})`, () => {
    const rnd = rng(SEED);
    for (let trial = 0; trial < 60; trial++) {
      const budget = new WindowBudget(1 << 30);
      const cap = 1 + Math.floor(rnd() * 20);
      const maxBytes = 100 + Math.floor(rnd() * 2000);
      const w = new Window(cap, maxBytes, budget);
      const all: Delivered[] = [];
      for (let seq = 1; seq < 300; seq++) {
        const d = msg(seq, 1 + Math.floor(rnd() * 300));
        all.push(d);
        w.push(d);
        const n = w.size;
        let bytes = 0;
        for (let i = 0; i < n; i++) {
          expect(w.at(i), `seed ${SEED} trial ${trial} seq ${seq}`).toBe(all[all.length - n + i]);
          bytes += w.at(i).json.length;
        }
        expect(n >= 1 && n <= cap && (n === 1 || bytes <= maxBytes), `seed ${SEED} trial ${trial} seq ${seq}`).toBe(true);
        expect(w.byteSize).toBe(bytes);
        expect(budget.total).toBe(bytes);
        if (rnd() < 0.01) {
          w.clear();
          expect(budget.total).toBe(0);
        }
      }
    }
  });

  it('past the node-wide budget asks for relief first, then trims itself', () => {
    const budget = new WindowBudget(1000);
    const other = new Window(100, 1 << 20, budget);
    other.push(msg(1, 600));
    let relieved = 0;
    budget.relieve = () => {
      relieved++;
      other.clear();
    };
    const w = new Window(100, 1 << 20, budget);
    for (let seq = 1; seq <= 5; seq++) w.push(msg(seq, 300));
    // Asked until an asking frees nothing (the idle room went the first time), not on every push;
    // then this window trims its own oldest.
    expect(relieved).toBe(2);
    expect(budget.total).toBeLessThanOrEqual(1000);
    expect(w.size).toBe(3);
    expect(w.at(0).seq).toBe(3);
  });
});
