// The room registry's idle eviction: which rooms it may forget when more than `maxIdle` are loaded.

import { describe, expect, it } from 'vitest';
import type { RoomState } from '../../workers/contract.ts';
import { type Room, RoomRegistry } from './rooms.ts';

function state(room: string): RoomState {
  return { room, info: { id: room, kind: 'public', name: null, subject: null, members: null, epoch: 'e1', createdAt: 0 }, lastSeq: 0, recent: [], complete: true, reads: [] };
}

/** Activate and load `id`, as the engine does for a join (`joined` runs once the room is ready). */
function load(reg: RoomRegistry, id: string, joined: (room: Room) => void = () => undefined): void {
  reg.activate(id, 'u1', (room) => joined(room!));
  reg.loaded(id, state(id));
}

describe('RoomRegistry idle eviction', () => {
  it('drops the oldest rooms nobody is in, but never one a join is entering (its ENTER still in flight) or a member is in', () => {
    const loads: string[] = [];
    const reg = new RoomRegistry({ count: 100, bytes: 1 << 20, total: 1 << 30 }, 1, (room) => loads.push(room));
    // A join that waits for its ENTER to commit, then attaches to this very object.
    load(reg, 'entering', (room) => room.entering.add('u1'));
    const entering = reg.get('entering')!;
    load(reg, 'member', (room) => room.sessions.add({ userId: 'u2' }));
    load(reg, 'idle-1');
    load(reg, 'idle-2');
    expect(reg.get('entering')).toBe(entering);
    expect(reg.get('member')).toBeDefined();
    expect(reg.get('idle-1')).toBeUndefined();
    // Once the member has attached and left, the room may go like any other.
    entering.entering.delete('u1');
    load(reg, 'idle-3');
    expect(reg.get('entering')).toBeUndefined();
    expect(loads).toEqual(['entering', 'member', 'idle-1', 'idle-2', 'idle-3']);
  });
});
