// What a hot window keeps holds no decoded batch alive. The id of a message the actor committed
// (decoded from its commit results) and the sender and JSON of a message another node published
// (decoded from the bus) are slices of one string of their whole batch when decoded; what the
// window and the bus hand on are strings of their own. Told by heap snapshots of a child process:
// whether a string holding the batch's text is still alive.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const url = (rel: string): string => pathToFileURL(fileURLToPath(new URL(rel, import.meta.url))).href;

// Each step runs in a function of its own, so nothing of it stays on the stack but what it returns.
const CHILD = `
const { decodeBatch, encodeBatch, newMessageJson } = await import(${JSON.stringify(url('../../workers/contract.ts'))});
const { Window, WindowBudget } = await import(${JSON.stringify(url('./window.ts'))});
const { packMessages, unpackMessages } = await import(${JSON.stringify(url('../cluster/broker.ts'))});
const { Packr } = await import('msgpackr');
const v8 = await import('node:v8');
const path = await import('node:path');
const snapshot = (name) => v8.writeHeapSnapshot(path.join(process.env.SNAP_DIR, name + '.heapsnapshot'));

const id = (i) => (1e12 + i).toString(36).padStart(13, '0');
const at = 1765000000000;
// msgpackr keeps what it decoded last until it decodes again: a batch of something else.
const other = () => decodeBatch(encodeBatch([{ t: 'committed', results: Array.from({ length: 50 }, (_, i) => ({ token: i, room: 'elsewhere', seq: i, id: 'y'.repeat(13), at, dup: false, deliver: true, error: null })), batch: 50, commitMs: 1 }]));

// The actor's commit results, as the front thread decodes them.
const committed = () => decodeBatch(encodeBatch([{ t: 'committed', results: Array.from({ length: 50 }, (_, i) => ({ token: i + 1, room: 'room-' + i, seq: i + 1, id: id(i), at, dup: false, deliver: true, error: null })), batch: 50, commitMs: 1 }]));
function windowOf() {
  const w = new Window('room-7', 10, 1e9, new WindowBudget(1e9));
  const r = committed()[0].results[7];
  w.push({ room: 'room-7', seq: r.seq, id: r.id, at: r.at, from: 'u7', json: '{}' });
  return w;
}
let held = committed();
snapshot('results-decoded');
held = null;
const w = windowOf();
other();
snapshot('results-window');

// Another node's messages of one room, as the bus carries them.
const from = (i) => 'a-rather-long-user-id-' + i;
const json = (i) => newMessageJson(id(i), 'room-1', i + 1, 'CHAT', from(i), from(i), 'x'.repeat(64), at, null, null);
const payload = () => packMessages(Array.from({ length: 20 }, (_, i) => ({ room: 'room-1', seq: i + 1, id: id(i), at, from: from(i), json: json(i) })));
held = new Packr({ useRecords: false, moreTypes: false }).unpack(payload());
snapshot('bus-decoded');
held = null;
function busWindowOf() {
  const bw = new Window('room-1', 10, 1e9, new WindowBudget(1e9));
  bw.push(unpackMessages('room-1', payload())[5]);
  return bw;
}
const bw = busWindowOf();
other();
snapshot('bus-window');
const kept = bw.at(0);
console.log(JSON.stringify({ windowId: w.idAt(0) === id(7), kept: kept.id === id(5) && kept.from === from(5) && kept.json === json(5) }));
`;

const dir = mkdtempSync(join(tmpdir(), 'detached-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** How many strings alive in snapshot `name` hold `text` and more (a batch's string; a slice's text is its parent's). */
function holding(name: string, text: string): number {
  const snap = JSON.parse(readFileSync(join(dir, `${name}.heapsnapshot`), 'utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
  const f = snap.snapshot.meta.node_fields;
  const kinds = snap.snapshot.meta.node_types[0];
  const [type, nameAt] = [f.indexOf('type'), f.indexOf('name')];
  let n = 0;
  for (let i = 0; i < snap.nodes.length; i += f.length) {
    const s = snap.strings[snap.nodes[i + nameAt]];
    if (kinds[snap.nodes[i + type]] === 'string' && s !== text && s.includes(text)) n++;
  }
  return n;
}

describe('strings a hot window keeps', () => {
  it('hold no decoded batch alive', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], { encoding: 'utf8', env: { ...process.env, SNAP_DIR: dir } });
    const same = JSON.parse(out.trim().split('\n').pop()!) as { windowId: boolean; kept: boolean };
    const first = (1e12).toString(36).padStart(13, '0'); // message 0's id, in the results' batch
    // Decoded, a batch is one string (else this test would prove nothing).
    expect(holding('results-decoded', first)).toBeGreaterThan(0);
    expect(holding('bus-decoded', 'a-rather-long-user-id-0')).toBeGreaterThan(0);
    // Once only what is kept is referenced, the batch's string is gone; what is kept reads the same.
    expect(holding('results-window', first)).toBe(0);
    expect(holding('bus-window', 'a-rather-long-user-id-0')).toBe(0);
    expect(same).toEqual({ windowId: true, kept: true });
  });
});
