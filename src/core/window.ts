// A room's hot window: its newest messages, kept on the front thread so a join and the first
// history page need no disk.

import { isRetraction, messageJson, type Delivered, type Message } from '../../workers/contract.ts';
import { detached } from './detached.ts';
import { entryBytes } from './window-entry.ts';

/**
 * What every window of this node holds together, in bytes (entryBytes), and its cap. When a
 * push passes the cap, `relieve` is asked first (the registry drops rooms nobody is in); if that
 * is not enough, the window that grows trims its own oldest messages.
 */
export class WindowBudget {
  total = 0;
  relieve: () => void = () => undefined;
  /** When relief was last asked: at most every RELIEF_MS (it scans the rooms). */
  private reliefAt = -Infinity;
  constructor(readonly max: number) {}

  /** Over the cap: ask for relief, unless the last asking freed nothing very recently. */
  over(now = performance.now()): void {
    if (now - this.reliefAt < RELIEF_MS) return;
    const before = this.total;
    this.relieve();
    // Nothing to drop (every room has members): do not scan the rooms on every push.
    if (this.total >= before) this.reliefAt = now;
  }
}

const RELIEF_MS = 100;

/**
 * A ring of the newest messages of a room, contiguous in seq, bounded by a count (CHAT_WINDOW)
 * and by bytes (CHAT_WINDOW_BYTES, and the node-wide budget). It grows as messages come, so an
 * idle room costs little. An entry's bytes are what it takes of the heap: its JSON's UTF-8 bytes
 * plus ENTRY_BYTES, so the caps bound memory, not only text.
 *
 * Every window together holds up to CHAT_WINDOWS_MAX_BYTES of messages, and every major garbage
 * collection of the front thread traces what they hold, so an entry is kept as few heap objects as
 * it can be: parallel rings of its JSON, its id and its sender (a sender's string shared with the
 * entry before it when the same user sent both), with seq and time as plain numbers; the room is
 * the window's own. `at` builds the Delivered on demand (joins and history pages, not the write
 * path).
 */
export class Window {
  private readonly json: string[] = [];
  private readonly ids: string[] = [];
  private readonly froms: string[] = [];
  private readonly seqs: number[] = [];
  /** Times in ms: doubles only, so V8 keeps them unboxed. */
  private readonly ats: number[] = [];
  /** What each entry costs (entryBytes). */
  private readonly sizes: number[] = [];
  private head = 0; // index of the oldest entry
  private n = 0;
  private bytes = 0;

  constructor(readonly room: string, readonly capacity: number, private readonly maxBytes: number, private readonly budget: WindowBudget) {}

  get size(): number {
    return this.n;
  }

  /** What the entries held cost, in bytes (entryBytes). */
  get byteSize(): number {
    return this.bytes;
  }

  private slot(i: number): number {
    return (this.head + i) % this.json.length;
  }

  /** Entry i (0 = the oldest), as a new Delivered. */
  at(i: number): Delivered {
    const j = this.slot(i);
    return { room: this.room, seq: this.seqs[j], id: this.ids[j], at: this.ats[j], from: this.froms[j], json: this.json[j] };
  }

  /** Entry i's id, seq, time and JSON without building the entry. */
  idAt(i: number): string {
    return this.ids[this.slot(i)];
  }

  seqAt(i: number): number {
    return this.seqs[this.slot(i)];
  }

  timeAt(i: number): number {
    return this.ats[this.slot(i)];
  }

  jsonAt(i: number): string {
    return this.json[this.slot(i)];
  }

  /** Seq of the oldest entry, or 0 when empty. */
  get firstSeq(): number {
    return this.n === 0 ? 0 : this.seqAt(0);
  }

  /**
   * Append; returns true when older entries had to make room (the window no longer holds every
   * message of the room). The newest message always stays.
   */
  push(d: Delivered): boolean {
    const size = entryBytes(d.json);
    let dropped = false;
    if (this.n === this.capacity) {
      this.shift();
      dropped = true;
    }
    // The previous entry's sender string, when it is the same user: one string per run of messages.
    const prev = this.n === 0 ? undefined : this.froms[this.slot(this.n - 1)];
    const from = prev === d.from ? prev : d.from;
    let i: number;
    if (this.n === this.json.length) {
      // Full ring below capacity: it grows by one at its end (put in order first, if trimming
      // moved its start).
      if (this.head !== 0) {
        for (const a of this.rings()) a.push(...a.splice(0, this.head));
        this.head = 0;
      }
      i = this.n;
    } else i = this.slot(this.n);
    this.json[i] = d.json;
    // Every id comes from a decoded batch (commit results, the bus, a room's state): a copy (detached.ts).
    this.ids[i] = detached(d.id);
    this.froms[i] = from;
    this.seqs[i] = d.seq;
    this.ats[i] = d.at;
    this.sizes[i] = size;
    this.n++;
    this.bytes += size;
    this.budget.total += size;
    if (this.budget.total > this.budget.max) this.budget.over();
    // The room's own cap keeps its newest message; the node-wide one may take even that (a
    // page the window does not hold is read from the store).
    while ((this.n > 1 && this.bytes > this.maxBytes) || (this.n > 0 && this.budget.total > this.budget.max)) {
      this.shift();
      dropped = true;
    }
    return dropped;
  }

  /** Drop the oldest entry. */
  private shift(): void {
    const h = this.head;
    const size = this.sizes[h];
    // Let the message's strings go (an empty string is no object of its own).
    this.json[h] = '';
    this.ids[h] = '';
    this.froms[h] = '';
    this.head = (h + 1) % this.json.length;
    this.n--;
    this.bytes -= size;
    this.budget.total -= size;
    if (this.n === 0) this.reset();
  }

  /** The parallel rings, for what is done to all of them alike. */
  private rings(): unknown[][] {
    return [this.json, this.ids, this.froms, this.seqs, this.ats, this.sizes];
  }

  private reset(): void {
    for (const a of this.rings()) a.length = 0;
    this.head = 0;
    this.n = 0;
  }

  /** Index of the first entry whose id is > id (or >= id when `inclusive`). Ids ascend with seq. */
  search(id: string, inclusive: boolean): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.idAt(mid);
      if (v < id || (!inclusive && v === id)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the entry with exactly this id, or -1. */
  indexOf(id: string): number {
    const i = this.search(id, true);
    return i < this.n && this.idAt(i) === id ? i : -1;
  }

  /** Index of the first entry at or after time `ms` (retention hides what is before it). */
  firstVisible(ms: number): number {
    if (ms <= 0) return 0;
    let i = 0;
    while (i < this.n && this.timeAt(i) < ms) i++;
    return i;
  }

  /** Empty it (the room is dropped or resynced): its bytes go back to the budget. */
  clear(): void {
    this.budget.total -= this.bytes;
    this.bytes = 0;
    this.reset();
  }

  /** Give entry i new JSON (the same message, rewritten by a retraction). */
  replace(i: number, json: string): void {
    const j = this.slot(i);
    const size = entryBytes(json);
    this.bytes += size - this.sizes[j];
    this.budget.total += size - this.sizes[j];
    this.json[j] = json;
    this.sizes[j] = size;
  }

  /**
   * A DELETE or EDIT event `d` is about to be appended: the copies this window holds of its target
   * (and of the target's earlier EDIT events, whose text is old) are rewritten as the store now
   * has them, so no later join or page shows the old text. Rare: the scan and the parse are fine.
   */
  retract(d: Delivered): void {
    if (!isRetraction(d)) return;
    const ev = JSON.parse(d.json) as Message;
    const target = ev.target!;
    for (let i = this.search(target, true); i < this.n; i++) {
      const oldJson = this.jsonAt(i);
      if (this.idAt(i) !== target && !oldJson.includes(`"target":"${target}"`)) continue;
      const m = JSON.parse(oldJson) as Message;
      if (m.id === target) {
        if (ev.type === 'DELETE') {
          delete m.text;
          delete m.editedAt;
          m.deleted = true;
        } else if (!m.deleted) {
          m.text = ev.text;
          m.editedAt = ev.at;
        }
      } else if (m.type === 'EDIT' && m.target === target && !m.deleted) {
        delete m.text;
        m.deleted = true;
      } else {
        continue;
      }
      this.replace(i, messageJson(m));
    }
  }

  slice(from: number, to: number): Delivered[] {
    const out: Delivered[] = [];
    for (let i = Math.max(0, from); i < Math.min(to, this.n); i++) out.push(this.at(i));
    return out;
  }
}
