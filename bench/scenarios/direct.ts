// direct: the 1:1 chats: 2,000 clients in 1,000 two-member rooms, everyone sends.
import { runRoomLoad } from '../lib/roomload.ts';
import { roomIndex } from '../lib/room-order.ts';
import type { Scenario } from './types.ts';

export const direct: Scenario = {
  name: 'direct',
  summary: '2,000 clients in 1,000 two-member rooms, all send (2 deliveries per message)',
  defaults: { clients: 2000, rooms: 1000, rate: 10_000, durationS: 15, warmupS: 3, drainS: 5, findMaxStart: 8000 },
  rated: true,
  order: 'grouped',
  run: (o, env) => {
    const room = (c: number): number => roomIndex('grouped', c, o.clients, o.rooms);
    return runRoomLoad({
      scenario: 'direct', clients: o.clients, rooms: o.rooms, rate: o.rate, durationS: o.durationS, warmupS: o.warmupS, drainS: o.drainS,
      membership: (c) => [room(c)],
      senders: Array.from({ length: o.clients }, (_, c) => [c, room(c)] as [number, number]),
      connectConcurrency: 256, p99LimitMs: o.p99LimitMs,
    }, env);
  },
};
