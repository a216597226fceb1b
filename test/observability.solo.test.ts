// The dashboard's messages/s against the engine's own counters, within a tolerance: a bound on
// figures a neighbour's CPU would move, so it runs in the solo project (test/observability.test.ts
// checks the page's exact totals).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { browserAvailable, dashboardLoad, launch } from './browser-helpers.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';

describe.runIf(browserAvailable())('/dashboard rates in headless Chromium', () => {
  let eng: EngineProc;
  let browser: Browser;
  beforeAll(async () => {
    eng = await startEngine({ CHAT_ENTER_QUIT: 'off', ...SEND_LIMITS_OFF });
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    await eng?.stop();
  });

  it('shows messages/s in and out within 35% (+2) of the engine\'s counters', async () => {
    const page = await browser.newPage();
    await page.goto(`${eng.http}/dashboard`);
    await page.locator('[data-testid=poll-status][data-state=live]').waitFor();
    const load = await dashboardLoad(eng, page);
    try {
      const { rateIn, rateOut, engineIn, engineOut, offered } = await load.measure();
      expect(engineIn).toBeGreaterThan(offered * 0.25); // the load is really running
      expect(Math.abs(rateIn - engineIn), `page ${rateIn} msg/s in, engine ${engineIn.toFixed(1)}`).toBeLessThanOrEqual(engineIn * 0.35 + 2);
      expect(Math.abs(rateOut - engineOut), `page ${rateOut} msg/s out, engine ${engineOut.toFixed(1)}`).toBeLessThanOrEqual(engineOut * 0.35 + 2);
    } finally {
      for (const t of load.timers) clearInterval(t);
      await Promise.all(load.clients.map((c) => c.close()));
      await page.close();
    }
  });
});
