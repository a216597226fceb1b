// soak: the chat load at a moderate rate for a long time; watch RSS, errors and tail latency drift.
import { collectedRssMb } from '../lib/collected.ts';
import { runRoomLoad } from '../lib/roomload.ts';
import { roomIndex } from '../lib/room-order.ts';
import type { Scenario } from './types.ts';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export const soak: Scenario = {
  name: 'soak',
  summary: 'chat load (1,000 clients, 100 rooms) at a moderate rate for 5 minutes by default; RSS growth reported (also after full collections)',
  defaults: { clients: 1000, rooms: 100, rate: 5000, durationS: 300, warmupS: 10, drainS: 10, findMaxStart: 5000 },
  rated: false,
  order: 'spread',
  // SQLite's dedupe window holds every message's (sender, cid) for CHAT_DEDUPE_WINDOW (5 minutes by
  // default), so the engine's memory grows by design for that long. A soak looks for drift: with a
  // 20 s window the window is full by the end of the first quarter, and growth after it is a leak.
  // The test hooks give POST /_test/gc: every thread's heap collected in full, then the process's
  // memory. The quarters' medians of RSS depend on where V8's collections fall (RSS climbs as the
  // heaps grow and drops at each major collection); memory after a full collection does not.
  serverEnv: { CHAT_DEDUPE_WINDOW: '20s', CHAT_TEST_HOOKS: '1' },
  async run(o, env) {
    // halfway through the measured window and 1 s before the sends stop
    const collected: Record<'mid' | 'end', number | null> = { mid: null, end: null };
    const probing: Promise<void>[] = [];
    const probe = (at: 'mid' | 'end') => (): void => {
      probing.push(collectedRssMb(env.httpBase).then((mb) => { collected[at] = mb; }));
    };
    const r = await runRoomLoad({
      scenario: 'soak', clients: o.clients, rooms: o.rooms, rate: o.rate, durationS: o.durationS, warmupS: o.warmupS, drainS: o.drainS,
      membership: (c) => [roomIndex('spread', c, o.clients, o.rooms)],
      senders: Array.from({ length: o.clients }, (_, c) => [c, roomIndex('spread', c, o.clients, o.rooms)] as [number, number]),
      connectConcurrency: 256, p99LimitMs: o.p99LimitMs,
      during: [
        { afterS: o.warmupS + o.durationS / 2, run: probe('mid') },
        { afterS: o.warmupS + o.durationS - 1, run: probe('end') },
      ],
    }, env);
    await Promise.all(probing);
    const rss = r.timeline.map((p) => p.serverRssMb).filter((v) => !Number.isNaN(v));
    if (rss.length >= 20) {
      // Medians of the 1 s samples, not means: one scheduling stall inside a quarter does not move them.
      const q = Math.floor(rss.length / 4);
      const first = median(rss.slice(q, 2 * q));
      const last = median(rss.slice(-q));
      r.extra = { ...r.extra, rssSecondQuarterMb: Math.round(first), rssLastQuarterMb: Math.round(last), rssGrowthMb: Math.round(last - first) };
    }
    if (collected.mid !== null && collected.end !== null) {
      r.extra = { ...r.extra, rssCollectedMidMb: Math.round(collected.mid), rssCollectedEndMb: Math.round(collected.end), rssCollectedGrowthMb: Math.round(collected.end - collected.mid) };
    }
    return r;
  },
};
