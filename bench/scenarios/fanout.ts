// fanout: one room of 500 members, 2 of them sending: every message is delivered 500 times.
import { runRoomLoad } from '../lib/roomload.ts';
import type { Scenario } from './types.ts';

export const fanout: Scenario = {
  name: 'fanout',
  summary: '1 room, 500 members, 2 senders (500 deliveries per message)',
  defaults: { clients: 500, rooms: 1, rate: 500, durationS: 15, warmupS: 3, drainS: 5, findMaxStart: 300 },
  rated: true,
  run: (o, env) => runRoomLoad({
    scenario: 'fanout', clients: o.clients, rooms: 1, rate: o.rate, durationS: o.durationS, warmupS: o.warmupS, drainS: o.drainS,
    membership: () => [0],
    senders: [[0, 0], [1, 0]],
    connectConcurrency: 256, p99LimitMs: o.p99LimitMs,
  }, env),
};
