// Test hooks (CHAT_TEST_HOOKS=1, never in production): hold every commit, store read, join,
// directory sweep or host-app operation (create/delete a room, members, blocks) at a known point, so a test of "X only after Y" can hold Y, see that it waits there, prove X has not
// happened, and release it; and (cluster) drop the directory events other nodes send, as a lost
// subscription would. Off by default: nothing here exists then, and each point costs one null
// check. `POST /_test/gc` collects every thread's heap in full and answers with the process's
// memory, so a test of memory growth compares what is live rather than where V8's collector was.

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { fullGc, type ThreadGc } from '../workers/full-gc.ts';
import { sendError, sendJson } from './http/respond.ts';

/** What POST /_test/gc answers: process.memoryUsage() after the collections, and each thread's. */
export type Collected = NodeJS.MemoryUsage & { threads: ThreadGc[] };

export const HOLD_POINTS = ['commit', 'read', 'join', 'sweep', 'admin'] as const;
export type HoldPoint = (typeof HOLD_POINTS)[number];

/** How long `GET /_test/waiting/<point>` waits for enough operations before it answers 408. */
const WAIT_LIMIT_MS = 10_000;

interface Watcher {
  count: () => number;
  n: number;
  resolve: (count: number) => void;
}

export class TestHooks {
  private readonly holding = new Set<HoldPoint>();
  /** Operations waiting at the read and join points, in arrival order. */
  private readonly queued = new Map<HoldPoint, (() => void)[]>([['read', []], ['join', []], ['sweep', []], ['admin', []]]);
  /** Commits waiting in the actor (it reports 0 or 1). */
  private commitsWaiting = 0;
  private watchers: Watcher[] = [];
  /** Directory events from other nodes are dropped (cluster), and how many were. */
  private droppingControl = false;
  private controlDropped = 0;
  /** Directory sweeps this node has completed (cluster). */
  private sweeps = 0;

  /** Callers waiting for the actor's answer to a full collection. */
  private actorCollected: ((gc: ThreadGc) => void)[] = [];

  /**
   * `actorHold` tells the persistence actor to hold (or stop holding) its commits; `actorGc` asks it
   * to collect its heap in full (it answers with onActorCollected); `readersGc` collects every reader's.
   */
  constructor(
    private readonly actorHold: (on: boolean) => void,
    private readonly actorGc: () => void,
    private readonly readersGc: () => Promise<ThreadGc[]>,
  ) {}

  /** The collection in progress: a second request while one runs gets the same answer. */
  private collecting: Promise<Collected> | null = null;

  /**
   * Collect the readers', the actor's and this thread's heaps in full; then the process's memory.
   * Null when the actor or a reader has not answered within `ms` (a stopping engine).
   */
  collect(ms = WAIT_LIMIT_MS): Promise<Collected | null> {
    this.collecting ??= this.collectAll().finally(() => { this.collecting = null; });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), ms); });
    return Promise.race([this.collecting, late]).finally(() => clearTimeout(timer));
  }

  private async collectAll(): Promise<Collected> {
    const readers = await this.readersGc();
    const actor = await new Promise<ThreadGc>((resolve) => {
      this.actorCollected.push(resolve);
      this.actorGc();
    });
    const front = fullGc('front');
    return { ...process.memoryUsage(), threads: [front, actor, ...readers] };
  }

  onActorCollected(gc: ThreadGc): void {
    const waiting = this.actorCollected;
    this.actorCollected = [];
    for (const go of waiting) go(gc);
  }

  /** Null when `point` is not held (go on at once); else a promise that resolves on release. */
  gate(point: Exclude<HoldPoint, 'commit'>): Promise<void> | null {
    if (!this.holding.has(point)) return null;
    return new Promise((resolve) => {
      this.queued.get(point)!.push(resolve);
      this.notify();
    });
  }

  hold(point: HoldPoint): void {
    this.holding.add(point);
    if (point === 'commit') this.actorHold(true);
  }

  release(point: HoldPoint): void {
    this.holding.delete(point);
    if (point === 'commit') return this.actorHold(false);
    const list = this.queued.get(point)!;
    this.queued.set(point, []);
    for (const go of list) go();
    this.notify();
  }

  waiting(point: HoldPoint): number {
    return point === 'commit' ? this.commitsWaiting : this.queued.get(point)!.length;
  }

  /** The actor reports how many commits wait at its hold. */
  onCommitHeld(waiting: number): void {
    this.commitsWaiting = waiting;
    this.notify();
  }

  /** Cluster: drop every directory event (deleted, members, block) other nodes send, or stop. */
  dropControl(on: boolean): void {
    this.droppingControl = on;
  }

  /** A directory event arrived: true when it is to be dropped (and it is counted). */
  dropsControl(): boolean {
    if (!this.droppingControl) return false;
    this.controlDropped++;
    this.notify();
    return true;
  }

  /** A directory sweep ran to its end (cluster). */
  swept(): void {
    this.sweeps++;
    this.notify();
  }

  /** Resolves with the count once at least `n` directory sweeps have completed, or null after `ms`. */
  whenSwept(n: number, ms = WAIT_LIMIT_MS): Promise<number | null> {
    return this.whenCount(() => this.sweeps, n, ms);
  }

  /** Resolves with the count once at least `n` operations wait at `point`, or null after `ms`. */
  whenWaiting(point: HoldPoint, n: number, ms = WAIT_LIMIT_MS): Promise<number | null> {
    return this.whenCount(() => this.waiting(point), n, ms);
  }

  /** Resolves with the count once at least `n` directory events were dropped, or null after `ms`. */
  whenDropped(n: number, ms = WAIT_LIMIT_MS): Promise<number | null> {
    return this.whenCount(() => this.controlDropped, n, ms);
  }

  private whenCount(count: () => number, n: number, ms: number): Promise<number | null> {
    if (count() >= n) return Promise.resolve(count());
    return new Promise((resolve) => {
      const w: Watcher = { count, n, resolve: (k) => { clearTimeout(timer); resolve(k); } };
      const timer = setTimeout(() => {
        this.watchers = this.watchers.filter((x) => x !== w);
        resolve(null);
      }, ms);
      this.watchers.push(w);
    });
  }

  private notify(): void {
    const still: Watcher[] = [];
    for (const w of this.watchers) {
      const k = w.count();
      if (k >= w.n) w.resolve(k);
      else still.push(w);
    }
    this.watchers = still;
  }
}

function pointOf(raw: string): HoldPoint | null {
  return (HOLD_POINTS as readonly string[]).includes(raw) ? (raw as HoldPoint) : null;
}

/**
 * `POST /_test/hold/<point>`, `POST /_test/release/<point>`, `GET /_test/waiting/<point>?n=N`;
 * `POST /_test/drop/control`, `POST /_test/keep/control`, `GET /_test/dropped/control?n=N`,
 * `GET /_test/sweeps?n=N` (directory sweeps completed), `POST /_test/gc` (every heap collected;
 * answers process.memoryUsage() in bytes, and `threads`: each thread's heap in use before and after;
 * 408 when a thread did not answer within 10 s, 503 when a reader could not take the task).
 */
export function registerTestRoutes(app: TemplatedApp, hooks: TestHooks): void {
  const unknown = `point must be one of ${HOLD_POINTS.join(', ')}`;
  app.post('/_test/hold/:point', (res, req) => {
    const point = pointOf(req.getParameter(0) ?? '');
    if (point === null) return sendError(res, 'invalid', unknown);
    hooks.hold(point);
    sendJson(res, 200, JSON.stringify({ point, holding: true }));
  });
  app.post('/_test/release/:point', (res, req) => {
    const point = pointOf(req.getParameter(0) ?? '');
    if (point === null) return sendError(res, 'invalid', unknown);
    hooks.release(point);
    sendJson(res, 200, JSON.stringify({ point, holding: false }));
  });
  app.get('/_test/waiting/:point', (res, req) => {
    const point = pointOf(req.getParameter(0) ?? '');
    if (point === null) return sendError(res, 'invalid', unknown);
    longPoll(res, req, (n) => hooks.whenWaiting(point, n), (k) => ({ waiting: k ?? hooks.waiting(point) }));
  });
  app.post('/_test/drop/control', (res) => {
    hooks.dropControl(true);
    sendJson(res, 200, JSON.stringify({ dropping: true }));
  });
  app.post('/_test/keep/control', (res) => {
    hooks.dropControl(false);
    sendJson(res, 200, JSON.stringify({ dropping: false }));
  });
  app.get('/_test/dropped/control', (res, req) => longPoll(res, req, (n) => hooks.whenDropped(n), (k) => ({ dropped: k })));
  app.post('/_test/gc', (res) => {
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    hooks.collect().then((m) => {
      if (aborted) return;
      if (m === null) sendJson(res, 408, JSON.stringify({ error: { code: 'timeout', message: 'a thread did not collect in time' } }));
      else sendJson(res, 200, JSON.stringify(m));
    }, (err: unknown) => {
      if (!aborted) sendError(res, 'overloaded', `collection failed: ${(err as Error).message}`);
    });
  });
  app.get('/_test/sweeps', (res, req) => longPoll(res, req, (n) => hooks.whenSwept(n), (k) => ({ sweeps: k })));
}

/** Answer once `until(n)` resolves (200), or 408 when it gave up; `?n=N` (default 1). */
function longPoll(res: HttpResponse, req: HttpRequest, until: (n: number) => Promise<number | null>, body: (k: number | null) => object): void {
  const raw = new URLSearchParams(req.getQuery() ?? '').get('n') ?? '1';
  if (!/^\d{1,6}$/.test(raw)) return sendError(res, 'invalid', 'n must be a whole number');
  let aborted = false;
  res.onAborted(() => { aborted = true; });
  void until(Number(raw)).then((k) => {
    if (aborted) return;
    sendJson(res, k === null ? 408 : 200, JSON.stringify(body(k)));
  });
}
