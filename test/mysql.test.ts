// The engine on MariaDB: the protocol basics, restart, and the database going away under load
// (a TCP proxy the test controls sits between the engine and MariaDB).

import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateMysql, MYSQL_SCHEMA_VERSION } from '../workers/stores/mysql/migrations.ts';
import { Client, getJson, type Frame } from './support/client.ts';
import { SEND_LIMITS_OFF, startEngine, type EngineProc } from './support/engine.ts';
import { DbProxy, freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

const HAVE_MYSQL = await mysqlAvailable();
const BASE = { CHAT_ENTER_QUIT: 'off', ...SEND_LIMITS_OFF };

async function allMessages(eng: EngineProc, room: string): Promise<Frame[]> {
  const out: Frame[] = [];
  let before: string | undefined;
  for (;;) {
    const { status, body } = await getJson(`${eng.http}/api/rooms/${room}/messages?limit=100${before ? `&before=${before}` : ''}`);
    expect(status).toBe(200);
    out.unshift(...body.messages);
    if (!body.more) return out;
    before = body.messages[0].id;
  }
}

async function connectionId(c: mysql.Connection): Promise<number> {
  const [[row]] = await c.query<mysql.RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
  return Number(row.id);
}

/**
 * Polls the server's process list until connection `id`'s state passes `ok` (done: the connection
 * runs no statement); returns that state. The ALTER's own state, as MariaDB reports it.
 */
async function untilState(via: mysql.Connection, id: number, ok: (state: string, done: boolean) => boolean, what: string): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [rows] = await via.query<mysql.RowDataPacket[]>('SELECT STATE AS state, COMMAND AS command FROM information_schema.processlist WHERE ID = ?', [id]);
    const state = String(rows[0]?.state ?? '');
    const done = rows.length === 0 || rows[0].command === 'Sleep';
    if (ok(state, done)) return state;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; connection ${id} is in state "${state}"`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.runIf(HAVE_MYSQL)('engine on MariaDB', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  beforeAll(async () => { db = await freshDatabase(); });
  afterAll(async () => { await db?.drop(); });

  it('serves the protocol, pages across the window seam and keeps idempotency across a restart', async () => {
    let eng = await startEngine({ ...BASE, CHAT_STORE: db.url, CHAT_WINDOW: '100' });
    const a = await Client.connect(eng.url, { user: 'ma' });
    const b = await Client.connect(eng.url, { user: 'mb', protocol: 'chat.v1.msgpack' });
    await a.request({ op: 'join', room: 'my' });
    await b.request({ op: 'join', room: 'my' });
    for (let i = 0; i < 250; i++) a.send({ op: 'send', room: 'my', text: `m${i}`, cid: `c${i}` });
    const seen = await b.msgs('my', 250);
    expect(seen.map((m) => m.seq)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    const acks = await Promise.all(Array.from({ length: 250 }, (_, i) => a.op('ack', (f) => f.cid === `c${i}`)));
    expect((await allMessages(eng, 'my')).map((m) => m.seq)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    const rec = await Client.connect(eng.url, { user: 'mc' });
    const j = await rec.request({ op: 'join', room: 'my', since: acks[9].id });
    expect(j).toMatchObject({ recovered: true, seq: 250 });
    expect(j.messages).toHaveLength(240);
    await Promise.all([a.close(), b.close(), rec.close()]);
    expect(await eng.stop()).toBe(0);

    eng = await startEngine({ ...BASE, CHAT_STORE: db.url }, eng.dir);
    const c = await Client.connect(eng.url, { user: 'ma' });
    expect(await c.request({ op: 'send', room: 'my', text: 'm7', cid: 'c7' })).toMatchObject({ op: 'ack', id: acks[7].id, seq: 8 });
    expect(await c.request({ op: 'send', room: 'my', text: 'new', cid: 'new' })).toMatchObject({ op: 'ack', seq: 251 });
    await c.close();
    expect(await eng.stop()).toBe(0);
  });

  it('the database going away: buffers to the cap, refuses with overloaded, reports degraded, loses no ack, drains in order', async () => {
    const proxy = await DbProxy.start(db.url);
    const eng = await startEngine({ ...BASE, CHAT_STORE: proxy.urlFor(db.url), CHAT_BUFFER_MAX_MESSAGES: '300' });
    const a = await Client.connect(eng.url, { user: 'load' });
    const watcher = await Client.connect(eng.url, { user: 'watch' });
    await a.request({ op: 'join', room: 'away' });
    await watcher.request({ op: 'join', room: 'away' });
    let n = 0;
    const send = (k: number): void => { for (let i = 0; i < k; i++) { a.send({ op: 'send', room: 'away', text: `x${n}`, cid: `x${n}` }); n++; } };
    send(100);
    await a.op('ack', (f) => f.cid === 'x99');

    await proxy.cut();
    send(500); // more than the cap: the first ~300 are buffered, the rest refused
    const refusals: Frame[] = [];
    while (refusals.length < 150) refusals.push(await a.op('error', (f) => f.code === 'overloaded'));
    const deadline = Date.now() + 10_000;
    let health: Frame;
    for (;;) {
      health = (await getJson(`${eng.http}/healthz`)).body;
      if (health.store === 'degraded') break;
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(health).toMatchObject({ ok: true, store: 'degraded' });
    expect(eng.proc.exitCode).toBeNull();

    await proxy.restore();
    // The backlog drains: every send is either acked or was refused, none is left hanging.
    const outcome = (): number => new Set(a.frames.filter((f) => f.op === 'ack' || f.op === 'error').map((f) => f.cid)).size;
    const drainBy = Date.now() + 30_000;
    while (outcome() < n) {
      expect(Date.now(), `${n - outcome()} sends still without an ack or error`).toBeLessThan(drainBy);
      await new Promise((r) => setTimeout(r, 50));
    }
    const acked = new Map(a.frames.filter((f) => f.op === 'ack').map((f) => [f.cid as string, f]));
    const refused = new Set(a.frames.filter((f) => f.op === 'error').map((f) => f.cid as string));
    expect(acked.size + refused.size).toBe(n);
    expect(acked.size).toBeGreaterThanOrEqual(300);
    expect((await getJson(`${eng.http}/healthz`)).body.store).toBe('ok');
    const stored = await allMessages(eng, 'away');
    expect(stored.map((m) => m.seq)).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1));
    const storedCids = new Set(stored.map((m) => m.cid));
    for (const cid of acked.keys()) expect(storedCids.has(cid)).toBe(true);
    for (const cid of refused) expect(storedCids.has(cid)).toBe(false);
    // in order: the watcher saw every stored message once, in seq order
    const live = await watcher.msgs('away', stored.length);
    expect(live.map((m) => m.id)).toEqual(stored.map((m) => m.id));
    await Promise.all([a.close(), watcher.close()]);
    expect(await eng.stop()).toBe(0);
    await proxy.cut();
  });

  it('upgrading a schema-3 database: migration 4 makes (sender, cid) compare exactly, online (a write commits while the ALTER is unfinished), every row kept', async () => {
    const up = await freshDatabase();
    const c = await mysql.createConnection({ uri: up.url, charset: 'utf8mb4_bin' });
    const w = await mysql.createConnection({ uri: up.url, charset: 'utf8mb4_bin' });
    try {
      // A database as schema 3 left it: from_id and cid in the PAD SPACE collation.
      await migrateMysql(c);
      await c.query('ALTER TABLE messages MODIFY from_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, MODIFY cid VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL');
      await c.query('UPDATE schema_version SET version = 3');
      const ROWS = 200_000;
      for (let i = 0; i < ROWS; i += 5000) {
        const rows = Array.from({ length: 5000 }, (_, j) => { const n = i + j + 1; return [n, String(n).padStart(13, '0'), 'big', n, 'CHAT', `u${n % 1000}`, 'U', 'some text of a message', n, `c${n}`]; });
        await c.query('INSERT INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at, cid) VALUES ?', [rows]);
      }
      await expect(c.query("INSERT INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at, cid) VALUES (999999999, 'X', 'big', 999999999, 'CHAT', 'u1', 'U', 't', 1, 'c1 ')"))
        .rejects.toMatchObject({ code: 'ER_DUP_ENTRY' }); // "c1 " collides with "c1" under PAD SPACE

      // Online, proved with the ALTER's own state and a held table lock, never wall-clock order.
      // MariaDB's INPLACE, LOCK=NONE rebuild takes an exclusive metadata lock briefly while it
      // prepares and again to commit; in between ("altering table") writes go on. A transaction
      // of `hold` reading the table keeps the ALTER from committing, so it is provably unfinished
      // while the write runs.
      const hold = await mysql.createConnection({ uri: up.url, charset: 'utf8mb4_bin' });
      try {
        const alterId = await connectionId(c);
        const writeId = await connectionId(w);
        let migrated = false;
        const migration = migrateMysql(c).then(() => { migrated = true; });
        await untilState(hold, alterId, (s) => s === 'altering table', 'the ALTER in its online phase');
        await hold.query('START TRANSACTION');
        await hold.query('SELECT tsid FROM messages WHERE tsid = 1');
        const insert = (tsid: number, cid: string): Promise<unknown> =>
          w.query(`INSERT INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at, cid) VALUES (${tsid}, 'Y${tsid % 10}', 'big', ${tsid}, 'CHAT', 'u2', 'U', 't', 1, ?)`, [cid]);
        let written = false;
        const during = insert(999999998, 'during').then(() => { written = true; });
        const seen = await untilState(hold, writeId, (s) => written || s === 'Waiting for table metadata lock', 'the write to finish or wait');
        if (!written) {
          await hold.query('COMMIT');
          await during;
          throw new Error(`the write waited (${seen}): either the ALTER is not online or it finished copying before the write began`);
        }
        expect(migrated, 'the ALTER cannot have finished: the held transaction keeps it from committing').toBe(false);
        // Its end: the ALTER waits for the held transaction to commit, and a write that arrives
        // meanwhile queues behind its exclusive lock (on a busy table, a long transaction holds up
        // writes for as long as it runs once the ALTER is at its end).
        await untilState(hold, alterId, (s) => s === 'Waiting for table metadata lock', 'the ALTER waiting for its exclusive lock');
        let late = false;
        const after = insert(999999997, 'at-the-end').then(() => { late = true; });
        await untilState(hold, writeId, (s) => s === 'Waiting for table metadata lock', 'the second write to queue behind the ALTER');
        expect(late).toBe(false);
        await hold.query('COMMIT');
        await Promise.all([migration, after]);
      } finally {
        await hold.end();
      }

      const [cols] = await c.query<mysql.RowDataPacket[]>("SELECT COLLATION_NAME AS coll FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'messages' AND column_name IN ('from_id', 'cid')");
      expect(cols.map((r) => r.coll)).toEqual(['utf8mb4_nopad_bin', 'utf8mb4_nopad_bin']);
      const [[count]] = await c.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM messages');
      expect(Number(count.n)).toBe(ROWS + 2);
      await c.query("INSERT INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at, cid) VALUES (999999999, 'X', 'big', 999999999, 'CHAT', 'u1', 'U', 't', 1, 'c1 ')");
      const [[version]] = await c.query<mysql.RowDataPacket[]>('SELECT version FROM schema_version');
      expect(Number(version.version)).toBe(MYSQL_SCHEMA_VERSION);
    } finally {
      await c.end();
      await w.end();
      await up.drop();
    }
  }, 120_000);
});
