// MySQL/MariaDB (mysql2) implementation of MessageStore, DirectoryStore and MessageReader.
// The actor owns one write connection (every transaction goes through it, one at a time) and a
// small pool for its lookups; readers on the front thread use their own pool. Group commit is one
// transaction per batch with multi-row INSERTs. A connection that dies is replaced on the next use,
// so the actor's retry with backoff is also the reconnect.

import mysql from 'mysql2/promise';
import type { Message, MyRoom, RoomInfo } from './contract.ts';
import { MESSAGE_COLS, ROOM_COLS, roomInfo, toMessage, toRoomRow, type MessageRow, type RoomDbRow } from './rows.ts';
import { DuplicateCidError, type CidHit, type ClusterStore, type DirectoryStore, type MarkerWrite, type MessageReader, type MessageStore, type NewMessage, type PageQuery, type RoomRow } from './store.ts';

/**
 * A read marker only moves forward, as in SQLite. Correct whether the server evaluates the
 * assignments left to right (MySQL, MariaDB by default: `seq` in the second one is already the
 * maximum) or all against the old row (MariaDB's SIMULTANEOUS_ASSIGNMENT).
 */
const MARK_FORWARD = 'ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq)), id = IF(VALUES(seq) >= seq, VALUES(id), id)';

const TABLE_OPTS = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin';

type Migration = (c: mysql.Connection) => Promise<void>;

async function columnExists(c: mysql.Connection, table: string, column: string): Promise<boolean> {
  const [rows] = await c.query<mysql.RowDataPacket[]>(
    'SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?', [table, column]);
  return rows.length > 0;
}

async function indexExists(c: mysql.Connection, table: string, index: string): Promise<boolean> {
  const [rows] = await c.query<mysql.RowDataPacket[]>(
    'SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?', [table, index]);
  return rows.length > 0;
}

/**
 * Each entry upgrades the schema from version i to i+1. DDL is not transactional in MySQL, so each
 * step checks before it changes (safe to re-run after a crash half-way), and the version is bumped
 * after. Written for both MySQL 8 and MariaDB (no ADD COLUMN IF NOT EXISTS, which MySQL lacks).
 */
const MIGRATIONS: Migration[] = [
  async (c) => {
    await c.query(`CREATE TABLE IF NOT EXISTS rooms (
       id VARCHAR(64) NOT NULL PRIMARY KEY,
       kind VARCHAR(8) NOT NULL,
       name VARCHAR(128) NULL,
       subject VARCHAR(128) NULL,
       epoch CHAR(13) NOT NULL,
       last_seq BIGINT NOT NULL,
       created_at BIGINT NOT NULL,
       KEY rooms_subject (subject)
     ) ${TABLE_OPTS}`);
    // tsid is the message id as an integer and the primary key: time order is key order, so
    // retention deletes a key range; (room, tsid) serves every history cursor.
    await c.query(`CREATE TABLE IF NOT EXISTS messages (
       tsid BIGINT NOT NULL PRIMARY KEY,
       id CHAR(13) NOT NULL,
       room VARCHAR(64) NOT NULL,
       seq BIGINT NOT NULL,
       type VARCHAR(8) NOT NULL,
       from_id VARCHAR(64) NOT NULL,
       from_name VARCHAR(64) NOT NULL,
       text MEDIUMTEXT NOT NULL,
       at BIGINT NOT NULL,
       cid VARCHAR(128) NULL,
       KEY messages_room (room, tsid),
       UNIQUE KEY messages_sender_cid (from_id, cid)
     ) ${TABLE_OPTS}`);
  },
  async (c) => {
    if (!(await columnExists(c, 'rooms', 'dm_key'))) await c.query('ALTER TABLE rooms ADD COLUMN dm_key VARCHAR(300) NULL');
    if (!(await columnExists(c, 'rooms', 'deleted'))) await c.query('ALTER TABLE rooms ADD COLUMN deleted TINYINT NOT NULL DEFAULT 0');
    if (!(await indexExists(c, 'rooms', 'rooms_dm'))) await c.query('CREATE UNIQUE INDEX rooms_dm ON rooms (dm_key)');
    await c.query(`CREATE TABLE IF NOT EXISTS members (room VARCHAR(64) NOT NULL, user VARCHAR(64) NOT NULL, PRIMARY KEY (room, user), KEY members_user (user)) ${TABLE_OPTS}`);
    await c.query(`CREATE TABLE IF NOT EXISTS read_markers (room VARCHAR(64) NOT NULL, user VARCHAR(64) NOT NULL, seq BIGINT NOT NULL, id CHAR(13) NOT NULL, PRIMARY KEY (room, user), KEY read_markers_user (user)) ${TABLE_OPTS}`);
    await c.query(`CREATE TABLE IF NOT EXISTS blocks (blocker VARCHAR(64) NOT NULL, blocked VARCHAR(64) NOT NULL, PRIMARY KEY (blocker, blocked)) ${TABLE_OPTS}`);
  },
  // 3: clusters. A room's newest id (so a node's ids stay above it, in seq order), and (room, seq)
  // unique: the database itself refuses a seq handed out twice, whatever a node believes.
  async (c) => {
    if (!(await columnExists(c, 'rooms', 'last_tsid'))) {
      await c.query('ALTER TABLE rooms ADD COLUMN last_tsid BIGINT NOT NULL DEFAULT 0');
      await c.query('UPDATE rooms r SET last_tsid = COALESCE((SELECT MAX(m.tsid) FROM messages m WHERE m.room = r.id), 0)');
    }
    if (!(await indexExists(c, 'messages', 'messages_room_seq'))) await c.query('CREATE UNIQUE INDEX messages_room_seq ON messages (room, seq)');
  },
  // 4: exact (sender, cid) comparison. utf8mb4_bin is PAD SPACE: "x" and "x " compare equal, so a
  // cid that differs only by trailing spaces collided with another in the unique key. A NO PAD
  // binary collation compares every byte (MariaDB: utf8mb4_nopad_bin; MySQL 8: utf8mb4_0900_bin).
  async (c) => {
    const [rows] = await c.query<mysql.RowDataPacket[]>("SHOW COLLATION WHERE Collation IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')");
    const names = rows.map((r) => r.Collation as string);
    const nopad = names.includes('utf8mb4_nopad_bin') ? 'utf8mb4_nopad_bin' : names.includes('utf8mb4_0900_bin') ? 'utf8mb4_0900_bin' : null;
    if (nopad === null) throw new Error('this MySQL/MariaDB has no NO PAD binary collation (needs MariaDB >= 10.2 or MySQL >= 8.0)');
    const [cols] = await c.query<mysql.RowDataPacket[]>(
      "SELECT COLUMN_NAME AS name, COLLATION_NAME AS coll FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'messages' AND column_name IN ('from_id', 'cid')");
    if (cols.every((r) => r.coll === nopad)) return;
    const alter = `ALTER TABLE messages MODIFY from_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE ${nopad} NOT NULL, MODIFY cid VARCHAR(128) CHARACTER SET utf8mb4 COLLATE ${nopad} NULL`;
    // Online where the server can (MariaDB >= 10.3, MySQL 8): the index is rebuilt in place and
    // other nodes keep writing messages meanwhile. Elsewhere the server copies the table, and
    // writes wait until it is done.
    try {
      await c.query(`${alter}, ALGORITHM=INPLACE, LOCK=NONE`);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'ER_ALTER_OPERATION_NOT_SUPPORTED' && code !== 'ER_ALTER_OPERATION_NOT_SUPPORTED_REASON') throw err;
      await c.query(alter);
    }
  },
];

export const MYSQL_SCHEMA_VERSION = MIGRATIONS.length;

/** Rows per multi-row INSERT statement (bounded packet size). */
const INSERT_CHUNK = 500;

function connOptions(url: string): mysql.ConnectionOptions {
  return {
    uri: url,
    supportBigNumbers: true,
    bigNumberStrings: false,
    charset: 'utf8mb4_bin',
    connectTimeout: 3000,
    // BIGINT columns other than tsid (seq, at, last_seq) fit a double; tsid is never read back.
    typeCast: true,
  };
}

export async function migrateMysql(conn: mysql.Connection): Promise<void> {
  // Several nodes of a cluster may start at once on a new database: one migrates, the others wait
  // for it (a named lock of this connection's session), then find the schema current.
  const [locked] = await conn.query<mysql.RowDataPacket[]>("SELECT GET_LOCK(CONCAT(DATABASE(), '.chat_migrate'), 60) AS ok");
  if (Number(locked[0].ok) !== 1) throw new Error('another engine has been migrating this database for 60 s; is it stuck?');
  try {
    await migrateLocked(conn);
  } finally {
    await conn.query("SELECT RELEASE_LOCK(CONCAT(DATABASE(), '.chat_migrate'))");
  }
}

async function migrateLocked(conn: mysql.Connection): Promise<void> {
  await conn.query(`CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL) ${TABLE_OPTS}`);
  const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT version FROM schema_version');
  if (rows.length === 0) await conn.query('INSERT INTO schema_version (version) VALUES (0)');
  const current = rows.length === 0 ? 0 : Number(rows[0].version);
  if (current > MYSQL_SCHEMA_VERSION) {
    throw new Error(`the database is at schema version ${current} but this engine knows only up to ${MYSQL_SCHEMA_VERSION}; run a newer engine or restore a backup`);
  }
  for (let v = current; v < MYSQL_SCHEMA_VERSION; v++) {
    await MIGRATIONS[v](conn);
    await conn.query('UPDATE schema_version SET version = ?', [v + 1]);
  }
}

type RoomPacket = RoomDbRow & mysql.RowDataPacket;
type MessagePacket = MessageRow & mysql.RowDataPacket;

/** MySQL error codes the cluster commit handles itself. */
const ER_DUP_ENTRY = 'ER_DUP_ENTRY';

/** Multi-row INSERTs of messages, in chunks (bounded packet size). */
function insertMessages(msgs: NewMessage[], ignore: boolean): string[] {
  const parts: string[] = [];
  for (let i = 0; i < msgs.length; i += INSERT_CHUNK) {
    const rows = msgs.slice(i, i + INSERT_CHUNK).map((m) => [m.tsid, m.id, m.room, m.seq, m.type, m.fromId, m.fromName, m.text, m.at, m.cid]);
    parts.push(mysql.format(`INSERT${ignore ? ' IGNORE' : ''} INTO messages (tsid, id, room, seq, type, from_id, from_name, text, at, cid) VALUES ?`, [rows]));
  }
  return parts;
}

/**
 * Advance the rooms of `lastSeqs` to those seqs, and each room's last_tsid to its newest id in
 * `msgs` (never backwards).
 */
function advanceRooms(lastSeqs: Map<string, number>, msgs: NewMessage[]): string {
  const lastTsid = new Map<string, bigint>();
  for (const m of msgs) lastTsid.set(m.room, m.tsid);
  const seqs = [...lastSeqs].map(([room, seq]) => mysql.format('WHEN ? THEN GREATEST(last_seq, ?)', [room, seq])).join(' ');
  const tsids = [...lastTsid].map(([room, t]) => mysql.format('WHEN ? THEN GREATEST(last_tsid, ?)', [room, t])).join(' ');
  return mysql.format(`UPDATE rooms SET last_seq = CASE id ${seqs} ELSE last_seq END${tsids ? `, last_tsid = CASE id ${tsids} ELSE last_tsid END` : ''} WHERE id IN (?)`, [[...lastSeqs.keys()]]);
}

export class MysqlStore implements MessageStore, DirectoryStore, ClusterStore {
  private conn: mysql.Connection | null = null;
  /** Serializes use of the write connection: one statement or transaction at a time. */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly lookups: mysql.Pool;

  private constructor(private readonly url: string, private readonly idleTxTimeoutS: number) {
    this.lookups = mysql.createPool({ ...connOptions(url), connectionLimit: 2, enableKeepAlive: true });
  }

  /** The write connection sends a group commit as one multi-statement query. */
  private static writeOptions(url: string): mysql.ConnectionOptions {
    return { ...connOptions(url), multipleStatements: true };
  }

  /**
   * `idleTxTimeoutS`: the server ends this connection's transaction (and the connection) when it
   * sits idle inside a write transaction this long, so a node that freezes between the two round
   * trips of a cluster commit does not hold its rooms' row locks until innodb_lock_wait_timeout
   * (MariaDB's idle_transaction_timeout; MySQL has no such setting, and keeps the old
   * behaviour). 0: off.
   */
  static async open(url: string, idleTxTimeoutS = 0): Promise<MysqlStore> {
    const s = new MysqlStore(url, idleTxTimeoutS);
    await s.write((c) => migrateMysql(c));
    return s;
  }

  private async connect(): Promise<mysql.Connection> {
    const c = await mysql.createConnection(MysqlStore.writeOptions(this.url));
    if (this.idleTxTimeoutS > 0) {
      try {
        await c.query('SET SESSION idle_transaction_timeout = ?', [this.idleTxTimeoutS]);
      } catch (err) {
        if ((err as { code?: string }).code !== 'ER_UNKNOWN_SYSTEM_VARIABLE') {
          c.destroy();
          throw err;
        }
      }
    }
    return c;
  }

  /** Run `fn` on the write connection, after everything queued before it; reconnect if needed. */
  private write<T>(fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.conn === null) this.conn = await this.connect();
      const c = this.conn;
      try {
        return await fn(c);
      } catch (err) {
        // A dead or broken connection is dropped; the next write opens a new one.
        if ((err as { fatal?: boolean }).fatal || (err as { code?: string }).code === 'ECONNREFUSED') {
          c.destroy();
          if (this.conn === c) this.conn = null;
        }
        throw err;
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private tx<T>(fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
    return this.write(async (c) => {
      await c.beginTransaction();
      try {
        const out = await fn(c);
        await c.commit();
        return out;
      } catch (err) {
        await c.rollback().catch(() => undefined);
        throw err;
      }
    });
  }

  async findByCids(keys: [string, string][]): Promise<Map<string, CidHit>> {
    const out = new Map<string, CidHit>();
    for (let i = 0; i < keys.length; i += INSERT_CHUNK) {
      const chunk = keys.slice(i, i + INSERT_CHUNK);
      const [rows] = await this.lookups.query<(mysql.RowDataPacket & CidHit & { from_id: string; cid: string })[]>(
        'SELECT from_id, cid, room, seq, id, at FROM messages WHERE (from_id, cid) IN (?)', [chunk]);
      for (const r of rows) out.set(r.from_id + '\0' + r.cid, { room: r.room, seq: Number(r.seq), id: r.id, at: Number(r.at) });
    }
    return out;
  }

  /**
   * One round trip per group commit: the whole transaction goes as one multi-statement query
   * (values escaped by mysql2's formatter, never concatenated). On any error it is rolled back.
   */
  commit(msgs: NewMessage[], lastSeqs: Map<string, number>, marks: MarkerWrite[]): Promise<void> {
    // IGNORE: a commit repeated after an unknown outcome (the connection died after COMMIT was
    // sent) skips rows already there. Conflicting cids never reach here: the actor dedupes first.
    const parts: string[] = ['START TRANSACTION', ...insertMessages(msgs, true)];
    if (lastSeqs.size > 0) parts.push(advanceRooms(lastSeqs, msgs));
    const upserts = marks.filter((k) => !k.ifAbsent).map((k) => [k.room, k.user, k.seq, k.id]);
    const firsts = marks.filter((k) => k.ifAbsent).map((k) => [k.room, k.user, k.seq, k.id]);
    if (upserts.length > 0) parts.push(mysql.format(`INSERT INTO read_markers (room, user, seq, id) VALUES ? ${MARK_FORWARD}`, [upserts]));
    if (firsts.length > 0) parts.push(mysql.format('INSERT IGNORE INTO read_markers (room, user, seq, id) VALUES ?', [firsts]));
    parts.push('COMMIT');
    return this.write(async (c) => {
      try {
        await c.query(parts.join(';\n'));
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  /**
   * The cluster's group commit, two round trips: lock the batch's rooms and read their last seq and
   * id; assign; then insert, advance the rooms, move markers and commit. The lock is held for one
   * round trip, and only by commits that touch the same rooms.
   */
  commitAssign(msgs: NewMessage[], marks: MarkerWrite[], next: (floor: bigint) => { id: string; tsid: bigint }): Promise<Set<string>> {
    return this.write(async (c) => {
      // A repeat after an unknown outcome: that batch's messages kept their ids; those stored are
      // done (answered with the ids they have), the rest, and what was accepted since (seq 0), are
      // committed now in a new transaction, with the marks.
      let todo = msgs;
      const kept = msgs.filter((m) => m.seq > 0);
      if (kept.length > 0) {
        const [rows] = await c.query<(mysql.RowDataPacket & { tsid: string | number })[]>('SELECT tsid FROM messages WHERE tsid IN (?)', [kept.map((m) => m.tsid)]);
        const there = new Set(rows.map((r) => BigInt(r.tsid)));
        todo = msgs.filter((m) => m.seq === 0 || !there.has(m.tsid));
        for (const m of todo) m.seq = 0;
      }
      const rooms = [...new Set([...todo.map((m) => m.room), ...marks.filter((k) => k.seq < 0).map((k) => k.room)])].sort();
      let commitSent = false;
      try {
        const state = new Map<string, { seq: number; tsid: bigint }>();
        if (rooms.length > 0) {
          const [res] = await c.query(
            mysql.format('START TRANSACTION; SELECT id, last_seq, last_tsid FROM rooms WHERE id IN (?) AND deleted = 0 ORDER BY id FOR UPDATE', [rooms]));
          const locked = (res as unknown[])[1] as (mysql.RowDataPacket & { id: string; last_seq: number; last_tsid: string | number })[];
          for (const r of locked) state.set(r.id, { seq: Number(r.last_seq), tsid: BigInt(r.last_tsid) });
        } else {
          await c.query('START TRANSACTION');
        }
        const missing = new Set<string>();
        const stored: NewMessage[] = [];
        for (const m of todo) {
          const st = state.get(m.room);
          if (st === undefined) {
            missing.add(m.room);
            continue;
          }
          const { id, tsid } = next(st.tsid);
          m.id = id;
          m.tsid = tsid;
          m.seq = ++st.seq;
          st.tsid = tsid;
          stored.push(m);
        }
        // No IGNORE: a (sender, cid) another node stored first must fail the batch (DuplicateCidError).
        const parts = insertMessages(stored, false);
        if (stored.length > 0) parts.push(advanceRooms(new Map(stored.map((m) => [m.room, m.seq])), stored));
        for (const mark of marks) {
          const k = { ...mark }; // resolved here, not in place: a retry resolves again
          if (k.seq < 0) {
            const st = state.get(k.room);
            if (st === undefined) continue;
            k.seq = st.seq;
            k.id = '';
            for (const m of stored) if (m.room === k.room) k.id = m.id;
            if (k.id === '') continue; // nothing of ours in the room in this batch: no position to name
          }
          parts.push(mysql.format(k.ifAbsent
            ? 'INSERT IGNORE INTO read_markers (room, user, seq, id) VALUES (?, ?, ?, ?)'
            : `INSERT INTO read_markers (room, user, seq, id) VALUES (?, ?, ?, ?) ${MARK_FORWARD}`,
          [k.room, k.user, k.seq, k.id]));
        }
        parts.push('COMMIT');
        commitSent = true;
        await c.query(parts.join(';\n'));
        return missing;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        // The COMMIT went out and the connection broke before its answer: it may have committed.
        // Keep the assignment, so the retry recognizes the batch by its first id instead of storing
        // it again under new seqs. Any other failure rolled back for sure: assign afresh.
        const code = (err as { code?: string }).code;
        const unknownOutcome = commitSent && ((err as { fatal?: boolean }).fatal === true || code === 'ECONNRESET' || code === 'PROTOCOL_CONNECTION_LOST' || code === 'EPIPE');
        if (!unknownOutcome) for (const m of todo) m.seq = 0;
        if ((err as { code?: string }).code === ER_DUP_ENTRY && /messages_sender_cid/.test((err as Error).message)) throw new DuplicateCidError((err as Error).message);
        throw err;
      }
    });
  }

  async latest(room: string, limit: number, notBefore: number): Promise<Message[]> {
    const [rows] = await this.lookups.query<MessagePacket[]>(`SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND at >= ? ORDER BY tsid DESC LIMIT ?`, [room, notBefore, limit]);
    return rows.reverse().map(toMessage);
  }

  purgeBefore(cutoff: bigint, max: number): Promise<number> {
    // Small batches by primary-key range: short locks, off the hot path.
    return this.write(async (c) => {
      const [r] = await c.query<mysql.ResultSetHeader>('DELETE FROM messages WHERE tsid < ? ORDER BY tsid LIMIT ?', [cutoff, max]);
      return r.affectedRows;
    });
  }

  async getRoom(id: string): Promise<RoomRow | null> {
    const [rows] = await this.lookups.query<RoomPacket[]>(`SELECT ${ROOM_COLS} FROM rooms WHERE id = ?`, [id]);
    return rows.length > 0 ? toRoomRow(rows[0]) : null;
  }

  async findDirect(dmKey: string): Promise<RoomRow | null> {
    const [rows] = await this.lookups.query<RoomPacket[]>(`SELECT ${ROOM_COLS} FROM rooms WHERE dm_key = ?`, [dmKey]);
    return rows.length > 0 ? toRoomRow(rows[0]) : null;
  }

  createRoom(row: RoomRow, members: string[]): Promise<void> {
    return this.tx(async (c) => {
      await c.query('INSERT INTO rooms (id, kind, name, subject, epoch, last_seq, created_at, dm_key, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)',
        [row.id, row.kind, row.name, row.subject, row.epoch, row.lastSeq, row.createdAt, row.dmKey]);
      if (members.length > 0) await c.query('INSERT IGNORE INTO members (room, user) VALUES ?', [members.map((u) => [row.id, u])]);
    });
  }

  deleteRoom(id: string): Promise<void> {
    return this.tx(async (c) => {
      await c.query('DELETE FROM messages WHERE room = ?', [id]);
      await c.query('DELETE FROM members WHERE room = ?', [id]);
      await c.query('DELETE FROM read_markers WHERE room = ?', [id]);
      await c.query('UPDATE rooms SET deleted = 1, dm_key = NULL WHERE id = ?', [id]);
    });
  }

  async members(room: string): Promise<string[]> {
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & { user: string })[]>('SELECT user FROM members WHERE room = ? ORDER BY user', [room]);
    return rows.map((r) => r.user);
  }

  setMembers(room: string, users: string[], present: boolean): Promise<void> {
    return this.tx(async (c) => {
      if (users.length === 0) return;
      if (present) await c.query('INSERT IGNORE INTO members (room, user) VALUES ?', [users.map((u) => [room, u])]);
      else await c.query('DELETE FROM members WHERE room = ? AND user IN (?)', [room, users]);
    });
  }

  setBlock(blocker: string, blocked: string, on: boolean): Promise<void> {
    return this.write(async (c) => {
      if (on) await c.query('INSERT IGNORE INTO blocks (blocker, blocked) VALUES (?, ?)', [blocker, blocked]);
      else await c.query('DELETE FROM blocks WHERE blocker = ? AND blocked = ?', [blocker, blocked]);
    });
  }

  async allBlocks(): Promise<[string, string][]> {
    const [rows] = await this.lookups.query<(mysql.RowDataPacket & { blocker: string; blocked: string })[]>('SELECT blocker, blocked FROM blocks');
    return rows.map((r) => [r.blocker, r.blocked]);
  }

  async close(): Promise<void> {
    await this.chain;
    await this.conn?.end().catch(() => undefined);
    await this.lookups.end().catch(() => undefined);
  }
}

export class MysqlReader implements MessageReader {
  private readonly pool: mysql.Pool;

  constructor(url: string, connections: number) {
    this.pool = mysql.createPool({ ...connOptions(url), connectionLimit: connections, enableKeepAlive: true });
  }

  async page(q: PageQuery): Promise<Message[]> {
    const n = q.limit + 1;
    if (q.after !== undefined) {
      const [rows] = await this.pool.query<MessagePacket[]>(`SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND tsid > ? AND at >= ? ORDER BY tsid ASC LIMIT ?`, [q.room, q.after, q.notBefore, n]);
      return rows.map(toMessage);
    }
    const [rows] = q.before !== undefined
      ? await this.pool.query<MessagePacket[]>(`SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND tsid < ? AND at >= ? ORDER BY tsid DESC LIMIT ?`, [q.room, q.before, q.notBefore, n])
      : await this.pool.query<MessagePacket[]>(`SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND at >= ? ORDER BY tsid DESC LIMIT ?`, [q.room, q.notBefore, n]);
    return rows.reverse().map(toMessage);
  }

  async seqOf(room: string, id: bigint): Promise<number | null> {
    const [rows] = await this.pool.query<(mysql.RowDataPacket & { seq: number })[]>('SELECT seq FROM messages WHERE room = ? AND tsid = ?', [room, id]);
    return rows.length > 0 ? Number(rows[0].seq) : null;
  }

  async seqAt(room: string, id: bigint): Promise<number> {
    const [rows] = await this.pool.query<(mysql.RowDataPacket & { seq: number })[]>('SELECT seq FROM messages WHERE room = ? AND tsid <= ? ORDER BY tsid DESC LIMIT 1', [room, id]);
    return rows.length > 0 ? Number(rows[0].seq) : 0;
  }

  async range(room: string, from: number, to: number): Promise<Message[]> {
    const [rows] = await this.pool.query<MessagePacket[]>(`SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND seq BETWEEN ? AND ? ORDER BY seq`, [room, from, to]);
    return rows.map(toMessage);
  }

  async lastSeqs(rooms: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (rooms.length === 0) return out;
    const [rows] = await this.pool.query<(mysql.RowDataPacket & { id: string; last_seq: number })[]>('SELECT id, last_seq FROM rooms WHERE id IN (?)', [rooms]);
    for (const r of rows) out.set(r.id, Number(r.last_seq));
    return out;
  }

  private async membersOf(room: string): Promise<string[]> {
    const [rows] = await this.pool.query<(mysql.RowDataPacket & { user: string })[]>('SELECT user FROM members WHERE room = ? ORDER BY user', [room]);
    return rows.map((r) => r.user);
  }

  async roomsBySubject(subject: string): Promise<RoomInfo[]> {
    const [rows] = await this.pool.query<RoomPacket[]>(`SELECT ${ROOM_COLS} FROM rooms WHERE subject = ? AND deleted = 0 ORDER BY created_at, id`, [subject]);
    return Promise.all(rows.map(async (r) => roomInfo(toRoomRow(r), await this.membersOf(r.id))));
  }

  async myRooms(user: string, notBefore: number): Promise<MyRoom[]> {
    const [rows] = await this.pool.query<(RoomPacket & { read_seq: number | null })[]>(
      `SELECT r.id, r.kind, r.name, r.subject, r.epoch, r.last_seq, r.created_at, r.dm_key, r.deleted, k.seq AS read_seq
       FROM rooms r LEFT JOIN read_markers k ON k.room = r.id AND k.user = ?
       WHERE r.deleted = 0 AND r.id IN (SELECT room FROM members WHERE user = ? UNION SELECT room FROM read_markers WHERE user = ?)
       ORDER BY r.id`, [user, user, user]);
    return Promise.all(rows.map(async (r) => {
      const [last] = await this.pool.query<MessagePacket[]>(`SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND at >= ? ORDER BY tsid DESC LIMIT 1`, [r.id, notBefore]);
      return {
        info: roomInfo(toRoomRow(r), r.kind === 'public' ? [] : await this.membersOf(r.id)),
        lastSeq: Number(r.last_seq),
        readSeq: r.read_seq === null ? 0 : Number(r.read_seq),
        last: last.length > 0 ? toMessage(last[0]) : null,
      };
    }));
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
