// The batch encoding between the front thread and the actor (workers/contract.ts): every shape
// round-trips, and the shapes every message travels in use the shared structure table (one byte
// names the record, no key names in the batch).

import { describe, expect, it } from 'vitest';
import { decodeBatch, encodeBatch, SHARED_SHAPES, type CommittedEvt, type FromActor, type SendCmd, type ToActor } from './contract.ts';
import { duplicate, notFound, rejected, stored } from './persistence/pending.ts';
import type { NewMessage } from './stores/store.ts';

const msg: NewMessage = {
  tsid: 1n, id: '0ABCDEFGHJKLM', room: 'r1', seq: 7, type: 'CHAT', fromId: 'u1', fromName: 'U', text: 'hi', at: 1_700_000_000_000,
  cid: 'c1', target: null, event: null,
};
const send: SendCmd = {
  t: 'send', token: 1, room: 'r1', type: 'CHAT', fromId: 'u1', fromName: 'U', text: 'hé ☃', cid: 'c1', at: 1_700_000_000_000,
  create: true, target: null, admin: false, recipients: null,
};

/** The record id the batch's first element is written with (msgpackr: 0x40 + its index in the table). */
function recordByte(items: ToActor[] | FromActor[]): number {
  const buf = encodeBatch(items);
  expect(buf[0]).toBe(0x90 + items.length); // a fixarray
  return buf[1];
}

describe('the batch encoding', () => {
  it('writes a send, a result and a commit event as shared records', () => {
    expect(recordByte([send])).toBe(0x40 + SHARED_SHAPES.findIndex((k) => k[0] === 't' && k[1] === 'token'));
    const committed: CommittedEvt = { t: 'committed', results: [stored(1, msg, true)], batch: 1, commitMs: 0.5 };
    expect(recordByte([committed])).toBe(0x40 + SHARED_SHAPES.findIndex((k) => k[1] === 'results'));
    const resultShape = 0x40 + SHARED_SHAPES.findIndex((k) => k[0] === 'token');
    for (const r of [stored(1, msg, false), duplicate(2, msg), notFound(3, 'r1')]) {
      const buf = encodeBatch([{ t: 'committed', results: [r], batch: 0, commitMs: 0 }]);
      // [fixarray 1] [commit event record] [fixstr "committed"] [fixarray 1] [result record]
      expect(buf.subarray(2, 12)).toEqual(new Uint8Array([0xa9, ...Buffer.from('committed')]));
      expect(buf[12]).toBe(0x91);
      expect(buf[13]).toBe(resultShape);
    }
  });

  it('round-trips every shape, shared or not, in one batch', () => {
    const items: FromActor[] = [
      { t: 'committed', results: [stored(1, msg, true), duplicate(2, msg), rejected(3, 'r1', 'forbidden', 'no'), notFound(4, 'r2')], batch: 4, commitMs: 1.25 },
      { t: 'health', ok: false, reason: 'down' } as FromActor,
      { t: 'committed', results: [stored(5, msg, false)], batch: 1, commitMs: 0 },
    ];
    expect(decodeBatch<FromActor>(encodeBatch(items))).toEqual(items);
    const cmds: ToActor[] = [send, { ...send, token: 2, cid: null, recipients: ['u2', 'u3'] }, { t: 'shutdown' } as ToActor, send];
    expect(decodeBatch<ToActor>(encodeBatch(cmds))).toEqual(cmds);
  });

  it('keeps the shared table fixed: a new shape is defined in its own batch', () => {
    const odd = { t: 'send', token: 9, extra: 1 } as unknown as ToActor;
    for (let i = 0; i < 3; i++) expect(decodeBatch<ToActor>(encodeBatch([odd, send]))).toEqual([odd, send]);
    expect(recordByte([send])).toBe(0x40);
  });
});
