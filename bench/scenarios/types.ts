// What every scenario file exports, and the options it is run with.
import type { RunResult } from '../lib/stats.ts';
import type { RunEnv } from '../lib/roomload.ts';

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
  /** Settings a spawned server runs with for this scenario (over the caller's environment). */
  serverEnv?: Record<string, string>;
  run(o: RunOptions, env: RunEnv): Promise<RunResult>;
}
