// In-memory per-room message log shared by the peers that keep nothing on disk (ceiling, socketio).
// Messages are kept pre-encoded as JSON strings so pages and frames are built by concatenation.
import { TsidGen } from '../lib/tsid.ts';

export const ROOM_RE = /^[A-Za-z0-9._:-]{1,64}$/;
export const ID_RE = /^[0-9A-HJKMNP-TV-Z]{13}$/;

/** Per-room retention: enough for every history page the bench asks for, bounded for soak runs. */
const KEEP = 20_000;

export interface Page { json: string[]; more: boolean }

export class MemRoom {
  seq = 0;
  readonly epoch: string;
  /** seq of ids[0] / json[0]. */
  private base = 1;
  private ids: string[] = [];
  private json: string[] = [];

  constructor(readonly name: string, epoch: string) { this.epoch = epoch; }

  /** Appends one CHAT message; returns its id, seq, at and the message object's JSON. */
  append(gen: TsidGen, fromJson: string, text: string, cid: string): { id: string; seq: number; at: number; json: string } {
    const id = gen.next();
    const seq = ++this.seq;
    const at = Date.now();
    const json = '{"id":"' + id + '","room":"' + this.name + '","seq":' + seq + ',"type":"CHAT","from":' + fromJson +
      ',"text":' + JSON.stringify(text) + ',"at":' + at + ',"cid":' + JSON.stringify(cid) + '}';
    this.ids.push(id);
    this.json.push(json);
    if (this.ids.length > KEEP * 2) { // trim in bulk, not per message
      this.ids = this.ids.slice(KEEP);
      this.json = this.json.slice(KEEP);
      this.base += KEEP;
    }
    return { id, seq, at, json };
  }

  /** Index of the first kept message whose id is > cursor (ids sort in time order). */
  private upper(cursor: string): number {
    let lo = 0, hi = this.ids.length;
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (this.ids[mid] <= cursor) lo = mid + 1; else hi = mid; }
    return lo;
  }
  private lower(cursor: string): number {
    let lo = 0, hi = this.ids.length;
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (this.ids[mid] < cursor) lo = mid + 1; else hi = mid; }
    return lo;
  }

  latest(limit: number): Page {
    const from = Math.max(0, this.json.length - limit);
    return { json: this.json.slice(from), more: from > 0 || this.base > 1 };
  }

  before(cursor: string, limit: number): Page {
    const end = this.lower(cursor);
    const from = Math.max(0, end - limit);
    return { json: this.json.slice(from, end), more: from > 0 || this.base > 1 };
  }

  after(cursor: string, limit: number): Page {
    const from = this.upper(cursor);
    const end = Math.min(this.json.length, from + limit);
    return { json: this.json.slice(from, end), more: end < this.json.length };
  }

  /** For join with since: everything after the cursor, and whether the gap could be filled. */
  since(cursor: string): { json: string[]; recovered: boolean } {
    const recovered = this.base === 1 || (this.ids.length > 0 && cursor >= this.ids[0]);
    return { json: this.json.slice(this.upper(cursor)), recovered };
  }
}

export class MemRooms {
  private rooms = new Map<string, MemRoom>();
  private readonly epoch = Date.now().toString(36);
  readonly ids = new TsidGen();
  get(name: string): MemRoom {
    let r = this.rooms.get(name);
    if (r === undefined) { r = new MemRoom(name, this.epoch); this.rooms.set(name, r); }
    return r;
  }
}

/** Parses ?before=&after=&limit= for history; returns an error message or the page. */
export function historyPage(room: MemRoom, before: unknown, after: unknown, limit: unknown): Page | string {
  const lim = limit === undefined || limit === '' ? 50 : Number(limit);
  if (!Number.isInteger(lim) || lim < 1 || lim > 100) return 'limit must be 1..100';
  if (before !== undefined && before !== '' && (typeof before !== 'string' || !ID_RE.test(before))) return 'before must be a message id';
  if (after !== undefined && after !== '' && (typeof after !== 'string' || !ID_RE.test(after))) return 'after must be a message id';
  if (typeof after === 'string' && after !== '') return room.after(after, lim);
  if (typeof before === 'string' && before !== '') return room.before(before, lim);
  return room.latest(lim);
}

export function pageJson(p: Page): string {
  return '{"messages":[' + p.json.join(',') + '],"more":' + p.more + '}';
}
