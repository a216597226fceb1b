// A room's hot window: its newest messages, kept on the front thread so a join and the first
// history page need no disk.

import type { Delivered } from '../../workers/contract.ts';

/** A fixed-capacity ring of the newest messages of a room, contiguous in seq. */
export class Window {
  private readonly buf: (Delivered | undefined)[];
  private head = 0; // index of the oldest entry
  private n = 0;

  constructor(readonly capacity: number) {
    this.buf = new Array<Delivered | undefined>(capacity);
  }

  get size(): number {
    return this.n;
  }

  at(i: number): Delivered {
    return this.buf[(this.head + i) % this.capacity]!;
  }

  /** Seq of the oldest entry, or 0 when empty. */
  get firstSeq(): number {
    return this.n === 0 ? 0 : this.at(0).seq;
  }

  /** Append; returns true when the oldest entry had to make room (the window no longer starts at 1). */
  push(d: Delivered): boolean {
    if (this.n < this.capacity) {
      this.buf[(this.head + this.n) % this.capacity] = d;
      this.n++;
      return false;
    }
    this.buf[this.head] = d;
    this.head = (this.head + 1) % this.capacity;
    return true;
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

  clear(): void {
    this.buf.fill(undefined);
    this.head = 0;
    this.n = 0;
  }

  slice(from: number, to: number): Delivered[] {
    const out: Delivered[] = [];
    for (let i = Math.max(0, from); i < Math.min(to, this.n); i++) out.push(this.at(i));
    return out;
  }
}
