// The MySQL store whatever the server's defaults: values are escaped by the client, so every
// connection pins its sql_mode (a server defaulting to NO_BACKSLASH_ESCAPES or ANSI_QUOTES must not
// change what is stored); and a group commit larger than max_allowed_packet still commits, in one
// transaction. The server's defaults are stood in for by a statement each connection runs before
// the engine pins its session (the shared server's globals are left alone).

import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdGenerator } from '../workers/ids.ts';
import { Assigner } from '../workers/persistence/assign.ts';
import type { SessionSetup } from '../workers/stores/mysql/connection.ts';
import { MysqlReader } from '../workers/stores/mysql/reader.ts';
import { MysqlStore } from '../workers/stores/mysql/store.ts';
import type { NewMessage, RoomRow } from '../workers/stores/store.ts';
import { startEngine } from './support/engine.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

const HAVE_MYSQL = await mysqlAvailable();
const HOSTILE_DEFAULTS: SessionSetup = { serverDefaults: "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES,ANSI_QUOTES'" };
const TRICKY = ["it's", 'back\\slash', "\\'", "\\\\'; DROP TABLE messages; --", '"double"', '\\"', 'nul \\0 and \\n', '%_ like', "'\\", '\u00e9\u{1F600} \\u0000'];

describe.runIf(HAVE_MYSQL)('MySQL store: pinned session, packets', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  const ids = new IdGenerator(5);
  const room = (id: string, name: string | null = null): RoomRow => ({ id, kind: 'public', name, subject: null, epoch: ids.next().id, lastSeq: 0, createdAt: Date.now(), dmKey: null, deleted: false, createdBy: null });
  const msg = (r: string, seq: number, text: string, cid: string | null, from = 'u1'): NewMessage => {
    const { id, tsid } = seq > 0 ? ids.next() : { id: '', tsid: 0n };
    return { tsid, id, room: r, seq, type: 'CHAT', fromId: from, fromName: `N'${from}\\`, text, at: Date.now(), cid, target: null };
  };

  beforeAll(async () => { db = await freshDatabase(); });
  afterAll(async () => { await db?.drop(); });

  it('the stand-in for a server default is real: unpinned, client-side escaping breaks under it', async () => {
    const c = await mysql.createConnection({ uri: db.url });
    try {
      await c.query(HOSTILE_DEFAULTS.serverDefaults!);
      const outcome = await c.query<mysql.RowDataPacket[]>(mysql.format('SELECT ? AS v', ["it's \\ here"])).then(([rows]) => rows[0].v as string, (err: Error) => `error: ${err.message}`);
      expect(outcome).not.toBe("it's \\ here");
    } finally {
      await c.end();
    }
  });

  it('with NO_BACKSLASH_ESCAPES and ANSI_QUOTES as the server default, quotes and backslashes are stored exactly on every path', async () => {
    const store = await MysqlStore.open(db.url, 0, HOSTILE_DEFAULTS);
    const reader = new MysqlReader(db.url, 2, HOSTILE_DEFAULTS);
    try {
      await store.createRoom({ ...room('esc', "a 'quoted' \\ name"), subject: 'sub\\\'ject' }, []);
      expect((await store.getRoom('esc'))?.name).toBe("a 'quoted' \\ name");
      // The single node's commit: one multi-statement query escaped by the client.
      const batch = TRICKY.map((t, i) => msg('esc', i + 1, t, `cid'\\${i}`));
      await store.commit(batch, new Map([['esc', batch.length]]), [{ room: 'esc', user: "r'\\", seq: 2, id: batch[1].id, ifAbsent: false }]);
      const hits = await store.findByCids(batch.map((m) => [m.fromId, m.cid!]));
      expect(hits.size).toBe(batch.length);
      // The cluster's commit: the same, under the rooms' row locks.
      const more = TRICKY.map((t, i) => msg('esc', 0, t, `more'\\${i}`, "u'\\2"));
      expect([...(await store.commitAssign(more, [], new Assigner(new IdGenerator(6)).underLock)).missing]).toEqual([]);
      const all = await reader.range('esc', 1, 100);
      expect(all.map((m) => m.text)).toEqual([...TRICKY, ...TRICKY]);
      expect(all.map((m) => m.cid)).toEqual([...batch, ...more].map((m) => m.cid));
      expect(all.map((m) => m.from)).toEqual([...batch, ...more].map((m) => ({ id: m.fromId, name: m.fromName })));
      expect((await reader.roomsBySubject('sub\\\'ject')).map((r) => r.id)).toEqual(['esc']);
      expect((await reader.myRooms("r'\\", 0, []))[0]).toMatchObject({ readSeq: 2 });
      // And as a plain client with the server's real defaults reads them.
      const c = await mysql.createConnection({ uri: db.url });
      const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT text FROM messages WHERE room = ? ORDER BY seq', ['esc']);
      await c.end();
      expect(rows.map((r) => r.text)).toEqual([...TRICKY, ...TRICKY]);
    } finally {
      await store.close();
      await reader.close();
    }
  });

  it('a group commit larger than max_allowed_packet commits, in one transaction, on both write paths', async () => {
    const store = await MysqlStore.open(db.url);
    const reader = new MysqlReader(db.url, 2);
    try {
      const c = await mysql.createConnection({ uri: db.url });
      const [[row]] = await c.query<mysql.RowDataPacket[]>('SELECT @@max_allowed_packet AS p');
      await c.end();
      const packet = Number(row.p);
      // Texts of 60,000 characters, a third of them quotes (each escaped to two bytes): ~80 KB a row.
      const text = (i: number): string => `${i}:` + "ab'".repeat(20_000);
      const n = Math.ceil((packet * 1.3) / 80_000);
      await store.createRoom(room('big'), []);
      const batch = Array.from({ length: n }, (_, i) => msg('big', i + 1, text(i), `big${i}`));
      const bytes = batch.reduce((sum, m) => sum + mysql.format('?', [m.text]).length, 0);
      expect(bytes, 'the batch is larger than max_allowed_packet').toBeGreaterThan(packet);
      await store.commit(batch, new Map([['big', n]]), []);
      expect((await store.getRoom('big'))?.lastSeq).toBe(n);
      const stored = await reader.range('big', 1, n);
      expect(stored.map((m) => m.seq)).toEqual(batch.map((m) => m.seq));
      expect(stored.every((m, i) => m.text === text(i))).toBe(true);

      const again = Array.from({ length: n }, (_, i) => msg('big', 0, text(n + i), `big-c${i}`));
      expect([...(await store.commitAssign(again, [{ room: 'big', user: 'reader', seq: -1, id: '', ifAbsent: false }], new Assigner(new IdGenerator(6)).underLock)).missing]).toEqual([]);
      expect(again.map((m) => m.seq)).toEqual(Array.from({ length: n }, (_, i) => n + i + 1));
      expect((await reader.lastSeqs(['big'])).get('big')).toBe(2 * n);
      expect((await reader.range('big', n + 1, 2 * n)).every((m, i) => m.text === text(n + i))).toBe(true);
      expect((await reader.myRooms('reader', 0, []))[0]).toMatchObject({ readSeq: 2 * n });
    } finally {
      await store.close();
      await reader.close();
    }
  }, 60_000);

  it('refuses to start when max_allowed_packet cannot hold the largest message CHAT_MAX_PAYLOAD allows, naming both', async () => {
    const c = await mysql.createConnection({ uri: db.url });
    const [[row]] = await c.query<mysql.RowDataPacket[]>('SELECT @@max_allowed_packet AS p');
    await c.end();
    const payload = Math.min(16 << 20, Math.ceil(Number(row.p) / 3) + 1024);
    await expect(startEngine({ CHAT_STORE: db.url, CHAT_MAX_PAYLOAD: String(payload) })).rejects.toThrow(/max_allowed_packet.*CHAT_MAX_PAYLOAD/);
  });
});
