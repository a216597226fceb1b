// A room's hot window: its newest messages, kept on the front thread so a join and the first
// history page need no disk.

import { isRetraction, messageJson, type Delivered, type Message } from '../../workers/contract.ts';

/**
 * What every window of this node holds together, in bytes of message JSON, and its cap. When a
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
 * idle room costs little.
 */
export class Window {
  private readonly buf: Delivered[] = [];
  /** UTF-8 bytes of each entry's JSON, parallel to buf. */
  private readonly sizes: number[] = [];
  private head = 0; // index of the oldest entry
  private n = 0;
  private bytes = 0;

  constructor(readonly capacity: number, private readonly maxBytes: number, private readonly budget: WindowBudget) {}

  get size(): number {
    return this.n;
  }

  /** Bytes of message JSON held. */
  get byteSize(): number {
    return this.bytes;
  }

  at(i: number): Delivered {
    return this.buf[(this.head + i) % this.buf.length];
  }

  /** Seq of the oldest entry, or 0 when empty. */
  get firstSeq(): number {
    return this.n === 0 ? 0 : this.at(0).seq;
  }

  /**
   * Append; returns true when older entries had to make room (the window no longer holds every
   * message of the room). The newest message always stays.
   */
  push(d: Delivered): boolean {
    const size = Buffer.byteLength(d.json, 'utf8');
    let dropped = false;
    if (this.n === this.capacity) {
      this.shift();
      dropped = true;
    }
    if (this.n === this.buf.length) {
      // Full ring below capacity: grow it (in order, if trimming moved its start).
      if (this.head !== 0) {
        this.buf.push(...this.buf.splice(0, this.head));
        this.sizes.push(...this.sizes.splice(0, this.head));
        this.head = 0;
      }
      this.buf.push(d);
      this.sizes.push(size);
    } else {
      const i = (this.head + this.n) % this.buf.length;
      this.buf[i] = d;
      this.sizes[i] = size;
    }
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
    const size = this.sizes[this.head];
    this.buf[this.head] = undefined as unknown as Delivered; // let the message go
    this.head = (this.head + 1) % this.buf.length;
    this.n--;
    this.bytes -= size;
    this.budget.total -= size;
    if (this.n === 0) this.reset();
  }

  private reset(): void {
    this.buf.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.n = 0;
  }

  /** Index of the first entry whose id is > id (or >= id when `inclusive`). Ids ascend with seq. */
  search(id: string, inclusive: boolean): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.at(mid).id;
      if (v < id || (!inclusive && v === id)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the entry with exactly this id, or -1. */
  indexOf(id: string): number {
    const i = this.search(id, true);
    return i < this.n && this.at(i).id === id ? i : -1;
  }

  /** Index of the first entry at or after time `ms` (retention hides what is before it). */
  firstVisible(ms: number): number {
    if (ms <= 0) return 0;
    let i = 0;
    while (i < this.n && this.at(i).at < ms) i++;
    return i;
  }

  /** Empty it (the room is dropped or resynced): its bytes go back to the budget. */
  clear(): void {
    this.budget.total -= this.bytes;
    this.bytes = 0;
    this.reset();
  }

  /** Put `d` in place of entry i (same message, new JSON). */
  replace(i: number, d: Delivered): void {
    const j = (this.head + i) % this.buf.length;
    const size = Buffer.byteLength(d.json, 'utf8');
    this.bytes += size - this.sizes[j];
    this.budget.total += size - this.sizes[j];
    this.buf[j] = d;
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
      const old = this.at(i);
      if (old.id !== target && !old.json.includes(`"target":"${target}"`)) continue;
      const m = JSON.parse(old.json) as Message;
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
      this.replace(i, { ...old, json: messageJson(m) });
    }
  }

  slice(from: number, to: number): Delivered[] {
    const out: Delivered[] = [];
    for (let i = Math.max(0, from); i < Math.min(to, this.n); i++) out.push(this.at(i));
    return out;
  }
}
