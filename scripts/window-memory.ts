// What a hot window's entry holds of the front thread's heap beyond its JSON's bytes (the
// ENTRY_BYTES that src/core/window.ts charges to CHAT_WINDOW_BYTES and CHAT_WINDOWS_MAX_BYTES).
// Fills ROOMS windows with PER messages each, `direct`-like (two senders alternating, a 100-byte
// text), every string fresh and flat as a decoded batch gives them, then reads the heap after a
// full collection. Prints the JSON bytes held, the heap they took, and the heap per entry beyond
// its JSON (the whole difference, so it includes each window's own objects: with few messages
// per room that share grows). With COMMIT, each entry's id is taken as the write path takes it:
// decoded from a commit's results (a batch of COMMIT results of its own, a quiet room's messages
// far apart), which shows what an id kept as decoded would hold (src/core/detached.ts).
//   node --expose-gc --import tsx scripts/window-memory.ts [rooms=1000] [per=200] [commit]
import { Window, WindowBudget } from '../src/core/window.ts';
import { decodeBatch, encodeBatch, newMessageJson, type CommittedEvt, type SendResult } from '../workers/contract.ts';

const ROOMS = Number(process.argv[2] ?? 1000);
const PER = Number(process.argv[3] ?? 200);
const COMMIT = Number(process.argv[4] ?? 0);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

/** A flat copy of s (a decoded string, not a rope of the template's parts). */
const flat = (s: string): string => Buffer.from(s).toString();

/** The id as the window gets it: flat, or decoded from a commit's results of its own. */
function idOf(id: string): string {
  if (COMMIT === 0) return flat(id);
  const results: SendResult[] = Array.from({ length: COMMIT }, (_, k) => ({ token: k + 1, room: `room-${k}`, seq: k + 1, id: k === 0 ? id : (1e12 + k).toString(36).padStart(13, '1'), at: 0, dup: false, deliver: true, error: null }));
  return decodeBatch<CommittedEvt>(encodeBatch([{ t: 'committed', results, batch: COMMIT, commitMs: 1 }]))[0].results[0].id;
}

gc();
gc();
const before = process.memoryUsage().heapUsed;
const budget = new WindowBudget(Number.MAX_SAFE_INTEGER);
const windows: Window[] = [];
let jsonBytes = 0;
const at = Date.now();
for (let r = 0; r < ROOMS; r++) {
  const room = `room-${r}`;
  const w = new Window(room, PER, Number.MAX_SAFE_INTEGER, budget);
  windows.push(w);
  for (let i = 0; i < PER; i++) {
    const id = (1e12 + r * PER + i).toString(36).padStart(13, '0');
    const from = `user-${2 * r + (i & 1)}`;
    const json = newMessageJson(id, room, i + 1, 'CHAT', from, from, 'x'.repeat(100), at, null, null);
    jsonBytes += Buffer.byteLength(json);
    w.push({ room, seq: i + 1, id: idOf(id), at, from: flat(from), json });
  }
}
gc();
gc();
const heap = process.memoryUsage().heapUsed - before;
const entries = ROOMS * PER;
console.log(JSON.stringify({
  rooms: ROOMS, perRoom: PER, commit: COMMIT, entries, jsonBytes, budgetBytes: budget.total, heapBytes: heap,
  heapPerJsonByte: +(heap / jsonBytes).toFixed(2), heapBeyondJsonPerEntry: Math.round((heap - jsonBytes) / entries), windowsKept: windows.length,
}));
