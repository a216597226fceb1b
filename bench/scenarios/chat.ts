// chat: 1,000 clients in 100 rooms of 10, every client sends 64-byte texts to its room.
import { runRoomLoad } from '../lib/roomload.ts';
import { roomIndex } from '../lib/room-order.ts';
import type { Scenario } from './types.ts';

export const chat: Scenario = {
  name: 'chat',
  summary: '1,000 clients, 100 rooms of 10, all send (10 deliveries per message)',
  defaults: { clients: 1000, rooms: 100, rate: 10_000, durationS: 15, warmupS: 3, drainS: 5, findMaxStart: 5000 },
  rated: true,
  order: 'spread',
  run: (o, env) => runRoomLoad({
    scenario: 'chat', clients: o.clients, rooms: o.rooms, rate: o.rate, durationS: o.durationS, warmupS: o.warmupS, drainS: o.drainS,
    membership: (c) => [roomIndex('spread', c, o.clients, o.rooms)],
    senders: Array.from({ length: o.clients }, (_, c) => [c, roomIndex('spread', c, o.clients, o.rooms)] as [number, number]),
    connectConcurrency: 256, p99LimitMs: o.p99LimitMs,
  }, env),
};
