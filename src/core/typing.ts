// Typing indicators: relayed to the room's other members (and, in a cluster, to the other nodes);
// never stored. Their rate is limited with every other op (core/limits.ts).

import type { Frame } from '../protocol/frames.ts';
import type { Fanout } from './fanout.ts';
import type { Replies } from './replies.ts';
import type { RoomRegistry } from './rooms.ts';
import type { Session } from './session.ts';
import type { Topology } from './topology.ts';

export class Typing {
  private topology: Topology | null = null;

  constructor(private readonly rooms: RoomRegistry<Session>, private readonly fanout: Fanout, private readonly replies: Replies) {}

  useTopology(t: Topology): void {
    this.topology = t;
  }

  onTyping(s: Session, f: Frame<'typing'>): void {
    const room = this.rooms.ready(f.room);
    if (room === undefined || !s.inRoom(f.room) || s.ws === null) {
      return this.replies.error(s, 'forbidden', 'join the room before typing in it', f.ref);
    }
    this.fanout.typing(room, s.userId, s.userName, s);
    this.topology!.broadcast({ t: 'typing', room: room.id, user: s.userId, name: s.userName });
  }

  /** Typing on another node. */
  relay(roomId: string, userId: string, userName: string): void {
    const room = this.rooms.ready(roomId);
    if (room !== undefined) this.fanout.typing(room, userId, userName, null);
  }
}
