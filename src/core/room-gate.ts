// The way into a room: activate it (load its state if it is not loaded here) and check that the
// caller may use it. Every operation on a room goes through here.

import { ChatError, MSG, type ErrorCode } from '../protocol/errors.ts';
import type { Access, Who } from './access.ts';
import type { Refused, Room, RoomRegistry } from './rooms.ts';
import type { Session } from './session.ts';

export class RoomGate {
  constructor(
    private readonly rooms: RoomRegistry<Session>,
    private readonly access: Access,
    /** Whether a client may create a public room by using it (auth mode none). */
    readonly canCreate: boolean,
    /** CHAT_GUEST_ROOMS=public with CHAT_AUTH=none: only admins use group and direct rooms. */
    private readonly publicOnly: boolean,
  ) {}

  /** `cb` gets the ready room, or `fail` the reason it cannot be used (possibly at once). */
  enter(roomId: string, create: boolean, who: Who, cb: (room: Room<Session>) => void, fail: (code: ErrorCode, msg: string) => void): void {
    const go = (room: Room<Session> | null, refused?: Refused): void => {
      if (room === null) return refused !== undefined ? fail(refused.code, refused.message) : fail('not_found', MSG.noSuchRoom);
      const no = this.refusal(room, who);
      if (no !== null) return fail('forbidden', no);
      cb(room);
    };
    const ready = this.rooms.ready(roomId);
    if (ready !== undefined) go(ready);
    else this.rooms.activate(roomId, create ? who.userId : null, go);
  }

  /**
   * Why `who` may not use a loaded room (a `forbidden` message), or null: it may. A caller holding
   * a room that is ready (a send) checks with this and needs no enter() and its callbacks.
   */
  refusal(room: Room<Session>, who: Who): string | null {
    if (!this.access.mayAccess(room, who)) return MSG.notMember;
    if (this.publicOnly && room.kind !== 'public' && !who.admin) return MSG.guestsPublicOnly;
    return null;
  }

  /** The same as a promise (HTTP and other asynchronous paths); rejects with a ChatError. */
  open(roomId: string, who: Who): Promise<Room<Session>> {
    return new Promise((resolve, reject) => {
      this.enter(roomId, false, who, resolve, (code, msg) => reject(new ChatError(code, msg)));
    });
  }
}
