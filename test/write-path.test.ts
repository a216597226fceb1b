// The write path's two cost cuts, against a real engine: a sender's own copy of a message and its
// ack leave in one socket write (acks go through the connection's own uWS topic, after the room
// publishes, so uWS's end-of-turn drain writes both at once), and SQLite checkpoints run on a
// reader thread (CHAT_SQLITE_CHECKPOINT), so committed pages reach the database file while the
// actor keeps its write connection.

import Database from 'better-sqlite3';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWsUrl, WsConn } from '../bench/lib/wsclient.ts';
import { Client, getJson, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, tempDir, type EngineProc } from './support/engine.ts';
import { until } from './support/wait.ts';

const CORE = { CHAT_ENTER_QUIT: 'off', ...SEND_LIMITS_OFF };

/**
 * The bench's bare RFC 6455 client (bench/lib/wsclient.ts), remembering which TCP read each frame
 * arrived in. On loopback a small server write arrives as one read, so two frames in one read
 * were (for frames this small) one write, and frames of separate writes arrive in separate reads
 * while the client waits. The frames of one read are handed over in one synchronous pass, so a
 * read ends at the first microtask checkpoint after its first frame.
 */
class RawClient {
  /** Every text frame, parsed, with the index of the read that completed it. */
  readonly frames: { f: Frame; read: number }[] = [];
  private reads = 0;
  private inRead = false;
  private waiters: (() => void)[] = [];
  private conn!: WsConn;

  static async connect(port: number, user: string): Promise<RawClient> {
    const c = new RawClient();
    const target = parseWsUrl(`ws://127.0.0.1:${port}/ws`);
    await new Promise<void>((resolve, reject) => {
      c.conn = new WsConn(target, `/ws?user=${user}&name=${user}`, undefined, {
        open: () => resolve(),
        message: (_conn, buf, start, stop) => c.onFrame(buf.toString('utf8', start, stop)),
        close: (_conn, code) => reject(new Error(`closed before the upgrade: ${code}`)),
      }, 0);
    });
    return c;
  }

  private onFrame(text: string): void {
    if (!this.inRead) {
      this.inRead = true;
      queueMicrotask(() => {
        this.inRead = false;
        this.reads++;
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
      });
    }
    this.frames.push({ f: JSON.parse(text) as Frame, read: this.reads });
  }

  send(frame: Frame): void {
    this.conn.sendText(JSON.stringify(frame));
  }

  /** The first frame that matches; waits for it, checking again as each read ends (rejects after 10 s). */
  waitFor(pred: (f: Frame) => boolean, what: string): Promise<{ f: Frame; read: number; at: number }> {
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`timed out waiting for ${what}; last frames ${JSON.stringify(this.frames.slice(-3))}`)), 10_000);
      const check = (): void => {
        const at = this.frames.findIndex((x) => pred(x.f));
        if (at < 0) return void this.waiters.push(check);
        clearTimeout(deadline);
        resolve({ ...this.frames[at], at });
      };
      check();
    });
  }

  close(): void {
    this.conn.destroy();
  }
}

describe('a sender gets its copy of a message and the ack in one write', () => {
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine(CORE); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('msg then ack, in the same TCP read, for every send; the other member gets the msg', async () => {
    const raw = await RawClient.connect(eng.port, 'w1');
    const other = await Client.connect(eng.url, { user: 'w2', name: 'W2' });
    raw.send({ op: 'join', room: 'wp', ref: 'j' });
    await raw.waitFor((f) => f.op === 'joined', 'joined');
    await other.request({ op: 'join', room: 'wp' });
    for (let i = 0; i < 20; i++) {
      // One at a time, so each send is its own group commit and its own delivery turn.
      raw.send({ op: 'send', room: 'wp', text: `t${i}`, cid: `c${i}` });
      const ack = await raw.waitFor((f) => f.op === 'ack' && f.cid === `c${i}`, `ack c${i}`);
      const msg = await raw.waitFor((f) => f.op === 'msg' && f.cid === `c${i}`, `own copy of c${i}`);
      expect(msg.f.seq).toBe(ack.f.seq);
      expect(msg.at, `c${i}: own copy before the ack`).toBeLessThan(ack.at);
      expect(msg.read, `c${i}: copy and ack in one read`).toBe(ack.read);
      expect((await other.op('msg', (f) => f.cid === `c${i}`)).seq).toBe(ack.f.seq);
    }
    raw.close();
    await other.close();
  });
});

/** Messages in the database file alone (a copy without its WAL): what checkpoints have copied. */
function inMainFile(dbPath: string): number {
  const copy = join(tempDir(), 'copy.db');
  copyFileSync(dbPath, copy);
  const db = new Database(copy);
  try {
    return (db.prepare("SELECT count(*) AS n FROM messages WHERE type = 'CHAT'").get() as { n: number }).n;
  } catch {
    return 0; // not even the schema has been copied into the file yet
  } finally {
    db.close();
  }
}

async function sendAll(eng: EngineProc, n: number): Promise<void> {
  const c = await Client.connect(eng.url, { user: 'ck', name: 'Ck' });
  await c.request({ op: 'join', room: 'ck' });
  for (let i = 0; i < n; i++) c.send({ op: 'send', room: 'ck', text: `m${i}`, cid: `k${i}` });
  await c.op('ack', (f) => f.cid === `k${n - 1}`);
  await c.close();
}

async function checkpointCount(eng: EngineProc): Promise<number> {
  const text = await (await fetch(`${eng.http}/metrics`)).text();
  return Number(/^chat_sqlite_checkpoints_total (\d+)/m.exec(text)?.[1] ?? NaN);
}

/**
 * Called right after the engine's last commit (its ack): resolves once its once-a-second stats
 * tick has closed a second with commits in it, then a second with none, so a whole second of the
 * engine's own timers has run since that commit.
 */
async function aSecondAfterCommits(eng: EngineProc): Promise<void> {
  const lastSecond = async (): Promise<number> => (await getJson(`${eng.http}/api/stats`)).body.latency.commitMs.lastSecond.n as number;
  await until('a stats tick that counts commits', async () => ((await lastSecond()) > 0 ? true : undefined), 10_000, 20);
  await until('a stats tick after a second without commits', async () => ((await lastSecond()) === 0 ? true : undefined), 10_000, 20);
}

describe('SQLite checkpoints on a reader thread', () => {
  it('copy committed messages into the database file while the engine runs; with CHAT_SQLITE_CHECKPOINT=0 nothing is copied before 10,000 WAL pages', async () => {
    const [on, off] = await Promise.all([
      startEngine({ ...CORE, CHAT_SQLITE_CHECKPOINT: '50ms' }),
      startEngine({ ...CORE, CHAT_SQLITE_CHECKPOINT: '0' }),
    ]);
    try {
      // The control is watched from its last ack on until its own timers have run for a whole
      // second after its last commit: a reader-thread checkpoint at any interval up to that would
      // have run by then.
      await Promise.all([sendAll(on, 300), sendAll(off, 300).then(() => aSecondAfterCommits(off))]);
      await until('the reader thread to checkpoint the 300 messages', () => (inMainFile(join(on.dir, 'chat.db')) === 300 ? true : undefined), 10_000, 100);
      expect(await checkpointCount(on)).toBeGreaterThan(0);
      // ...and its file still holds none of them.
      expect(inMainFile(join(off.dir, 'chat.db'))).toBe(0);
      expect(await checkpointCount(off)).toBe(0);
    } finally {
      expect(await on.stop()).toBe(0);
      expect(await off.stop()).toBe(0);
    }
  });
});

describe('commit pacing (CHAT_COMMIT_PACE_MS)', () => {
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ ...CORE, CHAT_COMMIT_PACE_MS: '100' }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('a paced commit still takes every buffered send: all acked once, seqs consecutive, then a lone send too', async () => {
    const c = await Client.connect(eng.url, { user: 'pc', name: 'Pc' });
    const start = (await c.request({ op: 'join', room: 'pace' })).seq as number;
    // pipelined: batches of 32 or more, so the commits after them are paced
    for (let i = 0; i < 300; i++) c.send({ op: 'send', room: 'pace', text: `m${i}`, cid: `p${i}` });
    const seqs: number[] = [];
    for (let i = 0; i < 300; i++) seqs.push((await c.op('ack', (f) => f.cid === `p${i}`)).seq as number);
    expect(seqs).toEqual(Array.from({ length: 300 }, (_, i) => start + 1 + i));
    c.send({ op: 'send', room: 'pace', text: 'last', cid: 'lone' });
    expect((await c.op('ack', (f) => f.cid === 'lone')).seq).toBe(start + 301);
    await c.close();
  });
});
