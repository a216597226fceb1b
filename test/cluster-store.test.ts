// The cluster's write path in the MySQL store: seq and ids assigned inside the transaction under
// the room's lock, gapless for two writers at once, cid conflicts between nodes, repeats after an
// unknown outcome, deleted rooms, two deletes of one message; and the two reads a node uses to fill
// gaps.

import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdGenerator } from '../workers/ids.ts';
import { Assigner } from '../workers/persistence/assign.ts';
import { MysqlReader } from '../workers/stores/mysql/reader.ts';
import { MysqlStore } from '../workers/stores/mysql/store.ts';
import { DuplicateCidError, type NewMessage, type RoomRow, type Unstored } from '../workers/stores/store.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

const HAVE_MYSQL = await mysqlAvailable();

describe.runIf(HAVE_MYSQL)('cluster commit (MySQL)', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let a: MysqlStore; // node 1's write connection
  let b: MysqlStore; // node 2's
  let reader: MysqlReader;
  const ids1 = new IdGenerator(1);
  const ids2 = new IdGenerator(2);
  const next1 = new Assigner(ids1).underLock;
  const next2 = new Assigner(ids2).underLock;
  const room = (id: string): RoomRow => ({ id, kind: 'public', name: null, subject: null, epoch: ids1.next().id, lastSeq: 0, createdAt: Date.now(), dmKey: null, deleted: false, createdBy: null });
  const msg = (r: string, from: string, cid: string | null): NewMessage =>
    ({ tsid: 0n, id: '', room: r, seq: 0, type: 'CHAT', fromId: from, fromName: from, text: `hi from ${from}`, at: Date.now(), cid, target: null });

  beforeAll(async () => {
    db = await freshDatabase();
    a = await MysqlStore.open(db.url);
    b = await MysqlStore.open(db.url);
    reader = new MysqlReader(db.url, 2);
    for (const r of ['c1', 'c2', 'c3']) await a.createRoom(room(r), []);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await reader?.close();
    await db?.drop();
  });

  it('two nodes committing the same rooms at once get gapless seqs, ids in seq order, their own node bits', async () => {
    const batches: Promise<Unstored>[] = [];
    const all: NewMessage[] = [];
    for (let i = 0; i < 20; i++) {
      const m1 = [msg('c1', 'u1', `a${i}`), msg('c2', 'u1', `b${i}`), msg('c1', 'u1', `c${i}`)];
      const m2 = [msg('c1', 'u2', `a${i}`), msg('c2', 'u2', `b${i}`)];
      all.push(...m1, ...m2);
      batches.push(a.commitAssign(m1, [], next1), b.commitAssign(m2, [], next2));
    }
    for (const { missing } of await Promise.all(batches)) expect(missing.size).toBe(0);
    for (const r of ['c1', 'c2']) {
      const mine = all.filter((m) => m.room === r).sort((x, y) => x.seq - y.seq);
      expect(mine.map((m) => m.seq)).toEqual(mine.map((_, i) => i + 1));
      for (let i = 1; i < mine.length; i++) expect(mine[i].tsid > mine[i - 1].tsid).toBe(true);
      const stored = await reader.range(r, 1, 1000);
      expect(stored.map((m) => m.seq)).toEqual(mine.map((m) => m.seq));
      expect(stored.map((m) => m.id)).toEqual(mine.map((m) => m.id));
    }
    for (const m of all) expect(Number((m.tsid >> 12n) & 1023n)).toBe(m.fromId === 'u1' ? 1 : 2);
    const last = await reader.lastSeqs(['c1', 'c2', 'c3', 'nope']);
    expect([...last].sort()).toEqual([['c1', 60], ['c2', 40], ['c3', 0]]);
  });

  it('a (sender, cid) another node stored first fails the batch with DuplicateCidError and stores nothing', async () => {
    await a.commitAssign([msg('c3', 'u9', 'same')], [], next1);
    const batch = [msg('c3', 'u8', 'other'), msg('c3', 'u9', 'same')];
    await expect(b.commitAssign(batch, [], next2)).rejects.toBeInstanceOf(DuplicateCidError);
    expect(batch.every((m) => m.seq === 0)).toBe(true);
    expect((await reader.lastSeqs(['c3'])).get('c3')).toBe(1);
    // The actor drops the duplicate and commits the rest: seq continues without a hole.
    await b.commitAssign([batch[0]], [], next2);
    expect(batch[0].seq).toBe(2);
  });

  it('cids that differ only by trailing spaces are different cids (no PAD SPACE collision in the unique key)', async () => {
    const x = msg('c3', 'u6', 'x');
    const xs = msg('c3', 'u6', 'x ');
    await a.commitAssign([x], [], next1);
    await b.commitAssign([xs], [], next2);
    expect(xs.seq).toBe(x.seq + 1);
    const hits = await a.findByCids([['u6', 'x'], ['u6', 'x '], ['u6', 'x  ']]);
    expect([...hits.keys()].sort()).toEqual(['u6\0x', 'u6\0x ']);
    expect(hits.get('u6\0x ')!.seq).toBe(xs.seq);
  });

  it('a node that freezes between the two round trips of its commit holds the room\'s lock only for the idle-transaction timeout, then its commit fails and a retry goes through', async () => {
    const frozen = await MysqlStore.open(db.url, 1); // idle_transaction_timeout = 1 s
    const other = await MysqlStore.open(db.url, 1);
    const watch = await mysql.createConnection({ uri: db.url });
    let thaw = (): void => {};
    try {
      await frozen.createRoom(room('fz'), []);
      // The frozen node's write connection: its second round trip (insert + COMMIT) waits until
      // the test thaws it; the first (the room's row lock) has then been answered.
      const conn = (frozen as unknown as { writer: { conn: { query: (...a: unknown[]) => Promise<unknown> } } }).writer.conn;
      const query = conn.query.bind(conn);
      let calls = 0;
      let froze = (): void => {};
      const frozenNow = new Promise<void>((r) => { froze = r; });
      const thawed = new Promise<void>((r) => { thaw = r; });
      conn.query = async (...args: unknown[]) => {
        if (++calls === 2) { froze(); await thawed; }
        return query(...args);
      };
      const stuck = msg('fz', 'u1', 'frozen-1');
      const frozenCommit = frozen.commitAssign([stuck], [], next1).then(() => 'committed', (err: Error) => `failed: ${err.message}`);
      await frozenNow; // the frozen node holds fz's row lock
      const mine = msg('fz', 'u2', 'other-1');
      let done = false;
      const otherCommit = other.commitAssign([mine], [], next2).then(() => { done = true; });
      // The other node really waits on that lock: in one look at the server, the frozen node's
      // transaction is open and the other node's SELECT ... FOR UPDATE of the room is running.
      let holder = 0;
      for (;;) {
        const [rows] = await watch.query<mysql.RowDataPacket[]>(
          'SELECT p.ID AS id, p.INFO AS info, t.trx_state AS trx FROM information_schema.processlist p LEFT JOIN information_schema.innodb_trx t ON t.trx_mysql_thread_id = p.ID WHERE p.DB = DATABASE()');
        const open = rows.find((r) => r.trx === 'RUNNING' && r.info === null);
        if (open && rows.some((r) => r.id !== open.id && /FOR UPDATE/.test(String(r.info)))) { holder = Number(open.id); break; }
        expect(done, 'the other node committed without waiting: the frozen node held no lock').toBe(false);
        await new Promise((r) => setTimeout(r, 10));
      }
      // ...and gets it while the frozen node is still frozen: the server ended the idle
      // transaction (its connection is gone), not innodb_lock_wait_timeout (50 s, which would
      // fail this commit).
      await otherCommit;
      expect(mine.seq).toBe(1);
      const [still] = await watch.query<mysql.RowDataPacket[]>('SELECT ID FROM information_schema.processlist WHERE ID = ?', [holder]);
      expect(still, 'the frozen node\'s connection was closed by the server').toEqual([]);
      thaw();
      expect(await frozenCommit).toMatch(/^failed/);
      // The actor retries on a new connection: the message lands after the other node's.
      conn.query = query;
      await frozen.commitAssign([stuck], [], next1);
      expect(stuck.seq).toBe(2);
      expect((await reader.range('fz', 1, 10)).map((m) => m.cid)).toEqual(['other-1', 'frozen-1']);
    } finally {
      thaw();
      await watch.end();
      await frozen.close();
      await other.close();
    }
  }, 30_000);

  it('a repeat after an unknown outcome does not store the batch twice, and commits what was accepted since', async () => {
    const batch = [msg('c3', 'u7', null), msg('c3', 'u7', null)];
    await a.commitAssign(batch, [], next1);
    const seqs = batch.map((m) => m.seq);
    // As if the COMMIT's answer had been lost: the actor retries the same batch, with what arrived
    // during the backoff (a new message in another room, and a read marker) behind it.
    const later = msg('c1', 'u7', 'later');
    const retry = [...batch, later];
    const { missing } = await a.commitAssign(retry, [{ room: 'c1', user: 'u7', seq: -1, id: '', ifAbsent: true }], next1);
    expect([...missing]).toEqual([]);
    expect(batch.map((m) => m.seq)).toEqual(seqs);
    expect(later.seq).toBeGreaterThan(0);
    expect((await reader.range('c3', 1, 100)).length).toBe(6);
    expect((await reader.range('c1', later.seq, later.seq))[0].id).toBe(later.id);
    expect((await reader.myRooms('u7', 0, [])).find((r) => r.info.id === 'c1')?.readSeq).toBe(later.seq);
  });

  it('messages to a room that does not exist (or was deleted) are reported, not stored; marks with seq -1 take the batch\'s last', async () => {
    await a.deleteRoom('c2');
    const batch = [msg('c2', 'u1', 'gone'), msg('c1', 'u1', 'here')];
    const marks = [{ room: 'c1', user: 'u1', seq: -1, id: '', ifAbsent: true }];
    const { missing } = await a.commitAssign(batch, marks, next1);
    expect([...missing]).toEqual(['c2']);
    expect(batch[0].seq).toBe(0);
    expect(batch[1].seq).toBe(62); // 60 from the first test, 1 from the unknown-outcome test
    const mine = await reader.myRooms('u1', 0, []);
    expect(mine.find((r) => r.info.id === 'c1')?.readSeq).toBe(62);
  });

  it('two nodes deleting the same message at once: one DELETE is stored, the other is reported with it and stores nothing', async () => {
    await a.createRoom(room('c4'), []);
    const target = msg('c4', 'u1', 'del-me');
    await a.commitAssign([target], [], next1);
    const del = (): NewMessage => ({ ...msg('c4', 'u1', null), type: 'DELETE', text: '', target: target.id });
    const [d1, d2] = [del(), del()];
    // A third connection holds the room's row lock until both commits have begun and wait for it,
    // so the one that gets the lock second began its transaction before the first one committed.
    const holder = await mysql.createConnection({ uri: db.url });
    let results: [Unstored, Unstored];
    try {
      await holder.query('START TRANSACTION');
      await holder.query("SELECT id FROM rooms WHERE id = 'c4' FOR UPDATE");
      const commits = Promise.all([a.commitAssign([d1], [], next1), b.commitAssign([d2], [], next2)]);
      for (;;) {
        // Both are inside their SELECT ... FOR UPDATE of the room, as the server's process list shows.
        const [rows] = await holder.query<mysql.RowDataPacket[]>(
          "SELECT count(*) AS n FROM information_schema.processlist WHERE DB = DATABASE() AND COMMAND = 'Query' AND INFO LIKE 'SELECT id, last_seq, last_tsid FROM rooms WHERE id IN (''c4'')%FOR UPDATE'");
        if (Number(rows[0].n) === 2) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await holder.query('COMMIT');
      results = await commits;
    } finally {
      await holder.end();
    }
    const [r1, r2] = results;
    // Whichever took the room's lock first stored its DELETE; the other stored nothing.
    const [won, lost, wonRes, lostRes] = d1.seq > 0 ? [d1, d2, r1, r2] : [d2, d1, r2, r1];
    expect(won.seq).toBe(2);
    expect(lost.seq).toBe(0);
    expect(wonRes.deletedFirst.size).toBe(0);
    expect([...lostRes.deletedFirst]).toEqual([[lost, { room: 'c4', seq: 2, id: won.id, at: won.at }]]);
    expect((await reader.range('c4', 1, 10)).map((m) => [m.seq, m.type])).toEqual([[1, 'CHAT'], [2, 'DELETE']]);
  });
});
