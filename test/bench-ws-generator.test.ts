// The crosscheck's independent generator (bench/lib/ws-generator.ts) against a real engine: every
// send acked once, every member gets every message of its room, latencies measured.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wsGenerate } from '../bench/lib/ws-generator.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';

describe('bench: the ws-package generator', () => {
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ ...SEND_LIMITS_OFF, CHAT_ENTER_QUIT: 'off' }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('offers the load open loop and counts acks and deliveries of 2-member rooms', async () => {
    const r = await wsGenerate({ url: eng.url, clients: 20, rooms: 10, rate: 200, warmupS: 0.5, durationS: 1, drainS: 10, prefix: 'wsgen.' });
    expect(r.errors).toEqual([]);
    expect(r.sent).toBe(300);
    expect(r.acked).toBe(300);
    expect(r.expectedDeliveries).toBe(600);
    expect(r.delivered).toBe(600);
    expect(r.achieved).toBe(200); // the 200 sends due in the measured second, all acked
    expect(r.ackP99).toBeGreaterThan(0);
  });

  it("in the harness's chat order (client c in room c % rooms) every member still gets every message", async () => {
    const r = await wsGenerate({ url: eng.url, clients: 30, rooms: 10, rate: 300, warmupS: 0.2, durationS: 0.5, drainS: 10, prefix: 'wsgen-spread.', order: 'spread' });
    expect(r.errors).toEqual([]);
    expect(r.sent).toBe(210);
    expect(r.acked).toBe(210);
    expect(r.expectedDeliveries).toBe(630);
    expect(r.delivered).toBe(630);
  });
});
