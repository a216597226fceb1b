// Strings kept for a long time that come from a decoded batch, copied so they hold nothing else
// alive. msgpackr's native extractor decodes a stretch of a batch holding several short strings as
// one string, and a string of 13 characters or more read from it is a V8 slice of that string: kept,
// it keeps the whole stretch alive (other messages, other rooms), memory no budget counts. Copied
// where they are kept: a hot window's ids (Window.push: every id comes from a batch); another node's
// messages (unpackMessages in src/cluster/broker.ts); a room's state from the actor (Room.install
// and Room.setInfo in rooms.ts).

import type { RoomInfo } from '../../workers/contract.ts';

/** A copy of `s` that keeps no other string alive. */
export function detached(s: string): string {
  const n = s.length;
  // V8 copies a substring this short instead of slicing it.
  if (n < 13) return s;
  // A message id, on every commit: its own 13 characters.
  if (n === 13) {
    return String.fromCharCode(s.charCodeAt(0), s.charCodeAt(1), s.charCodeAt(2), s.charCodeAt(3), s.charCodeAt(4), s.charCodeAt(5), s.charCodeAt(6),
      s.charCodeAt(7), s.charCodeAt(8), s.charCodeAt(9), s.charCodeAt(10), s.charCodeAt(11), s.charCodeAt(12));
  }
  // Concatenating makes a new flat string of its own; the slice of it holds only that (its text, one
  // character more, and a slice's header), exact for any text.
  return (' ' + s).slice(1);
}

/** A room's info with every string of it a copy (detached). */
export function detachedInfo(info: RoomInfo): RoomInfo {
  return {
    id: detached(info.id),
    kind: info.kind,
    name: info.name === null ? null : detached(info.name),
    subject: info.subject === null ? null : detached(info.subject),
    members: info.members === null ? null : info.members.map(detached),
    epoch: detached(info.epoch),
    createdAt: info.createdAt,
  };
}
