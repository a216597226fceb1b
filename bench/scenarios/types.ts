// What every scenario file exports, and the options it is run with.
import type { RunResult } from '../lib/stats.ts';
import type { RunEnv } from '../lib/roomload.ts';
import type { SendOrder } from '../lib/room-order.ts';

export interface RunOptions {
  clients: number;
  rooms: number;
  rate: number;
  durationS: number;
  warmupS: number;
  drainS: number;
  /** find-max's latency criterion: ack p99 at most this (ms). */
  p99LimitMs: number;
}

export interface Scenario {
  name: string;
  summary: string;
  defaults: Omit<RunOptions, 'p99LimitMs'> & { findMaxStart: number };
  /** Whether --find-max and compare's rate search apply (a rate of messages or iterations). */
  rated: boolean;
  /** The engine's environment for this scenario (undefined removes a variable the harness sets). */
  serverEnv?: Record<string, string | undefined>;
  /** Room loads: which room client c is in (lib/room-order.ts); crosscheck offers the same load from its ws generator. */
  order?: SendOrder;
  run(o: RunOptions, env: RunEnv): Promise<RunResult>;
}
