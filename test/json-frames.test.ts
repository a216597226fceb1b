// The frames built from pieces (a new message's JSON, the ack) are exactly what JSON.stringify
// writes for the same object, keys in protocol order, whatever the strings hold: quotes,
// backslashes, control characters, non-Latin-1 text, surrogate pairs and lone surrogates.
// Randomized, seeded (the seed is in the failure message).

import { describe, expect, it } from 'vitest';
import { ackJson } from '../src/protocol/json.ts';
import { jsonInner, messageJson, newMessageJson, type Message, type MessageType } from '../workers/contract.ts';
import { rng } from './reliability-helpers.ts';

const SEED = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);

/** Characters a string is drawn from: plain, ones JSON escapes, and others that must pass as they are. */
const ALPHABET = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', '\u007f', 'é', 'ש', '\u2028', '\u{1F600}', '\ud800', '\udfff', '\ufffd'];

function randomString(next: () => number, max: number): string {
  let s = '';
  const n = Math.floor(next() * (max + 1));
  for (let i = 0; i < n; i++) s += next() < 0.6 ? ALPHABET[0] : ALPHABET[Math.floor(next() * ALPHABET.length)];
  return s;
}

/** The Message as JSON.stringify writes it with its keys in the protocol's order. */
function inProtocolOrder(m: Message): string {
  return JSON.stringify({ id: m.id, room: m.room, seq: m.seq, type: m.type, from: { id: m.from.id, name: m.from.name }, text: m.text, at: m.at, cid: m.cid, target: m.target, deleted: m.deleted, editedAt: m.editedAt });
}

describe('frames built from pieces', () => {
  it(`jsonInner is JSON.stringify without the quotes (seed ${SEED})`, () => {
    const next = rng(SEED);
    for (let i = 0; i < 2000; i++) {
      const s = randomString(next, 12);
      expect(jsonInner(s), `seed ${SEED}: ${JSON.stringify(s)}`).toBe(JSON.stringify(s).slice(1, -1));
    }
  });

  it(`newMessageJson writes what messageJson writes for the same message (seed ${SEED})`, () => {
    const next = rng(SEED + 1);
    const types: MessageType[] = ['CHAT', 'ENTER', 'QUIT', 'SYSTEM', 'EDIT', 'DELETE'];
    for (let i = 0; i < 1000; i++) {
      const type = types[Math.floor(next() * types.length)];
      const cid = next() < 0.3 ? null : randomString(next, 8);
      const target = type === 'EDIT' || type === 'DELETE' ? '0ABCDEFGHJKLN' : null;
      const text = type === 'DELETE' ? '' : randomString(next, 20);
      const m: Message = { id: '0ABCDEFGHJKLM', room: 'dm:a:b', seq: Math.floor(next() * 1e6), type, from: { id: randomString(next, 6), name: randomString(next, 6) }, at: 1_700_000_000_000 + i };
      if (type !== 'DELETE') m.text = text;
      if (cid !== null) m.cid = cid;
      if (target !== null) m.target = target;
      const built = newMessageJson(m.id, m.room, m.seq, type, m.from.id, m.from.name, text, m.at, cid, target);
      expect(built, `seed ${SEED} message ${i}`).toBe(messageJson(m));
      expect(JSON.parse(built), `seed ${SEED} message ${i}`).toEqual(m);
      expect(built, `seed ${SEED} message ${i}`).toBe(inProtocolOrder(m));
    }
  });

  it(`messageJson writes a retracted message's fields in protocol order too (seed ${SEED})`, () => {
    const next = rng(SEED + 3);
    for (let i = 0; i < 500; i++) {
      const m: Message = { id: '0ABCDEFGHJKLM', room: 'r', seq: i, type: 'CHAT', from: { id: randomString(next, 6), name: randomString(next, 6) }, at: 1_700_000_000_000 + i };
      if (next() < 0.5) m.deleted = true;
      else m.text = randomString(next, 20);
      if (next() < 0.5) m.cid = randomString(next, 8);
      if (next() < 0.5) m.editedAt = 1_700_000_000_500 + i;
      expect(messageJson(m), `seed ${SEED} message ${i}`).toBe(inProtocolOrder(m));
    }
  });

  it(`ackJson writes the ack's fields in protocol order (seed ${SEED})`, () => {
    const next = rng(SEED + 2);
    for (let i = 0; i < 1000; i++) {
      const cid = next() < 0.3 ? undefined : randomString(next, 8);
      const target = next() < 0.2 ? '0ABCDEFGHJKLN' : undefined;
      const ref = next() < 0.5 ? undefined : randomString(next, 8);
      const a = { room: 'r-1', id: '0ABCDEFGHJKLM', seq: i, at: 1_700_000_000_000 + i, cid, target };
      const expected = JSON.stringify({ op: 'ack', cid, room: a.room, id: a.id, seq: a.seq, at: a.at, target, ref });
      expect(ackJson(a, ref), `seed ${SEED} ack ${i}`).toBe(expected);
    }
  });
});
