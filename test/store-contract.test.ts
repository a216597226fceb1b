// One contract suite for every store: whatever SQLite passes, MySQL/MariaDB passes.

import Database from 'better-sqlite3';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdGenerator, tsidFloor, tsidToBigInt } from '../workers/ids.ts';
import { migrateMysql } from '../workers/stores/mysql/migrations.ts';
import { MysqlReader } from '../workers/stores/mysql/reader.ts';
import { MysqlStore } from '../workers/stores/mysql/store.ts';
import { SqliteReader } from '../workers/stores/sqlite/reader.ts';
import { SqliteStore } from '../workers/stores/sqlite/store.ts';
import type { DirectoryStore, MessageReader, MessageStore, NewMessage, RoomRow } from '../workers/stores/store.ts';
import { tempDir } from './helpers.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

type Store = MessageStore & DirectoryStore;

interface Subject {
  open(): Promise<{ store: Store; reader: MessageReader }>;
  /** Open the same database again (a restart). */
  reopen(): Promise<{ store: Store; reader: MessageReader }>;
  /** Mark the schema as written by a newer engine, then try to open: must refuse. */
  openTooNew(): Promise<unknown>;
  cleanup(): Promise<void>;
}

function sqliteSubject(): Subject {
  const path = join(tempDir(), 'contract.db');
  return {
    open: async () => ({ store: new SqliteStore(path, 'normal'), reader: new SqliteReader(path) }),
    reopen: async () => ({ store: new SqliteStore(path, 'normal'), reader: new SqliteReader(path) }),
    openTooNew: async () => {
      const db = new Database(path);
      db.pragma('user_version = 99');
      db.close();
      try {
        return new SqliteStore(path, 'normal');
      } finally {
        const d2 = new Database(path);
        d2.pragma('user_version = 2');
        d2.close();
      }
    },
    cleanup: async () => {},
  };
}

function mysqlSubject(): Subject {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  const open = async (): Promise<{ store: Store; reader: MessageReader }> => ({ store: await MysqlStore.open(db.url), reader: new MysqlReader(db.url, 2) });
  return {
    open: async () => {
      db = await freshDatabase();
      return open();
    },
    reopen: open,
    openTooNew: async () => {
      const c = await mysql.createConnection({ uri: db.url });
      await c.query('UPDATE schema_version SET version = 99');
      try {
        return await MysqlStore.open(db.url);
      } finally {
        await c.query('UPDATE schema_version SET version = 2');
        await migrateMysql(c); // re-running the migrations is harmless
        await c.end();
      }
    },
    cleanup: () => db.drop(),
  };
}

const HAVE_MYSQL = await mysqlAvailable();
const subjects: [string, () => Subject][] = [['sqlite', sqliteSubject]];
if (HAVE_MYSQL) subjects.push(['mysql', mysqlSubject]);

describe.each(subjects)('store contract: %s', (_name, make) => {
  const subject = make();
  let store: Store;
  let reader: MessageReader;
  const ids = new IdGenerator(7);
  const room = (id: string, kind: RoomRow['kind'] = 'public', dmKey: string | null = null): RoomRow =>
    ({ id, kind, name: `n-${id}`, subject: kind === 'public' ? null : 'article:1', epoch: ids.next().id, lastSeq: 0, createdAt: Date.now(), dmKey, deleted: false });
  const msgs: NewMessage[] = [];
  const mk = (roomId: string, seq: number, cid: string | null, at = Date.now()): NewMessage => {
    const { id, tsid } = ids.next();
    return { tsid, id, room: roomId, seq, type: 'CHAT', fromId: 'u1', fromName: 'User One', text: `t${seq} \u00e9\u{1F600} <b>'"`, at, cid };
  };

  beforeAll(async () => { ({ store, reader } = await subject.open()); });
  afterAll(async () => {
    await store.close();
    await reader.close();
    await subject.cleanup();
  });

  it('creates rooms, finds them, keeps members and direct-room keys unique', async () => {
    await store.createRoom(room('r1'), []);
    await store.createRoom(room('g1', 'group'), ['b', 'a']);
    await store.createRoom(room('d1', 'direct', 'a\u0001b\u0002'), ['a', 'b']);
    expect((await store.getRoom('r1'))?.kind).toBe('public');
    expect(await store.getRoom('nope')).toBeNull();
    expect(await store.members('g1')).toEqual(['a', 'b']);
    expect((await store.findDirect('a\u0001b\u0002'))?.id).toBe('d1');
    await expect(Promise.resolve().then(() => store.createRoom(room('d2', 'direct', 'a\u0001b\u0002'), []))).rejects.toThrow();
    await store.setMembers('g1', ['c'], true);
    await store.setMembers('g1', ['a'], false);
    expect(await store.members('g1')).toEqual(['b', 'c']);
    expect((await reader.roomsBySubject('article:1')).map((r) => r.id).sort()).toEqual(['d1', 'g1']);
  });

  it('commits batches atomically with room seqs; a repeated commit is harmless; cids are found again', async () => {
    const batch = [mk('r1', 1, 'c1'), mk('r1', 2, 'c2'), mk('r1', 3, null)];
    msgs.push(...batch);
    await store.commit(batch, new Map([['r1', 3]]), []);
    await store.commit(batch, new Map([['r1', 3]]), []); // unknown outcome -> retried
    expect((await store.getRoom('r1'))?.lastSeq).toBe(3);
    const hits = await store.findByCids([['u1', 'c1'], ['u1', 'c2'], ['u1', 'zz'], ['u2', 'c1']]);
    expect([...hits.keys()].sort()).toEqual(['u1\u0000c1', 'u1\u0000c2']);
    expect(hits.get('u1\u0000c2')).toEqual({ room: 'r1', seq: 2, id: batch[1].id, at: batch[1].at });
    const more = Array.from({ length: 1200 }, (_, i) => mk('r1', 4 + i, `m${i}`));
    msgs.push(...more);
    await store.commit(more, new Map([['r1', 1203]]), []);
    expect((await store.getRoom('r1'))?.lastSeq).toBe(1203);
  });

  it('refuses a second message with the same (sender, cid) at the store level', async () => {
    const dup = { ...mk('r1', 5000, 'c1') };
    // INSERT IGNORE / OR IGNORE skips it: the actor dedupes before, so this only guards retries.
    await store.commit([dup], new Map(), []);
    const page = await reader.page({ room: 'r1', after: dup.tsid - 1n, limit: 5, notBefore: 0 });
    expect(page.map((m) => m.id)).not.toContain(dup.id);
  });

  it('reads latest, before and after pages oldest first, with limit + 1 rows', async () => {
    const latest = await store.latest('r1', 5, 0);
    expect(latest.map((m) => m.seq)).toEqual([1199, 1200, 1201, 1202, 1203]);
    expect(latest[0].text).toBe(msgs[1198].text);
    const before = await reader.page({ room: 'r1', before: tsidToBigInt(msgs[10].id), limit: 4, notBefore: 0 });
    expect(before.map((m) => m.seq)).toEqual([6, 7, 8, 9, 10]);
    const after = await reader.page({ room: 'r1', after: tsidToBigInt(msgs[0].id), limit: 3, notBefore: 0 });
    expect(after.map((m) => m.seq)).toEqual([2, 3, 4, 5]);
    expect(after[1].cid).toBeUndefined();
    expect(after[0]).toMatchObject({ room: 'r1', type: 'CHAT', from: { id: 'u1', name: 'User One' }, cid: 'c2' });
    const first = await reader.page({ room: 'r1', limit: 2, notBefore: 0 });
    expect(first.map((m) => m.seq)).toEqual([1201, 1202, 1203]);
    expect(await reader.seqOf('r1', tsidToBigInt(msgs[2].id))).toBe(3);
    expect(await reader.seqOf('r1', 1n)).toBeNull();
    expect(await reader.seqAt('r1', tsidToBigInt(msgs[2].id))).toBe(3); // (id + 1 may be the next message's id)
    expect(await reader.seqAt('r1', 1n)).toBe(0);
    expect(await reader.page({ room: 'nope', limit: 5, notBefore: 0 })).toEqual([]);
  });

  it('read markers: upsert, first-only, and my rooms with unread', async () => {
    await store.commit([], new Map(), [{ room: 'r1', user: 'reader', seq: 1000, id: msgs[999].id, ifAbsent: false }]);
    await store.commit([], new Map(), [{ room: 'r1', user: 'reader', seq: 1, id: msgs[0].id, ifAbsent: true }]);
    await store.commit([], new Map(), [{ room: 'g1', user: 'b', seq: 0, id: '0000000000000', ifAbsent: false }]);
    const mine = await reader.myRooms('reader', 0);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ readSeq: 1000, lastSeq: 1203, info: { id: 'r1', kind: 'public', members: null } });
    expect(mine[0].last?.seq).toBe(1203);
    const b = await reader.myRooms('b', 0);
    expect(b.map((r) => r.info.id)).toEqual(['d1', 'g1']);
    expect(b[1]).toMatchObject({ readSeq: 0, info: { members: ['b', 'c'] } });
  });

  it('a read marker only moves forward: an older one, alone or later in the same commit, is ignored', async () => {
    const at = (seq: number, ifAbsent = false) => ({ room: 'r1', user: 'fwd', seq, id: msgs[seq - 1].id, ifAbsent });
    const readSeq = async () => (await reader.myRooms('fwd', 0))[0]?.readSeq;
    await store.commit([], new Map(), [at(500)]);
    expect(await readSeq()).toBe(500);
    await store.commit([], new Map(), [at(200)]); // a stale `read` (another tab, a reordered retry)
    expect(await readSeq()).toBe(500);
    await store.commit([], new Map(), [at(700), at(600)]); // both in one group commit
    expect(await readSeq()).toBe(700);
    await store.commit([], new Map(), [at(800), at(900, true)]); // first-only never overrides a marker
    expect(await readSeq()).toBe(800);
  });

  it('blocks are stored and listed', async () => {
    await store.setBlock('a', 'b', true);
    await store.setBlock('a', 'b', true);
    await store.setBlock('c', 'd', true);
    await store.setBlock('c', 'd', false);
    expect(await store.allBlocks()).toEqual([['a', 'b']]);
  });

  it('retention purges by key range in bounded batches and hides expired rows', async () => {
    const old = Date.now() - 3_600_000;
    const oldMsgs = [mk('g1', 1, 'o1', old), mk('g1', 2, 'o2', old)];
    // Old messages get old TSIDs in real life; here the ids are new, so purge by a cutoff above them.
    await store.commit(oldMsgs, new Map([['g1', 2]]), []);
    expect(await reader.page({ room: 'g1', limit: 10, notBefore: Date.now() - 60_000 })).toEqual([]);
    const cutoff = tsidFloor(Date.now() + 1000);
    let n = 0;
    let step: number;
    do {
      step = await store.purgeBefore(cutoff, 500);
      expect(step).toBeLessThanOrEqual(500);
      n += step;
    } while (step === 500);
    expect(n).toBe(msgs.length + 2);
    expect(await store.latest('r1', 5, 0)).toEqual([]);
  });

  it('deleting a room leaves a tombstone and removes its messages, members and markers', async () => {
    await store.commit([mk('g1', 3, 'g3')], new Map([['g1', 3]]), []);
    await store.deleteRoom('g1');
    expect((await store.getRoom('g1'))?.deleted).toBe(true);
    expect(await store.members('g1')).toEqual([]);
    expect(await store.latest('g1', 5, 0)).toEqual([]);
    expect((await reader.myRooms('b', 0)).map((r) => r.info.id)).toEqual(['d1']);
    expect((await reader.roomsBySubject('article:1')).map((r) => r.id)).toEqual(['d1']);
  });

  it('survives a restart with the schema migrated once, and refuses a database newer than the code', async () => {
    await store.close();
    await reader.close();
    ({ store, reader } = await subject.reopen());
    expect((await store.getRoom('r1'))?.lastSeq).toBe(1203);
    await expect(subject.openTooNew()).rejects.toThrow(/newer|schema version 99/);
  });
});
