// Assertions shared by the reliability suites (the parallel one and the solo one).

import { expect } from 'vitest';
import type { FuzzRun } from './reliability-helpers.ts';

/** Every fuzz frame answered exactly once (a reply, an error or a close), no 5xx, nothing logged. */
export function expectFuzzAnswered(r: FuzzRun, frames: number): void {
  const { stats } = r;
  expect(r.alive).toBe(true);
  expect(r.healthStatus).toBe(200);
  expect(stats.sent).toBe(frames);
  expect(stats.unanswered, `unanswered frames: ${JSON.stringify(stats.unansweredSamples)}`).toBe(0);
  // Each reply belongs to the frame it answers: none beyond the first in a frame's window, none
  // outside any window.
  expect(stats.extraReplies).toBe(0);
  expect(stats.lateReplies).toBe(0);
  const answered = Object.values(stats.errors).reduce((x, y) => x + y, 0) + stats.replies + Object.values(stats.closes).reduce((x, y) => x + y, 0);
  expect(answered + stats.silentTyping).toBeGreaterThanOrEqual(frames); // a close may follow an error frame
  expect(stats.errors['<undecodable server frame>']).toBeUndefined();
  expect(r.http.fiveHundreds).toEqual([]);
  expect(r.http.wellFormedUnanswered).toEqual([]);
  expect(r.errorLogs).toEqual([]);
  expect(r.goodLatencies.length).toBe(r.goodSent);
}
