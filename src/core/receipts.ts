// Read receipts: who has read how far, in rooms that share it (group and direct rooms; public rooms
// with CHAT_PUBLIC_RECEIPTS). A committed `read` moves the reader's position in the room and is
// told to the room's other connections as a `receipt` frame, at most one per user and room per
// THROTTLE_MS: the first at once, later ones folded into one that goes out when the interval
// ends, carrying the newest seq. A user's receipts are hidden from users who block them, and their
// position shows as 0 to those users (their reads do not lower the unread counts a blocker sees).

import { receiptsIn } from '../../workers/contract.ts';
import type { Config } from '../config.ts';
import type { Access, Who } from './access.ts';
import type { Fanout } from './fanout.ts';
import type { RoomGate } from './room-gate.ts';
import type { Room, RoomRegistry } from './rooms.ts';
import type { Session } from './session.ts';
import type { Topology } from './topology.ts';

/** At most one receipt per user and room per this many ms. */
export const THROTTLE_MS = 100;

/** A (room, user) that sent a receipt less than THROTTLE_MS ago. */
interface Slot {
  /** The newest seq read since (0: none), and the connection that read it. */
  pending: number;
  from: Session | null;
  timer: NodeJS.Timeout;
}

export class Receipts {
  private readonly slots = new Map<string, Slot>();
  private topology: Topology | null = null;

  constructor(
    private readonly cfg: Config,
    private readonly rooms: RoomRegistry<Session>,
    private readonly gate: RoomGate,
    private readonly access: Access,
    private readonly fanout: Fanout,
  ) {}

  useTopology(t: Topology): void {
    this.topology = t;
  }

  /** Does this room share receipts? */
  shares(room: Room<Session>): boolean {
    return receiptsIn(room.kind, this.cfg.publicReceipts);
  }

  /** A `read` of connection `s` committed: the reader is at `seq` in `room` (never backwards). */
  read(room: Room<Session>, s: Session, seq: number): void {
    if (!this.shares(room) || !this.advance(room, s.userId, seq)) return;
    const key = room.id + '\0' + s.userId;
    const slot = this.slots.get(key);
    if (slot !== undefined) {
      slot.pending = seq;
      slot.from = s;
      return;
    }
    this.emit(room.id, s.userId, seq, s);
    this.arm(key, room.id, s.userId);
  }

  /** A receipt from another node (throttled there). */
  relay(roomId: string, user: string, seq: number): void {
    const room = this.rooms.ready(roomId);
    if (room !== undefined && this.shares(room) && this.advance(room, user, seq)) this.fanout.receipt(room, { room: roomId, user, seq }, null);
  }

  /** `joined.reads` and GET /api/rooms/:room/reads: the positions `viewer` may see. */
  readsFor(room: Room<Session>, viewer: string): Record<string, number> {
    const out: Record<string, number> = {};
    if (!this.shares(room)) return out;
    const users = room.members ?? room.reads.keys();
    for (const u of users) out[u] = this.access.blocked(viewer, u) ? 0 : room.reads.get(u) ?? 0;
    return out;
  }

  /** GET /api/rooms/:room/reads. */
  async readsOf(roomId: string, who: Who): Promise<Record<string, number>> {
    return this.readsFor(await this.gate.open(roomId, who), who.userId);
  }

  stop(): void {
    for (const slot of this.slots.values()) clearTimeout(slot.timer);
    this.slots.clear();
  }

  /** Move the user's position forward; false if `seq` is not past it. */
  private advance(room: Room<Session>, user: string, seq: number): boolean {
    if (seq <= (room.reads.get(user) ?? 0)) return false;
    room.reads.set(user, seq);
    return true;
  }

  private emit(roomId: string, user: string, seq: number, from: Session | null): void {
    const room = this.rooms.ready(roomId);
    if (room !== undefined) this.fanout.receipt(room, { room: roomId, user, seq }, from);
    this.topology!.broadcast({ t: 'receipt', room: roomId, user, seq });
  }

  /** The interval after a receipt: at its end, the newest seq read meanwhile goes out (and another interval starts). */
  private arm(key: string, roomId: string, user: string): void {
    const timer = setTimeout(() => {
      const slot = this.slots.get(key)!;
      this.slots.delete(key);
      if (slot.pending === 0) return;
      this.emit(roomId, user, slot.pending, slot.from);
      this.arm(key, roomId, user);
    }, THROTTLE_MS);
    timer.unref();
    this.slots.set(key, { pending: 0, from: null, timer });
  }
}
