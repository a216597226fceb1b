// The event outbox in each store (SQLite, and MySQL/MariaDB when there is one): rows written in
// the transaction of their cause and only then, delivery's reads and marks, the dead-letter list,
// replay, erasing a message's text from rows not delivered; the migration on an existing database;
// and in MySQL the leases that let exactly one cluster node deliver a room.

import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdGenerator } from '../workers/ids.ts';
import { Assigner } from '../workers/persistence/assign.ts';
import { blockEvent, eventJson, memberEvents, roomCreated, type EventStore } from '../workers/stores/events.ts';
import { insertEventsOnce } from '../workers/stores/mysql/events.ts';
import { migrateMysql, MYSQL_SCHEMA_VERSION } from '../workers/stores/mysql/migrations.ts';
import { MysqlStore } from '../workers/stores/mysql/store.ts';
import { migrate, SCHEMA_VERSION } from '../workers/stores/sqlite/migrations.ts';
import { SqliteStore } from '../workers/stores/sqlite/store.ts';
import { DuplicateCidError, type DirectoryStore, type MessageStore, type NewMessage, type RoomRow } from '../workers/stores/store.ts';
import { tempDir } from './support/engine.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

type Store = MessageStore & DirectoryStore & { events: EventStore };

const HAVE_MYSQL = await mysqlAvailable();
const ids = new IdGenerator(3);
const room = (id: string, kind: RoomRow['kind'] = 'group'): RoomRow => ({ id, kind, name: null, subject: null, epoch: ids.next().id, lastSeq: 0, createdAt: 1000, dmKey: null, deleted: false, createdBy: null });

interface Subject {
  open(): Promise<Store>;
  /** A database of the schema before the outbox holding one room and one message, opened (migrated) by the store. */
  openPrevious(): Promise<Store>;
  done(): Promise<void>;
}

const subjects: [string, () => Subject][] = [['sqlite', () => {
  const path = join(tempDir(), 'events.db');
  return {
    open: async () => new SqliteStore(path, 'normal'),
    openPrevious: async () => {
      const old = join(tempDir(), 'old.db');
      const db = new Database(old);
      migrate(db, SCHEMA_VERSION - 1);
      db.prepare("INSERT INTO rooms (id, kind, epoch, last_seq, created_at) VALUES ('old', 'group', 'E', 1, 1)").run();
      db.prepare("INSERT INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at) VALUES (1, '0000000000001', 'old', 1, 'CHAT', 'u', 'U', 'kept', 1)").run();
      db.close();
      return new SqliteStore(old, 'normal');
    },
    done: async () => {},
  };
}]];
if (HAVE_MYSQL) subjects.push(['mysql', () => {
  const dbs: Awaited<ReturnType<typeof freshDatabase>>[] = [];
  return {
    open: async () => {
      const db = await freshDatabase();
      dbs.push(db);
      return MysqlStore.open(db.url);
    },
    openPrevious: async () => {
      const db = await freshDatabase();
      dbs.push(db);
      const c = await mysql.createConnection({ uri: db.url });
      await migrateMysql(c, MYSQL_SCHEMA_VERSION - 1);
      await c.query("INSERT INTO rooms (id, kind, epoch, last_seq, created_at) VALUES ('old', 'group', 'E', 1, 1)");
      await c.query("INSERT INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at) VALUES (1, '0000000000001', 'old', 1, 'CHAT', 'u', 'U', 'kept', 1)");
      await c.end();
      return MysqlStore.open(db.url);
    },
    done: async () => { for (const d of dbs) await d.drop(); },
  };
}]);

describe.each(subjects)('event outbox: %s', (_name, make) => {
  const subject = make();
  let store: Store;
  const stores: Store[] = [];
  let seq = 0;
  const msg = (r: string, text: string, recipients: string[] | null, cid: string | null = null): NewMessage => {
    const { id, tsid } = ids.next();
    return { tsid, id, room: r, seq: ++seq, type: 'CHAT', fromId: 'ann', fromName: 'Ann', text, at: 2000, cid, target: null, event: recipients === null ? null : { recipients, dead: false } };
  };
  const all = async (): Promise<{ id: number; type: string; room: string; state: string; body: string }[]> => store.events.listEvents({ from: 0, state: null, limit: 1000 });

  beforeAll(async () => {
    store = await subject.open();
    stores.push(store);
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
    await subject.done();
  });

  it('writes each event with its cause, and a message without an event spec writes none', async () => {
    const g = room('g');
    await store.createRoom(g, ['ann', 'ben'], [roomCreated(g, ['ann', 'ben'], 1000, false)]);
    const m1 = msg('g', 'hello', ['ben']);
    await store.commit([m1, msg('g', 'no event', null)], new Map([['g', seq]]), []);
    await store.setMembers('g', ['cleo'], true, memberEvents('g', ['cleo'], true, 3000, () => false));
    await store.setBlock('ann', 'ben', true, [blockEvent('ann', 'ben', true, 4000, false)]);
    const rows = await all();
    expect(rows.map((r) => [r.type, r.room, r.state])).toEqual([
      ['room.created', 'g', 'pending'], ['message.created', 'g', 'pending'], ['member.added', 'g', 'pending'], ['user.blocked', '', 'pending'],
    ]);
    const e = JSON.parse(eventJson({ ...rows[1], at: 2000 } as never)) as Record<string, unknown>;
    expect(e).toEqual({ id: String(rows[1].id), type: 'message.created', at: 2000, room: 'g', recipients: ['ben'], message: { id: m1.id, room: 'g', seq: m1.seq, type: 'CHAT', from: { id: 'ann', name: 'Ann' }, text: 'hello', at: 2000 } });
    expect(JSON.parse(eventJson({ ...rows[3], at: 4000 } as never))).toMatchObject({ room: null, blocker: 'ann', blocked: 'ben' });
  });

  it('serves each due room a prefix of its pending events, retries with attempts, dead-letters past the maximum, replays', async () => {
    const ev = store.events;
    const now = 10_000;
    const due = await ev.dueRooms(now, 100);
    expect(due.rooms).toEqual(['g', '']);
    const batch = await ev.pendingOf(['g'], 2);
    expect(batch.map((e) => e.type)).toEqual(['room.created', 'message.created']);
    await ev.delivered([batch[0].id], now);
    // Two failures of the room's head, maximum 2 attempts: the second dead-letters it.
    expect(await ev.failed([batch[1].id], 'HTTP 503', now + 500, 2, now)).toBe(0);
    const later = await ev.dueRooms(now, 100);
    expect(later).toEqual({ rooms: [''], nextAt: now + 500 }); // g waits for its head's retry
    expect(await ev.failed([batch[1].id], 'HTTP 503', now + 1500, 2, now + 500)).toBe(1);
    const dead = await ev.listEvents({ from: 0, state: 'dead', limit: 10 });
    expect(dead.map((e) => [e.id, e.attempts, e.error])).toEqual([[batch[1].id, 2, 'HTTP 503']]);
    expect((await ev.pendingOf(['g'], 10)).map((e) => e.type)).toEqual(['member.added']);
    await ev.deadLetter([(await ev.pendingOf([''], 1))[0].id], 'HTTP 400', now);
    expect(await ev.pendingCount()).toBe(1);
    // Replay from an id: delivered and dead events from it go back to pending.
    expect(await ev.replay({ from: batch[1].id })).toBe(2);
    expect(await ev.pendingCount()).toBe(3);
    expect(await ev.replay({ ids: [batch[0].id] })).toBe(1);
    expect((await ev.pendingOf(['g'], 10)).map((e) => [e.type, e.attempts])).toEqual([['room.created', 0], ['message.created', 0], ['member.added', 0]]);
  });

  it('erases a message text from rows not delivered, and purges done rows past the keep time', async () => {
    const ev = store.events;
    const m = msg('g', 'secret', ['ben']);
    await store.commit([m], new Map([['g', m.seq]]), []);
    expect(await ev.eraseText(m.id)).toBe(1);
    const row = (await ev.listEvents({ from: 0, state: 'pending', limit: 100 })).find((e) => e.body.includes(m.id))!;
    expect(JSON.parse(row.body).message.text).toBe('');
    const delivered = (await ev.pendingOf(['g'], 100)).map((e) => e.id);
    await ev.delivered(delivered, 50_000);
    expect(await ev.eraseText(m.id)).toBe(0); // delivered: the receiver has it already
    expect(await ev.purgeEvents(50_001, 1000)).toBe(delivered.length);
    expect(await ev.purgeEvents(50_001, 1000)).toBe(0);
  });

  it('migrates a database of the previous schema: its data stays, the outbox works', async () => {
    const old = await subject.openPrevious();
    stores.push(old);
    expect((await old.latest('old', 10, 0)).map((m) => m.text)).toEqual(['kept']);
    await old.deleteRoom('old', [{ room: 'old', type: 'room.deleted', at: 1, messageId: null, body: '{}', dead: false }]);
    expect((await old.events.listEvents({ from: 0, state: null, limit: 10 })).map((e) => e.type)).toEqual(['room.deleted']);
  });
});

describe.runIf(HAVE_MYSQL)('event outbox in a cluster (MySQL)', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let a: MysqlStore;
  let b: MysqlStore;
  const m = (r: string, from: string, cid: string | null): NewMessage =>
    ({ tsid: 0n, id: '', room: r, seq: 0, type: 'CHAT', fromId: from, fromName: from, text: `hi ${cid}`, at: Date.now(), cid, target: null, event: { recipients: ['x'], dead: false } });

  beforeAll(async () => {
    db = await freshDatabase();
    a = await MysqlStore.open(db.url);
    b = await MysqlStore.open(db.url);
    for (const r of ['c1', 'c2']) await a.createRoom(room(r, 'public'), []);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  it("the cluster commit writes its messages' events with their assigned ids, and none when it is refused", async () => {
    await a.commitAssign([m('c1', 'u1', 'k1'), m('c2', 'u1', 'k2')], [], new Assigner(new IdGenerator(1)).underLock);
    // Another node stored (u1, k1) first: that whole transaction is refused, its events too.
    await expect(b.commitAssign([m('c2', 'u2', 'k3'), m('c1', 'u1', 'k1')], [], new Assigner(new IdGenerator(2)).underLock)).rejects.toBeInstanceOf(DuplicateCidError);
    const rows = await a.events.listEvents({ from: 0, state: null, limit: 10 });
    expect(rows.map((e) => JSON.parse(e.body).message.text)).toEqual(['hi k1', 'hi k2']);
    expect(rows.map((e) => JSON.parse(e.body).message.seq)).toEqual([1, 1]);
  });

  it('a commit that may repeat one of unknown outcome writes a message event only once', async () => {
    const e = { room: 'c1', type: 'message.created' as const, at: 7, messageId: '0000000000ABC', body: '{}', dead: false };
    const c = await mysql.createConnection({ uri: db.url });
    try {
      for (let i = 0; i < 2; i++) for (const q of insertEventsOnce([e], 7)) await c.query(q);
      const [rows] = await c.query<mysql.RowDataPacket[]>("SELECT COUNT(*) AS n FROM webhook_events WHERE message_id = '0000000000ABC'");
      expect(Number(rows[0].n)).toBe(1);
    } finally {
      await c.end();
    }
  });

  it('a room is leased by one node at a time; an expired lease goes to another', async () => {
    const now = Date.now();
    expect(await a.events.leaseRooms(1, ['c1', 'c2'], now, now + 30_000)).toEqual(['c1', 'c2']);
    expect(await b.events.leaseRooms(2, ['c1', 'c2'], now, now + 30_000)).toEqual([]);
    expect(await a.events.leaseRooms(1, ['c1'], now + 1000, now + 31_000)).toEqual(['c1']); // renewed
    // Past c2's lease node 2 takes it; c1 was renewed and stays node 1's.
    expect(await b.events.leaseRooms(2, ['c1', 'c2'], now + 30_001, now + 60_000)).toEqual(['c2']);
    expect(await a.events.leaseRooms(1, ['c2'], now + 30_002, now + 60_000)).toEqual([]);
  });
});
