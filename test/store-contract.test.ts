// One contract suite for every store: whatever SQLite passes, MySQL/MariaDB passes.

import Database from 'better-sqlite3';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdGenerator, tsidFloor, tsidToBigInt, tsidToString } from '../workers/ids.ts';
import { migrateMysql, MYSQL_SCHEMA_VERSION } from '../workers/stores/mysql/migrations.ts';
import { migrate, SCHEMA_VERSION } from '../workers/stores/sqlite/migrations.ts';
import { MysqlReader } from '../workers/stores/mysql/reader.ts';
import { MysqlStore } from '../workers/stores/mysql/store.ts';
import { SqliteReader } from '../workers/stores/sqlite/reader.ts';
import { SqliteStore } from '../workers/stores/sqlite/store.ts';
import { cidKey, type DirectoryStore, type MessageReader, type MessageStore, type NewMessage, type RoomRow } from '../workers/stores/store.ts';
import { tempDir } from './support/engine.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

type Store = MessageStore & DirectoryStore;

interface Subject {
  open(): Promise<{ store: Store; reader: MessageReader }>;
  /** Open the same database again (a restart). */
  reopen(): Promise<{ store: Store; reader: MessageReader }>;
  /** Mark the schema as written by a newer engine, then try to open: must refuse. */
  openTooNew(): Promise<unknown>;
  /**
   * A new database at the schema version before quotas and directory versions, holding `seed`
   * (rooms with their members, blocks) as that version stored them, then opened (migrated) by
   * the current store.
   */
  openPrevious(seed: Seed): Promise<{ store: Store; reader: MessageReader; drop: () => Promise<void> }>;
  /**
   * A new database at the schema version before retraction (SQLite 3, MySQL 5) holding room `rr`
   * and `msgs` as that version stored them, then opened (migrated) by the current store.
   */
  openBeforeRetraction(msgs: NewMessage[]): Promise<{ store: Store; reader: MessageReader; version: () => Promise<number>; drop: () => Promise<void> }>;
  cleanup(): Promise<void>;
}

/** The rows of `msgs` in room `rr`, as statements of the schema before retraction (both dialects). */
function oldMessageRows(msgs: NewMessage[]): [string, unknown[]][] {
  const out: [string, unknown[]][] = [['INSERT INTO rooms (id, kind, name, subject, epoch, last_seq, created_at, dm_key, deleted) VALUES (?, ?, NULL, NULL, ?, ?, 1, NULL, 0)', ['rr', 'public', '0SECKC2TR016N', msgs.length]]];
  for (const m of msgs) out.push(['INSERT INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at, cid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', [m.tsid, m.id, m.room, m.seq, m.type, m.fromId, m.fromName, m.text, m.at, m.cid]]);
  return out;
}

interface Seed {
  rooms: { id: string; kind: RoomRow['kind']; members: string[] }[];
  blocks: [string, string][];
}

/** The rows of `seed`, as statements of the schema before quotas (the same SQL in both dialects). */
function seedRows(seed: Seed, epoch: string): [string, unknown[]][] {
  const out: [string, unknown[]][] = [];
  for (const r of seed.rooms) {
    out.push(['INSERT INTO rooms (id, kind, name, subject, epoch, last_seq, created_at, dm_key, deleted) VALUES (?, ?, NULL, NULL, ?, 0, 1, NULL, 0)', [r.id, r.kind, epoch]]);
    for (const u of r.members) out.push(['INSERT INTO members (room, user) VALUES (?, ?)', [r.id, u]]);
  }
  for (const [a, b] of seed.blocks) out.push(['INSERT INTO blocks (blocker, blocked) VALUES (?, ?)', [a, b]]);
  return out;
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
        d2.pragma(`user_version = ${SCHEMA_VERSION}`);
        d2.close();
      }
    },
    openPrevious: async (seed) => {
      const old = join(tempDir(), 'previous.db');
      const db = new Database(old);
      migrate(db, 2);
      for (const [sql, params] of seedRows(seed, '0SECKC2TR016N')) db.prepare(sql).run(...params);
      db.close();
      return { store: new SqliteStore(old, 'normal'), reader: new SqliteReader(old), drop: async () => {} };
    },
    openBeforeRetraction: async (msgs) => {
      const old = join(tempDir(), 'before-retraction.db');
      const db = new Database(old);
      migrate(db, 3);
      for (const [sql, params] of oldMessageRows(msgs)) db.prepare(sql).run(...params);
      db.close();
      const version = async (): Promise<number> => {
        const d = new Database(old, { readonly: true });
        try {
          return d.pragma('user_version', { simple: true }) as number;
        } finally {
          d.close();
        }
      };
      return { store: new SqliteStore(old, 'normal'), reader: new SqliteReader(old), version, drop: async () => {} };
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
    openPrevious: async (seed) => {
      const old = await freshDatabase();
      const c = await mysql.createConnection({ uri: old.url });
      await migrateMysql(c, 4);
      for (const [sql, params] of seedRows(seed, '0SECKC2TR016N')) await c.query(sql, params);
      await c.end();
      return { store: await MysqlStore.open(old.url), reader: new MysqlReader(old.url, 2), drop: old.drop };
    },
    openBeforeRetraction: async (msgs) => {
      const old = await freshDatabase();
      const c = await mysql.createConnection({ uri: old.url });
      await migrateMysql(c, 5);
      for (const [sql, params] of oldMessageRows(msgs)) await c.query(sql, params);
      const version = async (): Promise<number> => {
        const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT version FROM schema_version');
        return Number(rows[0].version);
      };
      return {
        store: await MysqlStore.open(old.url), reader: new MysqlReader(old.url, 2), version,
        drop: async () => { await c.end(); await old.drop(); },
      };
    },
    cleanup: () => db.drop(),
  };
}

const HAVE_MYSQL = await mysqlAvailable();
const subjects: [string, () => Subject][] = [['sqlite', sqliteSubject]];
if (HAVE_MYSQL) subjects.push(['mysql', mysqlSubject]);

describe.each(subjects)('store contract: %s', (subjectName, make) => {
  const subject = make();
  let store: Store;
  let reader: MessageReader;
  const ids = new IdGenerator(7);
  const room = (id: string, kind: RoomRow['kind'] = 'public', dmKey: string | null = null): RoomRow =>
    ({ id, kind, name: `n-${id}`, subject: kind === 'public' ? null : 'article:1', epoch: ids.next().id, lastSeq: 0, createdAt: Date.now(), dmKey, deleted: false, createdBy: null });
  const msgs: NewMessage[] = [];
  const mk = (roomId: string, seq: number, cid: string | null, at = Date.now()): NewMessage => {
    const { id, tsid } = ids.next();
    return { tsid, id, room: roomId, seq, type: 'CHAT', fromId: 'u1', fromName: 'User One', text: `t${seq} \u00e9\u{1F600} <b>'"`, at, cid, target: null };
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
    // a batch of 87 lookups (more than any one statement takes), every third one a miss
    const keys = Array.from({ length: 87 }, (_, i): [string, string] => (i % 3 === 2 ? ['u1', `nope${i}`] : [i % 3 === 1 ? 'u2' : 'u1', `m${i * 13}`]));
    const found = await store.findByCids(keys);
    expect([...found.keys()].sort()).toEqual(keys.filter(([u, c]) => u === 'u1' && c.startsWith('m')).map(([u, c]) => `${u}\u0000${c}`).sort());
    expect(found.get('u1\u0000m39')).toEqual({ room: 'r1', seq: 4 + 39, id: more[39].id, at: more[39].at });
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
    const mine = await reader.myRooms('reader', 0, []);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ readSeq: 1000, lastSeq: 1203, info: { id: 'r1', kind: 'public', members: null } });
    expect(mine[0].last?.seq).toBe(1203);
    const b = await reader.myRooms('b', 0, []);
    expect(b.map((r) => r.info.id)).toEqual(['d1', 'g1']);
    expect(b[1]).toMatchObject({ readSeq: 0, info: { members: ['b', 'c'] } });
  });

  it('a read marker only moves forward: an older one, alone or later in the same commit, is ignored', async () => {
    const at = (seq: number, ifAbsent = false) => ({ room: 'r1', user: 'fwd', seq, id: msgs[seq - 1].id, ifAbsent });
    const readSeq = async () => (await reader.myRooms('fwd', 0, []))[0]?.readSeq;
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
    // a room left without messages keeps its last seq: the next message continues after it
    expect((await store.getRoom('r1'))?.lastSeq).toBe(1203);
    expect(await reader.lastSeqs(['r1', 'g1'])).toEqual(new Map([['r1', 1203], ['g1', 2]]));
  });

  it('deleting a room leaves a tombstone and removes its messages, members and markers', async () => {
    await store.commit([mk('g1', 3, 'g3')], new Map([['g1', 3]]), []);
    await store.deleteRoom('g1');
    expect(await store.getRoom('g1')).toMatchObject({ deleted: true, lastSeq: 3 });
    expect(await store.members('g1')).toEqual([]);
    expect(await store.latest('g1', 5, 0)).toEqual([]);
    expect((await reader.myRooms('b', 0, [])).map((r) => r.info.id)).toEqual(['d1']);
    expect((await reader.roomsBySubject('article:1')).map((r) => r.id)).toEqual(['d1']);
  });

  it('quotas: rooms a user created (not deleted ones, not the host app\'s), blocks per user, who blocks whom', async () => {
    await store.createRoom({ ...room('q1'), createdBy: 'qa' }, []);
    await store.createRoom({ ...room('q2', 'group'), createdBy: 'qa' }, ['qa', 'qb']);
    await store.createRoom(room('q3'), []);
    await store.createRoom({ ...room('q4'), createdBy: 'qb' }, []);
    expect((await store.getRoom('q1'))?.createdBy).toBe('qa');
    expect((await store.getRoom('q3'))?.createdBy).toBeNull();
    expect(await store.roomsCreatedBy('qa')).toBe(2);
    await store.deleteRoom('q2');
    expect(await store.roomsCreatedBy('qa')).toBe(1);
    expect(await store.roomsCreatedBy('nobody')).toBe(0);
    await store.setBlock('qa', 'x1', true);
    await store.setBlock('qa', 'x2', true);
    await store.setBlock('qb', 'qa', true);
    expect(await store.blockCount('qa')).toBe(2);
    expect(await store.blockCount('x1')).toBe(0);
    expect((await store.blockersOf('qa', ['qb', 'qc', 'x1'])).sort()).toEqual(['qb']);
    expect(await store.blockersOf('x1', ['qa'])).toEqual(['qa']);
    expect(await store.blockersOf('x1', [])).toEqual([]);
    for (const [a, b] of [['qa', 'x1'], ['qa', 'x2'], ['qb', 'qa']]) await store.setBlock(a, b, false);
  });

  it('directory versions: each membership change, deletion and block takes the next version; changes after a version are told as they are now, paged', async () => {
    const v0 = await store.dirVersion();
    await store.createRoom(room('dv1', 'group'), ['m1']);
    await store.createRoom(room('dv2', 'group'), ['m1']);
    expect(await store.dirVersion(), 'creating a room is no change to tell').toBe(v0);
    expect(await store.setMembers('dv1', ['m2'], true)).toBe(v0 + 1);
    expect(await store.setBlock('ba', 'bb', true)).toBe(v0 + 2);
    expect(await store.setMembers('dv1', ['m1'], false)).toBe(v0 + 3);
    expect(await store.setBlock('ba', 'bb', false)).toBe(v0 + 4);
    expect(await store.deleteRoom('dv2')).toBe(v0 + 5);
    expect(await store.setBlock('bc', 'bd', true)).toBe(v0 + 6);
    expect(await store.dirVersion()).toBe(v0 + 6);
    const all = await reader.dirChanges(v0, 100);
    expect(all.upTo).toBe(v0 + 6);
    expect(all.rooms).toEqual([
      { version: v0 + 3, room: 'dv1', info: expect.objectContaining({ id: 'dv1', kind: 'group', members: ['m2'] }) },
      { version: v0 + 5, room: 'dv2', info: null },
    ]);
    expect(all.blocks).toEqual([{ version: v0 + 4, blocker: 'ba', blocked: 'bb', on: false }, { version: v0 + 6, blocker: 'bc', blocked: 'bd', on: true }]);
    const later = await reader.dirChanges(v0 + 4, 100);
    expect({ rooms: later.rooms.map((r) => r.room), blocks: later.blocks.map((b) => b.blocker), upTo: later.upTo }).toEqual({ rooms: ['dv2'], blocks: ['bc'], upTo: v0 + 6 });
    expect(await reader.dirChanges(v0 + 6, 100)).toEqual({ upTo: v0 + 6, rooms: [], blocks: [] });
    // A full page covers only up to its last change: the next read starts there.
    const page = await reader.dirChanges(v0, 1);
    expect({ rooms: page.rooms.map((r) => r.version), blocks: page.blocks.map((b) => b.version), upTo: page.upTo }).toEqual({ rooms: [v0 + 3], blocks: [v0 + 4], upTo: v0 + 3 });
    const rest = await reader.dirChanges(page.upTo, 1);
    expect({ rooms: rest.rooms.map((r) => r.version), blocks: rest.blocks.map((b) => b.version), upTo: rest.upTo }).toEqual({ rooms: [v0 + 5], blocks: [v0 + 4], upTo: v0 + 4 });
    await store.setBlock('bc', 'bd', false);
  });

  it('my rooms: last and unread leave out the messages of users the caller blocks and expired ones', async () => {
    const now = Date.now();
    await store.createRoom(room('mr', 'group'), ['me', 'pal', 'foe']);
    const from = (m: NewMessage, who: string): NewMessage => ({ ...m, fromId: who, fromName: who });
    const batch = [from(mk('mr', 1, null, now - 3_600_000), 'pal'), from(mk('mr', 2, null, now), 'pal'), from(mk('mr', 3, null, now), 'foe'), from(mk('mr', 4, null, now), 'pal'), from(mk('mr', 5, null, now), 'foe')];
    await store.commit(batch, new Map([['mr', 5]]), []);
    const mine = async (notBefore: number, blocked: string[]) => {
      const r = (await reader.myRooms('me', notBefore, blocked)).find((x) => x.info.id === 'mr')!;
      return { unread: r.unread, last: r.last?.seq ?? null, lastSeq: r.lastSeq };
    };
    const fresh = now - 60_000;
    expect(await mine(0, [])).toEqual({ unread: 5, last: 5, lastSeq: 5 });
    expect(await mine(0, ['foe'])).toEqual({ unread: 3, last: 4, lastSeq: 5 });
    expect(await mine(fresh, [])).toEqual({ unread: 4, last: 5, lastSeq: 5 });
    expect(await mine(fresh, ['foe'])).toEqual({ unread: 2, last: 4, lastSeq: 5 });
    await store.commit([], new Map(), [{ room: 'mr', user: 'me', seq: 2, id: batch[1].id, ifAbsent: false }]);
    expect(await mine(fresh, ['foe'])).toEqual({ unread: 1, last: 4, lastSeq: 5 });
    expect(await mine(fresh, [])).toEqual({ unread: 3, last: 5, lastSeq: 5 });
    // The same rule over a range of seqs (the `read` reply, for what is older than the window).
    expect(await reader.unread('mr', 0, 3, fresh, ['foe'])).toBe(1); // seq 2 (1 expired, 3 blocked)
    expect(await reader.unread('mr', 0, 3, 0, [])).toBe(3);
    expect(await reader.unread('mr', 0, 4, 0, ['foe'])).toBe(3); // seqs 1, 2 and 4: none beyond upTo
    // The newest visible message further back than one page of blocked ones.
    const more = Array.from({ length: 70 }, (_, i) => from(mk('mr', 6 + i, null, now), 'foe'));
    await store.commit(more, new Map([['mr', 75]]), []);
    expect(await mine(fresh, ['foe'])).toEqual({ unread: 1, last: 4, lastSeq: 75 });
    expect(await mine(fresh, [])).toEqual({ unread: 73, last: 75, lastSeq: 75 });
    // Everything expired: nothing to show, nothing unread.
    expect(await mine(now + 60_000, [])).toEqual({ unread: 0, last: null, lastSeq: 75 });
    await store.deleteRoom('mr');
  });

  it('a DELETE and an EDIT change their target in the commit that stores them; reads show the result', async () => {
    await store.createRoom(room('rt'), []);
    const [a, b, c] = [mk('rt', 1, 'c-a'), mk('rt', 2, 'c-b'), mk('rt', 3, null)];
    await store.commit([a, b, c], new Map([['rt', 3]]), [{ room: 'rt', user: 'u2', seq: 2, id: b.id, ifAbsent: false }]);
    expect(await store.retractTarget('rt', a.tsid)).toEqual({ fromId: 'u1', type: 'CHAT', deleted: false });
    expect(await store.retractTarget('other', a.tsid)).toBeNull();
    expect(await store.reads('rt')).toEqual([['u2', 2]]);
    const ev = (seq: number, type: 'DELETE' | 'EDIT', target: string, text: string, cid: string | null): NewMessage => ({ ...mk('rt', seq, cid), type, target, text });
    const e1 = ev(4, 'EDIT', b.id, 'second thoughts', 'c-e1');
    const e2 = ev(5, 'EDIT', b.id, 'third thoughts', 'c-e2');
    const d1 = ev(6, 'DELETE', a.id, '', null);
    await store.commit([e1], new Map([['rt', 4]]), []);
    await store.commit([e2, d1], new Map([['rt', 6]]), []);
    const page = await reader.page({ room: 'rt', limit: 10, notBefore: 0 });
    const bySeq = new Map(page.map((m) => [m.seq, m]));
    expect(bySeq.get(1)).toEqual({ id: a.id, room: 'rt', seq: 1, type: 'CHAT', from: { id: 'u1', name: 'User One' }, at: a.at, cid: 'c-a', deleted: true });
    expect(bySeq.get(2)).toMatchObject({ text: 'third thoughts', editedAt: e2.at });
    expect(bySeq.get(2)!.deleted).toBeUndefined();
    // The superseded edit's text is erased too; the newest one keeps it.
    expect(bySeq.get(4)).toMatchObject({ type: 'EDIT', target: b.id, deleted: true });
    expect(bySeq.get(4)!.text).toBeUndefined();
    expect(bySeq.get(5)).toMatchObject({ type: 'EDIT', target: b.id, text: 'third thoughts' });
    expect(bySeq.get(6)).toMatchObject({ type: 'DELETE', target: a.id });
    expect(bySeq.get(6)!.text).toBeUndefined();
    expect(await store.retractTarget('rt', a.tsid)).toMatchObject({ deleted: true });
    expect(await store.deleteEventOf(a.id)).toEqual({ room: 'rt', seq: 6, id: d1.id, at: d1.at });
    expect(await store.deleteEventOf(b.id)).toBeNull();
    // An edit is idempotent on its cid like a send.
    expect((await store.findByCids([['u1', 'c-e1']])).get(cidKey('u1', 'c-e1'))).toEqual({ room: 'rt', seq: 4, id: e1.id, at: e1.at });
    // Deleting an edited message erases its EDIT events as well.
    await store.commit([ev(7, 'DELETE', b.id, '', null)], new Map([['rt', 7]]), []);
    const after = await reader.range('rt', 1, 7);
    expect(after.filter((m) => m.text !== undefined).map((m) => m.seq)).toEqual([3]);
    await store.deleteRoom('rt');
  });

  it('retention erases the EDIT events of the messages it deletes', async () => {
    await store.createRoom(room('rx'), []);
    const old = mk('rx', 1, null, Date.now() - 3_600_000);
    const edit = { ...mk('rx', 2, null), type: 'EDIT' as const, target: old.id, text: 'edited, then expired' };
    await store.commit([old, edit], new Map([['rx', 2]]), []);
    expect(await store.purgeBefore(tsidToBigInt(edit.id), 1000)).toBeGreaterThanOrEqual(1);
    expect(await reader.range('rx', 1, 2)).toEqual([expect.objectContaining({ seq: 2, type: 'EDIT', deleted: true })]);
    expect((await reader.range('rx', 2, 2))[0].text).toBeUndefined();
    await store.deleteRoom('rx');
  });

  it('migrates a database from before retraction: its messages read as before, and can be deleted and edited', async () => {
    const olds = [mk('rr', 1, 'o-1'), mk('rr', 2, null)];
    const prev = await subject.openBeforeRetraction(olds);
    try {
      expect(await prev.version()).toBe(subjectName === 'sqlite' ? SCHEMA_VERSION : MYSQL_SCHEMA_VERSION);
      const page = await prev.reader.page({ room: 'rr', limit: 10, notBefore: 0 });
      expect(page.map((m) => m.text)).toEqual([olds[0].text, olds[1].text]);
      expect(page.every((m) => m.deleted === undefined && m.editedAt === undefined && m.target === undefined)).toBe(true);
      const d = { ...mk('rr', 3, null), type: 'DELETE' as const, target: olds[0].id, text: '' };
      const e = { ...mk('rr', 4, 'o-e'), type: 'EDIT' as const, target: olds[1].id, text: 'new' };
      await prev.store.commit([d, e], new Map([['rr', 4]]), []);
      const now = await prev.reader.page({ room: 'rr', limit: 10, notBefore: 0 });
      expect(now.slice(0, 2)).toEqual([expect.objectContaining({ seq: 1, deleted: true }), expect.objectContaining({ seq: 2, text: 'new', editedAt: e.at })]);
      expect(now[0].text).toBeUndefined();
    } finally {
      await prev.store.close();
      await prev.reader.close();
      await prev.drop();
    }
  });

  it('migrates a database of the previous schema version: its rooms count for nobody, its blocks stay, versions start', async () => {
    const prev = await subject.openPrevious({ rooms: [{ id: 'old-g', kind: 'group', members: ['o1', 'o2'] }, { id: 'old-p', kind: 'public', members: [] }], blocks: [['o1', 'o3']] });
    try {
      expect(await prev.store.getRoom('old-g')).toMatchObject({ kind: 'group', createdBy: null, deleted: false });
      expect(await prev.store.members('old-g')).toEqual(['o1', 'o2']);
      expect(await prev.store.allBlocks()).toEqual([['o1', 'o3']]);
      expect(await prev.store.blockCount('o1')).toBe(1);
      expect(await prev.store.dirVersion()).toBe(0);
      expect(await prev.reader.dirChanges(0, 10)).toEqual({ upTo: 0, rooms: [], blocks: [] });
      await prev.store.createRoom({ ...room('new-p'), createdBy: 'o1' }, []);
      expect(await prev.store.roomsCreatedBy('o1')).toBe(1);
      expect(await prev.store.setMembers('old-g', ['o2'], false)).toBe(1);
      expect((await prev.reader.dirChanges(0, 10)).rooms).toEqual([{ version: 1, room: 'old-g', info: expect.objectContaining({ members: ['o1'] }) }]);
      expect((await prev.reader.myRooms('o1', 0, ['o3'])).map((r) => r.info.id)).toEqual(['old-g']);
    } finally {
      await prev.store.close();
      await prev.reader.close();
      await prev.drop();
    }
  });

  it('survives a restart with the schema migrated once, and refuses a database newer than the code', async () => {
    const last = mk('r1', 1204, 'before-restart');
    await store.commit([last], new Map([['r1', 1204]]), []);
    await store.close();
    await reader.close();
    ({ store, reader } = await subject.reopen());
    expect((await store.getRoom('r1'))?.lastSeq).toBe(1204);
    // a retry after the restart is still recognized
    expect((await store.findByCids([['u1', 'before-restart']])).get(cidKey('u1', 'before-restart'))).toEqual({ room: 'r1', seq: 1204, id: last.id, at: last.at });
    await expect(subject.openTooNew()).rejects.toThrow(/newer|schema version 99/);
  });
});

describe('SQLite: the dedupe window (CHAT_DEDUPE_WINDOW)', () => {
  const WINDOW = 60_000;
  let clock = Date.UTC(2026, 11, 5, 12);
  let n = 0;
  const now = (): number => clock;
  // ids from the test's clock too: the window is rebuilt from the tsid range of its span
  const mk = (roomId: string, seq: number, cid: string | null): NewMessage => {
    const tsid = tsidFloor(clock) + BigInt(++n);
    return { tsid, id: tsidToString(tsid), room: roomId, seq, type: 'CHAT', fromId: 'u1', fromName: 'U', text: `w${seq}`, at: clock, cid, target: null };
  };
  const room = (id: string): RoomRow => ({ id, kind: 'public', name: null, subject: null, epoch: '0SECKC2TR016N', lastSeq: 0, createdAt: clock, dmKey: null, deleted: false, createdBy: null });
  const hit = (m: NewMessage): unknown => ({ room: m.room, seq: m.seq, id: m.id, at: m.at });
  const path = join(tempDir(), 'window.db');
  const open = (): SqliteStore => new SqliteStore(path, 'normal', WINDOW, now);

  it('recognizes a pair stored within the window, across a restart; an older one is stored again', async () => {
    let store = open();
    store.createRoom(room('w'), []);
    const first = mk('w', 1, 'k1');
    store.commit([first], new Map([['w', 1]]), []);
    clock += WINDOW - 1;
    expect(store.findByCids([['u1', 'k1']]).get(cidKey('u1', 'k1'))).toEqual(hit(first));
    store.close();
    store = open(); // rebuilt from the tail of the log
    expect(store.findByCids([['u1', 'k1']]).get(cidKey('u1', 'k1'))).toEqual(hit(first));
    // a second copy within the window is skipped by the store as well
    store.commit([mk('w', 2, 'k1')], new Map(), []);
    expect(store.latest('w', 10, 0).map((m) => m.seq)).toEqual([1]);

    clock += 2; // past the window: the retry is a new message
    expect(store.findByCids([['u1', 'k1']]).size).toBe(0);
    const again = mk('w', 2, 'k1');
    store.commit([again], new Map([['w', 2]]), []);
    expect(store.latest('w', 10, 0).map((m) => [m.seq, m.cid])).toEqual([[1, 'k1'], [2, 'k1']]);
    expect(store.findByCids([['u1', 'k1']]).get(cidKey('u1', 'k1'))).toEqual(hit(again));
    store.close();
    store = open();
    expect(store.findByCids([['u1', 'k1']]).get(cidKey('u1', 'k1'))).toEqual(hit(again));
    clock += WINDOW + 1;
    store.close();
    store = open(); // nothing of the window's span is left to rebuild
    expect(store.findByCids([['u1', 'k1']]).size).toBe(0);
    store.close();
  });

  it('frees the pair of a message deleted within the window', async () => {
    const store = open();
    store.createRoom(room('gone'), []);
    const m = mk('gone', 1, 'k2');
    store.commit([m], new Map([['gone', 1]]), []);
    expect(store.findByCids([['u1', 'k2']]).size).toBe(1);
    store.deleteRoom('gone');
    expect(store.findByCids([['u1', 'k2']]).size).toBe(0);
    store.createRoom(room('back'), []);
    const m2 = mk('back', 1, 'k2');
    store.commit([m2], new Map([['back', 1]]), []);
    expect(store.latest('back', 10, 0).map((x) => x.id)).toEqual([m2.id]);
    store.close();
  });

  it('migrates a schema-5 database: drops the unique (from_id, cid) index, keeps every row, finds its recent cids', async () => {
    const old = join(tempDir(), 'schema5.db');
    const db = new Database(old);
    migrate(db, 5);
    const olds = [mk('rr', 1, 'o-1'), mk('rr', 2, null), mk('rr', 3, 'o-3')];
    for (const [sql, params] of oldMessageRows(olds)) db.prepare(sql).run(...params);
    db.close();
    const reopened = new SqliteStore(old, 'normal', WINDOW, now);
    try {
      const check = new Database(old, { readonly: true });
      expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      expect(check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'").all().map((r) => (r as { name: string }).name).sort())
        .toEqual(['messages_room', 'messages_target']);
      check.close();
      expect(reopened.latest('rr', 10, 0).map((m) => [m.seq, m.id, m.text, m.cid])).toEqual(olds.map((m) => [m.seq, m.id, m.text, m.cid ?? undefined]));
      const found = reopened.findByCids([['u1', 'o-1'], ['u1', 'o-3'], ['u2', 'o-1']]);
      expect([...found.keys()].sort()).toEqual([cidKey('u1', 'o-1'), cidKey('u1', 'o-3')]);
      expect(found.get(cidKey('u1', 'o-3'))).toEqual(hit(olds[2]));
    } finally {
      reopened.close();
    }
  });
});
