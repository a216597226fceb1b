// The browser client (src/web/index.html with /app.js and the client library) end to end: Debian's
// Chromium driven by playwright-core against a real engine process, under the engine's strict CSP.
// Two users chat in a room, an XSS payload stays literal text, unread badges count and clear, older
// history loads, a dropped connection reconnects, resends and catches up. Assertions that need engine features still
// built later (ENTER/QUIT messages, the `read` reply, GET /api/me/rooms, GET /) are probed first,
// and a missing one fails its test with the feature's name.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { badge, browserAvailable, joinAs, launch, messageTexts, PAGE_PATH, probe, sendText, StandIn, type Features } from './browser-helpers.ts';
import { Client, getJson, type Frame } from './support/client.ts';
import { ROOT, startEngine, type EngineProc } from './support/engine.ts';

const XSS = '<img src=x onerror="window.__xss=1">';
const XSS2 = '</script><script>window.__xss=2</script>';

describe.runIf(browserAvailable())('browser client', () => {
  let eng: EngineProc;
  let browser: Browser;
  let has: Features;
  let origin: StandIn;
  const skipped: string[] = [];
  const pageErrors: string[] = [];
  let ctxMina: BrowserContext;
  let ctxJoon: BrowserContext;
  let mina: Page;
  let joon: Page;

  /** Every feature the page relies on must be there: a missing one fails the test, never skips it. */
  async function whenEngineHas(feature: keyof Features, what: string, body: () => Promise<void>): Promise<void> {
    if (!has[feature]) {
      skipped.push(`${what} (engine lacks ${feature})`);
      throw new Error(`the engine lacks ${feature}, needed for: ${what}`);
    }
    return body();
  }

  /** Script errors, and anything the CSP blocked, fail the last test. */
  function watch(p: Page): void {
    p.on('pageerror', (e) => pageErrors.push(e.message));
    p.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy|Failed to load/i.test(m.text())) pageErrors.push(`${m.text()} ${m.location().url}`); });
  }

  beforeAll(async () => {
    [eng, browser] = await Promise.all([startEngine(), launch()]);
    [has, origin] = await Promise.all([probe(eng), StandIn.start(eng)]);
    ctxMina = await browser.newContext({ viewport: { width: 1000, height: 680 } });
    ctxJoon = await browser.newContext({ viewport: { width: 1000, height: 680 } });
    // Joon opens the page through a stand-in origin in front of the engine that the test can cut;
    // Mina opens it from the engine itself.
    joon = await ctxJoon.newPage();
    mina = await ctxMina.newPage();
    for (const p of [joon, mina]) watch(p);
    await joon.goto(`${origin.http}/`);
    await mina.goto(`${eng.http}/`);
  });

  afterAll(async () => {
    if (skipped.length > 0) console.warn(`browser e2e: guarded assertions skipped:\n  - ${skipped.join('\n  - ')}`);
    await browser?.close();
    await origin?.close();
    if (eng) expect(await eng.stop()).toBe(0);
  });

  it('GET / serves the page under a strict CSP: scripts only from the engine (no inline script), sockets only to it', async () => {
    await whenEngineHas('rootPage', 'GET / serves src/web/index.html', async () => {
      const r = await fetch(`${eng.http}/`);
      expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
      const csp = r.headers.get('content-security-policy') ?? '';
      expect(csp).toMatch(/(^|; )script-src 'self'(;|$)/);
      expect(csp).toMatch(/(^|; )connect-src 'self'(;|$)/);
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
      const html = await r.text();
      expect(html).toBe(readFileSync(PAGE_PATH, 'utf8'));
      // Every script has a src on this origin; none is inline.
      expect(html.match(/<script\b[^>]*>/g)).toEqual(['<script type="module" src="/app.js">']);
      expect(html).not.toMatch(/<script[^>]*>[^<]+<\/script>/);
      // The page's script and the client library are served by the engine as modules.
      for (const [path, file] of [['/app.js', join(ROOT, 'src', 'web', 'app.js')], ['/client/index.js', join(ROOT, 'client', 'dist', 'index.js')], ['/client/client.js', join(ROOT, 'client', 'dist', 'client.js')]]) {
        const js = await fetch(`${eng.http}${path}`);
        expect(js.status).toBe(200);
        expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
        expect(await js.text()).toBe(readFileSync(file, 'utf8'));
      }
      expect((await fetch(`${eng.http}/client/..%2Fpackage.json`)).status).toBe(404);
      // the engine's CSP lets the page load its modules and open its socket: a message goes out and is acked
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      watch(page);
      await page.goto(`${eng.http}/`);
      await joinAs(page, 'Dae', 'served');
      await sendText(page, 'served page works');
      await expect.poll(() => messageTexts(page)).toContain('served page works');
      await expect.poll(() => page.getByTestId('message-state').count()).toBe(0);
      await ctx.close();
    });
  });

  it('two users chat in lobby; an XSS payload stays literal text end to end', async () => {
    await joinAs(mina, 'Mina', 'lobby');
    await joinAs(joon, 'Joon', 'lobby');
    const joonId = await joon.evaluate(() => sessionStorage.getItem('chat.suffix'));
    expect(joonId).toMatch(/^[a-z0-9]{6}$/);
    await expect.poll(() => joon.getByTestId('me').textContent()).toBe(`as Joon-${joonId}`);

    await whenEngineHas('enter', 'ENTER rendered as "X entered"', async () => {
      // Mina joined first: her ENTER is in Joon's first page; Joon's reaches Mina live.
      await expect.poll(() => messageTexts(joon)).toContain('Mina entered');
      await expect.poll(() => messageTexts(mina)).toContain('Joon entered');
      expect(await joon.locator('[data-testid=message][data-type=ENTER]').first().getAttribute('class')).toContain('sys');
    });

    // typing: shown to the other member, cleared by that member's message
    await joon.getByTestId('send-text').pressSequentially('hi Mina');
    await expect.poll(() => mina.getByTestId('typing').textContent()).toBe('Joon is typing\u2026');
    await joon.getByTestId('send-text').press('Enter');
    await sendText(mina, 'hello from Mina');
    for (const p of [mina, joon]) {
      await expect.poll(() => messageTexts(p)).toEqual(expect.arrayContaining(['hello from Mina', 'hi Mina']));
      // acked: no message is left pending
      await expect.poll(() => p.getByTestId('message-state').count()).toBe(0);
    }
    expect(await mina.getByTestId('typing').textContent()).toBe('');
    const fromJoon = mina.locator('[data-testid=message][data-type=CHAT]').filter({ hasText: 'hi Mina' });
    expect(await fromJoon.getByTestId('message-from').textContent()).toBe('Joon');
    expect(await fromJoon.getByTestId('message-time').textContent()).toMatch(/\d/);
    // oldest first on both sides
    const order = (await messageTexts(joon)).filter((t) => t === 'hi Mina' || t === 'hello from Mina');
    expect(order).toEqual(['hi Mina', 'hello from Mina']);

    // the typing indicator expires by itself after ~3 s
    await mina.getByTestId('send-text').pressSequentially('x');
    await expect.poll(() => joon.getByTestId('typing').textContent()).toBe('Mina is typing\u2026');
    await mina.getByTestId('send-text').fill('');
    await expect.poll(() => joon.getByTestId('typing').textContent(), { timeout: 6000 }).toBe('');

    await sendText(joon, XSS);
    await sendText(joon, XSS2);
    for (const p of [mina, joon]) {
      await expect.poll(() => messageTexts(p)).toEqual(expect.arrayContaining([XSS, XSS2]));
      expect(await p.evaluate(() => (window as unknown as { __xss?: unknown }).__xss)).toBeUndefined();
      expect(await p.locator('[data-testid=messages] img, [data-testid=messages] script').count()).toBe(0);
    }
    const cid = await mina.locator('[data-testid=message]').filter({ hasText: 'onerror' }).getAttribute('data-cid');
    const stored = await getJson(`${eng.http}/api/rooms/lobby/messages`);
    expect(stored.status).toBe(200);
    const m = stored.body.messages.find((x: Frame) => x.cid === cid);
    expect(m.text).toBe(XSS);
    expect(m.from.name).toBe('Joon');
    expect(stored.body.messages.map((x: Frame) => x.text)).toContain(XSS2);
  });

  it('unread badges count messages in rooms not shown and clear when the room is opened', async () => {
    await joinAs(joon, 'Joon', 'side');
    await joon.locator('[data-testid=room-item][data-room=lobby] button.open').click();
    await expect.poll(() => joon.getByTestId('active-room').textContent()).toBe('lobby');
    await joinAs(mina, 'Mina', 'side');
    await sendText(mina, 'side one');
    await sendText(mina, 'side two');
    await expect.poll(() => badge(joon, 'side')).toBe('2');
    const side = joon.locator('[data-testid=room-item][data-room=side] [data-testid=unread-badge]');
    expect(await side.isVisible()).toBe(true);
    expect(await side.textContent()).toBe('2');
    expect(await badge(joon, 'lobby')).toBe('0');
    await joon.screenshot({ path: '/tmp/web-e2e.png' });

    await joon.locator('[data-testid=room-item][data-room=side] button.open').click();
    await expect.poll(() => messageTexts(joon)).toEqual(expect.arrayContaining(['side one', 'side two']));
    await expect.poll(() => badge(joon, 'side')).toBe('0');
    expect(await side.isVisible()).toBe(false);

    await whenEngineHas('readOp', 'read marker survives a reload (read reply + /api/me/rooms)', async () => {
      await whenEngineHas('meRooms', 'room list and unread counts from GET /api/me/rooms after reload', async () => {
        await joon.locator('[data-testid=room-item][data-room=lobby] button.open').click();
        await sendText(mina, 'side three');
        await expect.poll(() => badge(joon, 'side')).toBe('1');
        // Forget the locally kept room list: after the reload it can only come from the engine.
        await joon.evaluate(() => sessionStorage.removeItem('chat.rooms'));
        const [resp] = await Promise.all([joon.waitForResponse((r) => r.url().includes('/api/me/rooms')), joon.reload()]);
        expect(resp.status()).toBe(200);
        const sideInfo = ((await resp.json()) as Frame).rooms.find((r: Frame) => r.id === 'side');
        expect(sideInfo.unread).toBeGreaterThanOrEqual(1);
        await joon.locator('[data-testid=room-item][data-room=side]').waitFor();
        await joon.locator('[data-testid=room-item][data-room=lobby]').waitFor();
        await expect.poll(() => badge(joon, 'side')).toBe(String(sideInfo.unread));
      });
    });
  });

  it('load older pages back through history with `before`', async () => {
    const bot = await Client.connect(eng.url, { user: 'bot', name: 'Bot' });
    for (let i = 0; i < 70; i++) bot.send({ op: 'send', room: 'long', text: `old ${i}`, cid: `old-${i}` });
    await Promise.all(Array.from({ length: 70 }, (_, i) => bot.op('ack', (f) => f.cid === `old-${i}`)));
    await bot.close();
    await joinAs(joon, 'Joon', 'long');
    const first = await messageTexts(joon);
    expect(first).toContain('old 69');
    expect(first).not.toContain('old 0');
    await joon.getByTestId('load-older').click();
    await expect.poll(async () => (await messageTexts(joon)).filter((t) => t.startsWith('old '))).toEqual(
      Array.from({ length: 70 }, (_, i) => `old ${i}`));
    await expect.poll(() => joon.getByTestId('load-older').isHidden()).toBe(true);
  });

  it('error frames are shown with their code, on the room and on the refused send', async () => {
    const made = await fetch(`${eng.http}/api/rooms?user=owner&name=Owner`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'group', id: 'secret', members: ['someone'] }),
    });
    expect(made.status).toBe(201);
    await joon.getByTestId('room').fill('secret');
    await joon.getByTestId('join').click();
    await expect.poll(() => joon.getByTestId('error').getAttribute('data-code')).toBe('forbidden');
    expect(await joon.getByTestId('error').textContent()).toMatch(/^forbidden: .*\(secret\)$/);
    expect(await joon.locator('[data-testid=room-item][data-room=secret]').getAttribute('data-error')).toBe('forbidden');
    await sendText(joon, 'let me in');
    await expect.poll(() => joon.getByTestId('message-state').allTextContents()).toEqual([expect.stringMatching(/^not sent: forbidden/)]);
    await joon.locator('[data-testid=room-item][data-room=secret] [data-testid=leave]').click();
    await expect.poll(() => joon.locator('[data-testid=room-item][data-room=secret]').count()).toBe(0);
    expect((await getJson(`${eng.http}/api/rooms/secret/messages?user=someone`)).body.messages.map((m: Frame) => m.text)).not.toContain('let me in');
  });

  it('reconnects with backoff after its socket drops, resends what was pending and catches up with `since`', async () => {
    await joon.locator('[data-testid=room-item][data-room=lobby] button.open').click();
    await mina.locator('[data-testid=room-item][data-room=lobby] button.open').click();
    await expect.poll(() => joon.getByTestId('active-room').textContent()).toBe('lobby');
    await expect.poll(() => mina.getByTestId('active-room').textContent()).toBe('lobby');
    origin.cut();
    await expect.poll(() => joon.getByTestId('status').getAttribute('data-state')).toBe('reconnecting');
    const bot = await Client.connect(eng.url, { user: 'bot', name: 'Bot' });
    await bot.request({ op: 'send', room: 'lobby', text: 'while you were away', cid: 'away-1' });
    await bot.close();
    // typed while offline: shown as pending, sent with its cid once the socket is back
    await sendText(joon, 'queued while offline');
    expect(await joon.locator('[data-testid=message]').filter({ hasText: 'queued while offline' }).getByTestId('message-state').textContent()).toBe('sending\u2026');
    origin.resume();
    await expect.poll(() => messageTexts(joon), { timeout: 20_000 }).toContain('while you were away');
    expect(await joon.getByTestId('status').getAttribute('data-state')).toBe('connected');
    const texts = await messageTexts(joon);
    for (const t of ['hi Mina', 'hello from Mina', XSS, 'while you were away']) expect(texts.filter((x) => x === t)).toHaveLength(1);
    await expect.poll(() => joon.getByTestId('message-state').count()).toBe(0);
    await expect.poll(() => messageTexts(mina)).toContain('queued while offline');
    await expect.poll(async () => (await messageTexts(joon)).filter((x) => x === 'queued while offline')).toHaveLength(1);
    expect((await messageTexts(mina)).filter((x) => x === 'queued while offline')).toHaveLength(1);
  });

  it('QUIT is shown when a member goes away', async () => {
    await whenEngineHas('quit', 'QUIT rendered as "X left"', async () => {
      await ctxMina.close();
      await expect.poll(() => messageTexts(joon)).toContain('Mina left');
    });
    expect(pageErrors).toEqual([]);
  });
});

describe.runIf(browserAvailable())('browser client: read receipts and deletes', () => {
  const ADMIN = 'browser-admin-token-0123456789';
  let eng: EngineProc;
  let browser: Browser;

  beforeAll(async () => { [eng, browser] = await Promise.all([startEngine({ CHAT_ADMIN_TOKEN: ADMIN, CHAT_ENTER_QUIT: 'off', CHAT_HTTP_RATE: '0' }), launch()]); });
  afterAll(async () => {
    await browser?.close();
    if (eng) expect(await eng.stop()).toBe(0);
  });

  it('shows beside each message how many members have not read it, falling as they read; a deleted message loses its text', async () => {
    const page = await (await browser.newContext()).newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${eng.http}/`);
    // The page's user id is the nickname plus this tab's suffix: fix the suffix to know it.
    await page.evaluate(() => sessionStorage.setItem('chat.suffix', 'kakao1'));
    await page.reload();
    const r = await fetch(`${eng.http}/api/rooms`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'group', id: 'kakao', members: ['Yuna-kakao1', 'kb', 'kc'] }) });
    expect(r.status).toBe(201);
    await joinAs(page, 'Yuna', 'kakao');
    const b = await Client.connect(eng.url, { user: 'kb' });
    const c = await Client.connect(eng.url, { user: 'kc' });
    for (const x of [b, c]) await x.request({ op: 'join', room: 'kakao' });
    await sendText(page, 'read me, both of you');
    const m = await b.op('msg', (f) => f.text === 'read me, both of you');
    const item = page.locator('[data-testid=message]').filter({ hasText: 'read me, both of you' });
    await expect.poll(() => item.getByTestId('message-unread').textContent()).toBe('2');
    await b.request({ op: 'read', room: 'kakao', upTo: m.id });
    await expect.poll(() => item.getByTestId('message-unread').textContent()).toBe('1');
    await c.request({ op: 'read', room: 'kakao', upTo: m.id });
    await expect.poll(() => item.getByTestId('message-unread').count()).toBe(0);
    // kb's own message, deleted by kb: the page keeps the place, without the text.
    const gone = await b.request({ op: 'send', room: 'kakao', text: 'oops, wrong room', cid: 'k1' });
    await expect.poll(() => messageTexts(page)).toContain('oops, wrong room');
    await b.request({ op: 'delete', room: 'kakao', id: gone.id });
    await expect.poll(() => messageTexts(page)).toContain('message deleted');
    expect(await messageTexts(page)).not.toContain('oops, wrong room');
    await Promise.all([b.close(), c.close()]);
    expect(errors).toEqual([]);
  });
});
