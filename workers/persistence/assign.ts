// Where a message gets its id and seq, in both modes.
//
// One node: at acceptance, in the order sends reach the actor. The id is this node's next TSID
// (the ids of one process only grow), the seq the room's next after the last one handed out.
// Cluster: several nodes write the same rooms, so both come inside the commit transaction, under
// the row lock of each of the batch's rooms (the store takes the locks and calls `underLock`).
// The seq follows the room's committed last seq; the id is above the room's newest id, whichever
// node wrote it, so ids stay in seq order within a room even when the nodes' clocks differ.

import type { IdGenerator } from '../ids.ts';
import type { AssignUnderLock, MarkerWrite, NewMessage, Placed, RoomHead } from '../stores/store.ts';

export class Assigner {
  constructor(private readonly ids: IdGenerator) {}

  /** One node, at acceptance: `m` gets the next id and `head`'s next seq; `head` moves to it. */
  atAcceptance(m: NewMessage, head: RoomHead): void {
    const { id, tsid } = this.ids.next();
    place(m, head, id, tsid);
  }

  /**
   * Cluster, inside the commit transaction: `heads` are the batch's locked rooms as the store has
   * them. Messages of rooms not among them are not stored (the room does not exist or is deleted);
   * a marker move with seq -1 goes to the newest message this batch stores in its room.
   */
  readonly underLock: AssignUnderLock = (msgs: NewMessage[], marks: MarkerWrite[], heads: Map<string, RoomHead>): Placed => {
    const missing = new Set<string>();
    const stored: NewMessage[] = [];
    for (const m of msgs) {
      const head = heads.get(m.room);
      if (head === undefined) {
        missing.add(m.room);
        continue;
      }
      const { id, tsid } = this.ids.nextAbove(head.tsid);
      place(m, head, id, tsid);
      stored.push(m);
    }
    const resolved: MarkerWrite[] = [];
    for (const k of marks) {
      if (k.seq >= 0) {
        resolved.push(k);
        continue;
      }
      // A new object, not resolved in place: a retry of this batch resolves again.
      const head = heads.get(k.room);
      // Nothing of ours in the room in this batch: no position to name.
      if (head === undefined || head.id === '') continue;
      resolved.push({ ...k, seq: head.seq, id: head.id });
    }
    return { stored, marks: resolved, missing };
  };
}

/** The one step of both modes: the message takes the id and the room's next seq. */
function place(m: NewMessage, head: RoomHead, id: string, tsid: bigint): void {
  m.id = id;
  m.tsid = tsid;
  m.seq = ++head.seq;
  head.id = id;
  head.tsid = tsid;
}
