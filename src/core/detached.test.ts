// What the front thread keeps holds no decoded batch alive. Decoded, a batch's short strings are
// slices of one string of a stretch of the batch (detached.ts): the id of a message the actor
// committed, the JSON and sender of a message another node published, and a room's state from the
// actor (its info, window and read positions). What a window and a room keep are strings of their
// own. Told by heap snapshots of a child process: whether a string holding a kept text and more
// (the batch's) is still alive.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { newMessageJson } from '../../workers/contract.ts';

const url = (rel: string): string => pathToFileURL(fileURLToPath(new URL(rel, import.meta.url))).href;

// A heap snapshot names a string by its first 1,024 characters, so each case keeps a message near
// the start of its batch (message 2), where the batch's name still holds its text. Each step runs
// in a function of its own, so nothing of it stays on the stack but what it returns.
const CHILD = `
const { decodeBatch, encodeBatch, newMessageJson } = await import(${JSON.stringify(url('../../workers/contract.ts'))});
const { Window, WindowBudget } = await import(${JSON.stringify(url('./window.ts'))});
const { Room } = await import(${JSON.stringify(url('./rooms.ts'))});
const { packMessages, unpackMessages } = await import(${JSON.stringify(url('../cluster/broker.ts'))});
const v8 = await import('node:v8');
const path = await import('node:path');
const snapshot = (name) => v8.writeHeapSnapshot(path.join(process.env.SNAP_DIR, name + '.heapsnapshot'));

const id = (i) => (1e12 + i).toString(36).padStart(13, '0');
const from = (i) => 'user-' + i + '-with-a-long-id';
const json = (i) => newMessageJson(id(i), 'room-1', i + 1, 'CHAT', from(i), from(i), 'x'.repeat(64), 1765000000000, null, null);
const message = (i) => ({ room: 'room-1', seq: i + 1, id: id(i), at: 1765000000000, from: from(i), json: json(i) });
const results = (ids) => ids.map((x, i) => ({ token: i + 1, room: 'room-' + i, seq: i + 1, id: x, at: 1765000000000, dup: false, deliver: true, error: null }));
const port = (evts) => decodeBatch(encodeBatch(evts));
// msgpackr keeps what it decoded last until it decodes again: then a batch of something else.
const other = () => port([{ t: 'committed', results: results(Array(50).fill('y'.repeat(13))), batch: 50, commitMs: 1 }]);

// The actor's commit results, as the front thread decodes them: a window keeps message 2's id.
const committed = () => port([{ t: 'committed', results: results(Array.from({ length: 50 }, (_, i) => id(i))), batch: 50, commitMs: 1 }]);
function windowOf() {
  const w = new Window('room-1', 10, 1e9, new WindowBudget(1e9));
  const r = committed()[0].results[2];
  w.push({ room: 'room-1', seq: r.seq, id: r.id, at: r.at, from: 'u', json: '{}' });
  return w;
}
let held = committed();
snapshot('results-decoded');
held = null;
const w = windowOf();
other();
snapshot('results-kept');

// Another node's messages of one room, as the bus carries them: a window keeps message 2.
const payload = () => packMessages(Array.from({ length: 20 }, (_, i) => message(i)));
function busWindowOf() {
  const bw = new Window('room-1', 10, 1e9, new WindowBudget(1e9));
  bw.push(unpackMessages('room-1', payload())[2]);
  return bw;
}
held = unpackMessages('room-1', payload());
snapshot('bus-decoded');
held = null;
const bw = busWindowOf();
other();
snapshot('bus-kept');

// A room's state from the actor (with another room's after it in the batch): the room keeps its
// info, its window and its read positions.
const state = (room, first) => ({ room, info: { id: room, kind: 'group', name: 'name-of-' + room, subject: null, members: [from(first), from(first + 1)], epoch: id(first + 100), createdAt: 1 },
  lastSeq: first + 3, recent: [message(first), message(first + 1), message(first + 2)], complete: true, reads: [[from(first + 2), first + 1]] });
const loaded = () => port([{ t: 'room', room: 'room-1', state: state('room-1', 0) }, { t: 'room', room: 'room-2', state: state('room-2', 10) }]);
function roomOf() {
  const room = new Room('room-1', new Window('room-1', 10, 1e9, new WindowBudget(1e9)));
  room.install(loaded()[0].state);
  return room;
}
held = loaded();
snapshot('room-decoded');
held = null;
const room = roomOf();
other();
snapshot('room-kept');

const kept = bw.at(0);
console.log(JSON.stringify({
  results: w.idAt(0) === id(2),
  bus: kept.id === id(2) && kept.from === from(2) && kept.json === json(2),
  room: room.window.size === 3 && room.window.at(2).json === json(2) && room.info.epoch === id(100) && room.members.has(from(1)) && room.reads.get(from(2)) === 1,
}));
`;

const dir = mkdtempSync(join(tmpdir(), 'detached-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const id = (i: number): string => (1e12 + i).toString(36).padStart(13, '0');
const from = (i: number): string => `user-${i}-with-a-long-id`;
const json = (i: number): string => newMessageJson(id(i), 'room-1', i + 1, 'CHAT', from(i), from(i), 'x'.repeat(64), 1765000000000, null, null);

/**
 * How many strings alive in snapshot `name` hold `text` and more, other than the strings kept on
 * purpose (`own`, and the string a copy is a slice of: ' ' + its text). A slice is named
 * "(sliced string)" in a snapshot; its parent holds the text.
 */
function holding(name: string, text: string, own: string[]): number {
  const snap = JSON.parse(readFileSync(join(dir, `${name}.heapsnapshot`), 'utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
  const f = snap.snapshot.meta.node_fields;
  const kinds = snap.snapshot.meta.node_types[0];
  const [type, nameAt] = [f.indexOf('type'), f.indexOf('name')];
  const skip = new Set([text, ' ' + text, ...own, ...own.map((s) => ' ' + s)]);
  let n = 0;
  for (let i = 0; i < snap.nodes.length; i += f.length) {
    const s = snap.strings[snap.nodes[i + nameAt]];
    if (kinds[snap.nodes[i + type]] === 'string' && !skip.has(s) && s.includes(text)) n++;
  }
  return n;
}

describe('strings the front thread keeps', () => {
  it('hold no decoded batch alive', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], { encoding: 'utf8', env: { ...process.env, SNAP_DIR: dir } });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ results: true, bus: true, room: true });
    // [case, a text kept, the kept messages' JSON (which holds their ids and senders)]
    const cases: [string, string, string[]][] = [
      ['results', id(2), []],
      ['bus', id(2), [json(2)]],
      ['bus', from(2), [json(2)]],
      ['room', from(2), [json(0), json(1), json(2)]], // a message's sender, a read position's user
      ['room', from(1), [json(0), json(1), json(2)]], // a member
      ['room', id(100), []], // the epoch
    ];
    for (const [what, text, own] of cases) {
      // Decoded, a string of the batch holds the text (else this test would prove nothing)...
      expect(holding(`${what}-decoded`, text, own), `${what} decoded: ${text}`).toBeGreaterThan(0);
      // ...and once only what is kept is referenced, none does.
      expect(holding(`${what}-kept`, text, own), `${what} kept: ${text}`).toBe(0);
    }
  });
});
