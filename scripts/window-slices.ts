// What hot windows hold of the front thread's heap when their ids come from the actor's commit
// results, as on the write path (each id decoded from a port batch): ROOMS windows of PER entries,
// every entry from a commit of its own of COMMIT results (a quiet room's messages, far apart).
// Prints the bytes the window budget counts and the heap they took, after a full collection. An
// id kept as it was decoded is a slice of its batch's string and keeps that string alive
// (src/core/detached.ts).
//   node --expose-gc --import tsx scripts/window-slices.ts [rooms=1000] [per=50] [commit=500]
import { Window, WindowBudget } from '../src/core/window.ts';
import { decodeBatch, encodeBatch, newMessageJson, type CommittedEvt, type SendResult } from '../workers/contract.ts';

const ROOMS = Number(process.argv[2] ?? 1000);
const PER = Number(process.argv[3] ?? 50);
const COMMIT = Number(process.argv[4] ?? 500);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

gc();
gc();
const before = process.memoryUsage().heapUsed;
const budget = new WindowBudget(Number.MAX_SAFE_INTEGER);
const windows = Array.from({ length: ROOMS }, (_, r) => new Window(`room-${r}`, PER, Number.MAX_SAFE_INTEGER, budget));
let seq = 0;
for (let i = 0; i < PER; i++) {
  for (let r = 0; r < ROOMS; r++) {
    const results: SendResult[] = Array.from({ length: COMMIT }, (_, k) => ({ token: k + 1, room: `room-${(r + k) % ROOMS}`, seq: ++seq, id: (1e12 + seq).toString(36).padStart(13, '0'), at: 1765000000000, dup: false, deliver: true, error: null }));
    const [evt] = decodeBatch<CommittedEvt>(encodeBatch([{ t: 'committed', results, batch: COMMIT, commitMs: 1 }]));
    const x = evt.results[0];
    const room = `room-${r}`;
    windows[r].push({ room, seq: i + 1, id: x.id, at: x.at, from: 'u', json: newMessageJson(x.id, room, i + 1, 'CHAT', 'u', 'u', 'x'.repeat(64), x.at, null, null) });
  }
}
gc();
gc();
const held = windows.reduce((n, w) => n + w.size, 0);
console.log(`${held} entries, each from a commit of ${COMMIT}: the budget counts ${(budget.total / 1e6).toFixed(1)} MB, the heap took ${((process.memoryUsage().heapUsed - before) / 1e6).toFixed(1)} MB`);
