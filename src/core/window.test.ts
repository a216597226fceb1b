// The hot window's bounds: it always holds the newest messages of its room, contiguous in seq,
// never more than its count or its bytes (but the newest one: an entry costs its JSON's bytes
// plus ENTRY_BYTES), and its bytes are exactly what the node-wide budget counts for it. Randomized, seeded (the seed is in the failure message). And a
// DELETE or EDIT rewrites the copies of its target the window holds.

import { describe, expect, it } from 'vitest';
import { isRetraction, typeOf, type Delivered, type Message } from '../../workers/contract.ts';
import { toDelivered } from './delivered.ts';
import { ENTRY_BYTES, entryBytes } from './window-entry.ts';
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
      const maxBytes = 100 + ENTRY_BYTES + Math.floor(rnd() * 2000);
      const w = new Window('r', cap, maxBytes, budget);
      const all: Delivered[] = [];
      for (let seq = 1; seq < 300; seq++) {
        const d = msg(seq, 1 + Math.floor(rnd() * 300));
        all.push(d);
        w.push(d);
        const n = w.size;
        let bytes = 0;
        for (let i = 0; i < n; i++) {
          expect(w.at(i), `seed ${SEED} trial ${trial} seq ${seq}`).toEqual(all[all.length - n + i]);
          bytes += w.at(i).json.length + ENTRY_BYTES;
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
    const other = new Window('r', 100, 1 << 20, budget);
    other.push(msg(1, 600 - ENTRY_BYTES)); // costs 600
    let relieved = 0;
    budget.relieve = () => {
      relieved++;
      other.clear();
    };
    const w = new Window('r', 100, 1 << 20, budget);
    for (let seq = 1; seq <= 5; seq++) w.push(msg(seq, 300 - ENTRY_BYTES)); // 300 each
    // Asked until an asking frees nothing (the idle room went the first time), not on every push;
    // then this window trims its own oldest.
    expect(relieved).toBe(2);
    expect(budget.total).toBeLessThanOrEqual(1000);
    expect(w.size).toBe(3);
    expect(w.at(0).seq).toBe(3);
  });
});

describe('Window.retract: a DELETE or EDIT rewrites the copies the window holds', () => {
  const msg = (seq: number, type: Message['type'], extra: Partial<Message> = {}): Delivered => {
    const m: Message = { id: `0SECKC2Y40${String(seq).padStart(3, '0')}`, room: 'r', seq, type, from: { id: 'u', name: 'U' }, text: `text ${seq}`, at: 1000 + seq, ...extra };
    if (type === 'DELETE') delete m.text;
    return toDelivered(m);
  };
  const parsed = (w: Window): Message[] => w.slice(0, w.size).map((d) => JSON.parse(d.json) as Message);

  it('knows the type of every message from its JSON, whatever the lengths of room and seq', () => {
    for (const seq of [1, 9, 10, 99, 100, 123_456_789]) {
      for (const type of ['CHAT', 'ENTER', 'QUIT', 'SYSTEM', 'DELETE', 'EDIT'] as const) {
        const d = toDelivered({ id: '0SECKC2Y4024B', room: 'a.room:name-64', seq, type, from: { id: 'u', name: 'U' }, text: 'x', at: 1 });
        expect(typeOf(d)).toBe(type);
        expect(isRetraction(d)).toBe(type === 'DELETE' || type === 'EDIT');
      }
    }
  });

  it('an EDIT gives its target the new text and editedAt and erases the earlier EDIT; a DELETE erases both', () => {
    const w = new Window('r', 100, 1 << 20, new WindowBudget(1 << 30));
    const target = msg(1, 'CHAT');
    const id = target.id;
    for (const d of [target, msg(2, 'CHAT'), msg(3, 'EDIT', { target: id, text: 'second' })]) {
      w.retract(d);
      w.push(d);
    }
    const e2 = msg(4, 'EDIT', { target: id, text: 'third' });
    w.retract(e2);
    w.push(e2);
    let all = parsed(w);
    expect(all[0]).toMatchObject({ text: 'third', editedAt: 1004 });
    expect(all[1].text).toBe('text 2');
    expect(all[2]).toMatchObject({ type: 'EDIT', deleted: true });
    expect(all[2].text).toBeUndefined();
    expect(all[3].text).toBe('third');
    const before = w.byteSize;
    const del = msg(5, 'DELETE', { target: id });
    w.retract(del);
    w.push(del);
    all = parsed(w);
    expect(all[0]).toEqual({ id, room: 'r', seq: 1, type: 'CHAT', from: { id: 'u', name: 'U' }, at: 1001, deleted: true });
    expect(all.filter((m) => m.text !== undefined).map((m) => m.seq)).toEqual([2]);
    expect(w.byteSize).toBeLessThan(before + entryBytes(del.json));
    let held = 0;
    for (let i = 0; i < w.size; i++) held += Buffer.byteLength(w.jsonAt(i)) + ENTRY_BYTES;
    expect(w.byteSize).toBe(held);
  });
});
