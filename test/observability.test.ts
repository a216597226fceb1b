// Observability (issue 9): /metrics moves exactly as a short load says it should and is valid
// Prometheus text; /dashboard renders live numbers in real headless Chromium; no log line ever
// carries a message's text.

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantile } from '../src/metrics/stats.ts';
import { browserAvailable, dashboardLoad, launch } from './browser-helpers.ts';
import { Client, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';

/** Engine settings under which every count is exact: no ENTER/QUIT messages, no send rate limit. */
const EXACT = { CHAT_ENTER_QUIT: 'off', ...SEND_LIMITS_OFF };

// ---- Prometheus text exposition (format 0.0.4) -------------------------------------------------

interface Sample { name: string; labels: Record<string, string>; value: number }
interface Family { type: string; help: string; samples: Sample[] }

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
// Values are Go floats: Prometheus parses them with strconv.ParseFloat, which ignores the case of
// NaN and Inf (prom-client writes NaN as `Nan`, e.g. nodejs_eventloop_lag_mean_seconds right after start).
const VALUE = '(?:[+-]?(?:\\d+\\.?\\d*(?:[eE][+-]?\\d+)?|\\.\\d+(?:[eE][+-]?\\d+)?)|[+-]?[Ii][Nn][Ff]|[Nn][Aa][Nn])';
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,(?:${LABEL}))*,?)?\\})? (${VALUE})(?: -?\\d+)?$`);
const HELP_RE = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/** Parse the exposition strictly: every line must match the grammar, HELP and TYPE come before a family's samples. */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const helped = new Set<string>();
  expect(text.endsWith('\n'), 'the exposition ends with a newline').toBe(true);
  for (const [i, line] of text.split('\n').entries()) {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === '') continue;
    if (line.startsWith('#')) {
      const h = HELP_RE.exec(line);
      const t = TYPE_RE.exec(line);
      if (h) {
        expect(helped.has(h[1]), `HELP twice for ${h[1]} (${where})`).toBe(false);
        helped.add(h[1]);
        continue;
      }
      expect(t, `a comment line must be HELP or TYPE (${where})`).not.toBeNull();
      expect(families.has(t![1]), `TYPE twice for ${t![1]} (${where})`).toBe(false);
      expect(helped.has(t![1]), `HELP before TYPE for ${t![1]} (${where})`).toBe(true);
      families.set(t![1], { type: t![2], help: '', samples: [] });
      continue;
    }
    const m = SAMPLE_RE.exec(line);
    expect(m, `not a valid sample line (${where})`).not.toBeNull();
    const name = m![1];
    const base = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    const fam = families.get(base);
    expect(fam, `sample before its TYPE (${where})`).toBeDefined();
    if (base !== name) expect(['histogram', 'summary'], where).toContain(fam!.type);
    const labels: Record<string, string> = {};
    for (const l of (m![2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const raw = m![3];
    const lower = raw.toLowerCase();
    fam!.samples.push({ name, labels, value: lower.endsWith('inf') ? (raw.startsWith('-') ? -Infinity : Infinity) : lower === 'nan' ? NaN : Number(raw) });
  }
  // Histograms: per label set, cumulative buckets ending in +Inf, which equals _count. (A labelled
  // histogram with no observations yet, e.g. nodejs_gc_duration_seconds, has no samples at all.)
  for (const [name, fam] of families) {
    if (fam.type !== 'histogram') continue;
    const key = (s: Sample): string => JSON.stringify(Object.entries(s.labels).filter(([k]) => k !== 'le').sort());
    for (const set of new Set(fam.samples.map(key))) {
      const buckets = fam.samples.filter((s) => s.name === `${name}_bucket` && key(s) === set);
      expect(buckets.length, `${name}${set} has buckets`).toBeGreaterThan(1);
      expect(buckets[buckets.length - 1].labels.le, `${name} ends with +Inf`).toBe('+Inf');
      for (let i = 1; i < buckets.length; i++) expect(buckets[i].value, `${name} buckets are cumulative`).toBeGreaterThanOrEqual(buckets[i - 1].value);
      const count = fam.samples.find((s) => s.name === `${name}_count` && key(s) === set);
      expect(count?.value, `${name}${set}: +Inf bucket equals _count`).toBe(buckets[buckets.length - 1].value);
    }
  }
  for (const [name, fam] of families) if (name.startsWith('chat_')) expect(fam.samples.length, `${name} has samples`).toBeGreaterThan(0);
  return families;
}

async function scrape(eng: EngineProc): Promise<Map<string, Family>> {
  const r = await fetch(`${eng.http}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await r.text());
}

/** One sample's value: the family's sample named `sample` (default: the family name) with these labels. */
function value(m: Map<string, Family>, family: string, labels: Record<string, string> = {}, sample = family): number {
  const fam = m.get(family);
  if (fam === undefined) throw new Error(`no metric ${family}`);
  const s = fam.samples.find((x) => x.name === sample && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  if (s === undefined) throw new Error(`no sample ${sample}${JSON.stringify(labels)}`);
  return s.value;
}

// ---- the quantile the dashboard shows ------------------------------------------------------------

describe('quantile from bucket counts', () => {
  it('interpolates inside the bucket the rank falls in, like histogram_quantile', () => {
    const b = [1, 2, 5, 10];
    // 10 observations in (0,1], 10 in (2,5]: the median is the top of the first bucket.
    expect(quantile(b, [10, 0, 10, 0, 0], 0.5)).toBe(1);
    expect(quantile(b, [10, 0, 10, 0, 0], 0.75)).toBeCloseTo(3.5, 10);
    expect(quantile(b, [0, 4, 0, 0, 0], 0.5)).toBeCloseTo(1.5, 10);
    // Past the last finite bound the answer is that bound.
    expect(quantile(b, [0, 0, 0, 0, 3], 0.99)).toBe(10);
    expect(quantile(b, [0, 0, 0, 0, 0], 0.5)).toBeNaN();
  });
});

// ---- /metrics under a short load -----------------------------------------------------------------

describe('/metrics under a short load', () => {
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine(EXACT); });
  afterAll(async () => { await eng?.stop(); });

  it('is valid Prometheus text with every metric the issue names', async () => {
    const m = await scrape(eng);
    const want: [string, string][] = [
      ['chat_connections', 'gauge'], ['chat_rooms_active', 'gauge'],
      ['chat_messages_accepted_total', 'counter'], ['chat_messages_delivered_total', 'counter'], ['chat_frames_refused_total', 'counter'],
      ['chat_slow_consumer_disconnects_total', 'counter'], ['chat_write_buffer_messages', 'gauge'], ['chat_write_buffer_bytes', 'gauge'],
      ['chat_commit_batch_messages', 'histogram'], ['chat_commit_duration_seconds', 'histogram'],
      ['chat_accept_to_commit_seconds', 'histogram'], ['chat_accept_to_deliver_seconds', 'histogram'],
      ['chat_event_loop_lag_seconds', 'gauge'], ['chat_actor_event_loop_lag_seconds', 'gauge'], ['chat_reader_queue_depth', 'gauge'],
      ['process_resident_memory_bytes', 'gauge'], ['process_cpu_seconds_total', 'counter'],
    ];
    for (const [name, type] of want) expect(m.get(name)?.type, name).toBe(type);
    expect(value(m, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('counts exactly what the clients sent, delivered, had acked and had refused', async () => {
    const before = await scrape(eng);
    const room = 'obs-room';
    const clients = await Promise.all([0, 1, 2].map((i) => Client.connect(eng.url, { user: `obs-${i}`, name: `Obs ${i}` })));
    for (const c of clients) expect((await c.request({ op: 'join', room })).op).toBe('joined');
    const perClient = 10;
    const total = clients.length * perClient;
    for (const [i, c] of clients.entries()) for (let k = 0; k < perClient; k++) c.send({ op: 'send', room, text: `hello ${i}.${k}`, cid: `c${i}-${k}` });
    // Every ack, and every member has every message.
    await Promise.all(clients.map(async (c, i) => { for (let k = 0; k < perClient; k++) await c.op('ack', (f) => f.cid === `c${i}-${k}`); }));
    await Promise.all(clients.map((c) => c.msgs(room, total)));
    // 3 invalid (a send without cid) and 2 unknown_op.
    const errs: Frame[] = [];
    for (let k = 0; k < 3; k++) errs.push(await clients[0].request({ op: 'send', room, text: 'no cid' }));
    for (let k = 0; k < 2; k++) errs.push(await clients[1].request({ op: 'frobnicate' }));
    expect(errs.map((e) => e.code)).toEqual(['invalid', 'invalid', 'invalid', 'unknown_op', 'unknown_op']);

    const m = await scrape(eng);
    const d = (name: string, labels: Record<string, string> = {}, sample = name): number => value(m, name, labels, sample) - value(before, name, labels, sample);
    expect(value(m, 'chat_connections')).toBe(3);
    expect(d('chat_connections_total')).toBe(3);
    expect(value(m, 'chat_rooms_active')).toBeGreaterThanOrEqual(1);
    expect(d('chat_messages_accepted_total')).toBe(total);
    expect(d('chat_messages_acked_total')).toBe(total);
    expect(d('chat_messages_delivered_total')).toBe(total); // one publish per message, whatever the room's size
    expect(d('chat_messages_duplicate_total')).toBe(0);
    expect(d('chat_frames_refused_total', { code: 'invalid' })).toBe(3);
    expect(d('chat_frames_refused_total', { code: 'unknown_op' })).toBe(2);
    for (const s of m.get('chat_frames_refused_total')!.samples) {
      if (s.labels.code !== 'invalid' && s.labels.code !== 'unknown_op') expect(d('chat_frames_refused_total', { code: s.labels.code }), s.labels.code).toBe(0);
    }
    expect(d('chat_committed_messages_total')).toBe(total);
    // Histograms: one observation per committed / delivered message; batch sizes add up to the messages.
    expect(d('chat_accept_to_commit_seconds', {}, 'chat_accept_to_commit_seconds_count')).toBe(total);
    expect(d('chat_accept_to_deliver_seconds', {}, 'chat_accept_to_deliver_seconds_count')).toBe(total);
    expect(d('chat_commit_batch_messages', {}, 'chat_commit_batch_messages_sum')).toBe(total);
    const commits = d('chat_commits_total');
    expect(commits).toBeGreaterThanOrEqual(1);
    expect(commits).toBeLessThanOrEqual(total);
    expect(d('chat_commit_batch_messages', {}, 'chat_commit_batch_messages_count')).toBe(commits);
    expect(d('chat_commit_duration_seconds', {}, 'chat_commit_duration_seconds_count')).toBe(commits);
    expect(d('chat_accept_to_deliver_seconds', {}, 'chat_accept_to_deliver_seconds_sum')).toBeGreaterThan(0);
    // Everything is committed: the write buffer is empty again.
    expect(value(m, 'chat_write_buffer_messages')).toBe(0);
    expect(value(m, 'chat_write_buffer_bytes')).toBe(0);

    // /api/stats (the dashboard's source) agrees with /metrics.
    const s = (await (await fetch(`${eng.http}/api/stats`)).json()) as Frame;
    expect(s.accepted).toBe(value(m, 'chat_messages_accepted_total'));
    expect(s.delivered).toBe(value(m, 'chat_messages_delivered_total'));
    expect(s.refused.invalid).toBe(value(m, 'chat_frames_refused_total', { code: 'invalid' }));
    expect(s.connections).toBe(3);
    expect(s.latency.acceptToDeliverMs.total.n).toBe(value(m, 'chat_accept_to_deliver_seconds', {}, 'chat_accept_to_deliver_seconds_count'));
    expect(s.latency.acceptToDeliverMs.total.p50).toBeGreaterThan(0);
    expect(s.latency.acceptToDeliverMs.total.p99).toBeGreaterThanOrEqual(s.latency.acceptToDeliverMs.total.p50);

    await Promise.all(clients.map((c) => c.close()));
    // The close handler has run once the scrape after the close handshakes says so.
    const after = await scrape(eng);
    expect(value(after, 'chat_connections')).toBe(0);
  });
});

// ---- the dashboard in headless Chromium ----------------------------------------------------------

describe.runIf(browserAvailable())('/dashboard in headless Chromium', () => {
  let eng: EngineProc;
  let browser: Browser;
  beforeAll(async () => {
    eng = await startEngine(EXACT);
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    await eng?.stop();
  });

  it('shows live connections, messages flowing, and totals equal to the engine\'s', async () => {
    const res = await fetch(`${eng.http}/dashboard`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    await res.arrayBuffer();

    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`${eng.http}/dashboard`);
    const text = (id: string): Promise<string> => page.getByTestId(id).innerText();
    const num = async (id: string): Promise<number> => Number((await text(id)).replace(/,/g, ''));
    await page.locator('[data-testid=poll-status][data-state=live]').waitFor();
    expect(await num('connections')).toBe(0);

    const load = await dashboardLoad(eng, page);
    const { clients, sentBy, timers } = load;
    try {
      const { s1 } = await load.measure();
      expect(await num('connections')).toBe(s1.connections);
      expect(s1.connections).toBe(4);
      // Latency figures are numbers, not placeholders, while messages flow.
      await page.waitForFunction(() => /^\d/.test(document.querySelector('[data-testid="deliver-p99"]')!.textContent!)
        && /^\d/.test(document.querySelector('[data-testid="commit-p50"]')!.textContent!));
      expect(await num('deliver-p99')).toBeGreaterThanOrEqual(await num('deliver-p50'));
    } finally {
      for (const t of timers) clearInterval(t);
    }

    // Load stopped: once every send is acked, the page's totals equal the engine's exactly and the rate falls to 0.
    await Promise.all(clients.map(async (c, i) => { for (let k = 0; k < sentBy[i]; k++) await c.op('ack', (f) => f.cid === `d${i}-${k}`, 15_000); }));
    const sent = sentBy.reduce((x, y) => x + y, 0);
    const m = await scrape(eng);
    const accepted = value(m, 'chat_messages_accepted_total');
    expect(accepted).toBe(sent);
    await page.waitForFunction((a) => document.querySelector('[data-testid="accepted-total"]')!.textContent!.replace(/,/g, '') === String(a)
      && document.querySelector('[data-testid="rate-in"]')!.textContent === '0.0', accepted, { timeout: 10_000 });
    expect(await num('delivered-total')).toBe(value(m, 'chat_messages_delivered_total'));

    await Promise.all(clients.map((c) => c.close()));
    await page.waitForFunction(() => document.querySelector('[data-testid="connections"]')!.textContent === '0', undefined, { timeout: 10_000 });
    expect(pageErrors).toEqual([]);
    await page.close();
  });
});

// ---- logs never carry message text -----------------------------------------------------------

describe('logs at debug level, under overload and connection errors', () => {
  const marker = `SECRET-MARKER-${Math.random().toString(36).slice(2)}`;
  let lines: string[] = [];
  let overloaded = 0;

  beforeAll(async () => {
    const eng = await startEngine({ ...EXACT, CHAT_LOG_LEVEL: 'debug', CHAT_TEST_COMMIT_DELAY_MS: '300', CHAT_BUFFER_MAX_MESSAGES: '2' });
    try {
      const room = 'log-room';
      const a = await Client.connect(eng.url, { user: 'log-a', name: 'Log A' });
      await a.request({ op: 'join', room });
      // Overload: with a 2-message buffer and 300 ms commits, most of a burst of 10 is refused.
      for (let k = 0; k < 10; k++) a.send({ op: 'send', room, text: `${marker} ${k}`, cid: `l${k}` });
      const settled = await Promise.all(Array.from({ length: 10 }, (_, k) => a.waitFor((f) => (f.op === 'ack' || f.op === 'error') && f.cid === `l${k}`, 20_000, `reply to l${k}`)));
      overloaded = settled.filter((f) => f.op === 'error' && f.code === 'overloaded').length;
      // Refused frames carrying the marker: malformed JSON, an invalid room, an oversized frame.
      a.sendRaw(`{"op":"send","room":"${room}","text":"${marker}","cid":"bad"`);
      await a.op('error', (f) => f.code === 'bad_frame');
      expect((await a.request({ op: 'send', room: `${marker}!!`, text: marker, cid: 'inv' })).code).toBe('invalid');
      a.send({ op: 'send', room, text: marker.repeat(Math.ceil(70_000 / marker.length)), cid: 'big' });
      await a.op('error', (f) => f.code === 'too_large');
      // Connection errors: an unsupported subprotocol, a bad user id, a socket cut mid-session.
      await expect(Client.connect(eng.url, { protocol: `x-${marker}` })).rejects.toThrow(/HTTP 400/);
      await expect(Client.connect(eng.url, { user: `${marker}/bad` })).rejects.toThrow(/HTTP/);
      const b = await Client.connect(eng.url, { user: 'log-b', name: marker });
      await b.request({ op: 'join', room });
      b.send({ op: 'send', room, text: marker, cid: 'b1' });
      b.ws.terminate();
      await b.closed;
      // The HTTP API with the marker in a body it refuses.
      const r = await fetch(`${eng.http}/api/rooms/${room}/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: marker }) });
      expect(r.status).toBeGreaterThanOrEqual(400);
      await r.arrayBuffer();
      await a.close();
    } finally {
      // SIGTERM drains and flushes the logger before exit, so stderr is complete.
      expect(await eng.stop()).toBe(0);
    }
    lines = eng.stderr.join('').split('\n').filter((l) => l !== '');
  });

  it('never contain a message\'s text; every line is pino JSON', () => {
    expect(overloaded, 'the burst was refused with overloaded at least once').toBeGreaterThan(0);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      expect(l, 'a log line carries message text').not.toContain(marker);
      expect(() => JSON.parse(l), `not a pino JSON line: ${l}`).not.toThrow();
    }
  });

  it('say when sends are refused as overloaded', () => {
    expect(overloaded).toBeGreaterThan(0);
    const msgs = lines.map((l) => String((JSON.parse(l) as Frame).msg));
    expect(msgs.some((m) => /overload/i.test(m)), `no overload log line among: ${msgs.join(' | ')}`).toBe(true);
  });
});
