// The MySQL/MariaDB schema: its migrations, applied in order under a named lock (several nodes
// may start at once on a new database), and the schema version they bring a database to.

import type mysql from 'mysql2/promise';

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
  // 5: quotas and directory versions. Who created a room (counted per user, cheaply, by the index;
  // rooms created before stay uncounted); the directory version of a room's latest membership
  // change or deletion and of a block pair's latest change, from one counter row (see
  // DirectoryStore). Added columns have defaults: instant on MariaDB >= 10.3 and MySQL 8.
  async (c) => {
    if (!(await columnExists(c, 'rooms', 'created_by'))) await c.query('ALTER TABLE rooms ADD COLUMN created_by VARCHAR(64) NULL');
    if (!(await columnExists(c, 'rooms', 'dir_version'))) await c.query('ALTER TABLE rooms ADD COLUMN dir_version BIGINT NOT NULL DEFAULT 0');
    if (!(await indexExists(c, 'rooms', 'rooms_created_by'))) await c.query('CREATE INDEX rooms_created_by ON rooms (created_by, deleted)');
    if (!(await indexExists(c, 'rooms', 'rooms_dir_version'))) await c.query('CREATE INDEX rooms_dir_version ON rooms (dir_version)');
    await c.query(`CREATE TABLE IF NOT EXISTS block_changes (blocker VARCHAR(64) NOT NULL, blocked VARCHAR(64) NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (blocker, blocked), KEY block_changes_version (version)) ${TABLE_OPTS}`);
    await c.query(`CREATE TABLE IF NOT EXISTS directory_version (v BIGINT NOT NULL) ${TABLE_OPTS}`);
    await c.query('INSERT INTO directory_version (v) SELECT 0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM directory_version)');
  },
  // 6: retraction. DELETE and EDIT events name the message they change (target); the message keeps
  // its row, its text erased (deleted) or replaced (edited_at: when). The index finds a message's
  // EDIT and DELETE events, and (by id range) the EDIT events of expired messages.
  async (c) => {
    if (!(await columnExists(c, 'messages', 'target'))) await c.query('ALTER TABLE messages ADD COLUMN target CHAR(13) NULL');
    if (!(await columnExists(c, 'messages', 'deleted'))) await c.query('ALTER TABLE messages ADD COLUMN deleted TINYINT NOT NULL DEFAULT 0');
    if (!(await columnExists(c, 'messages', 'edited_at'))) await c.query('ALTER TABLE messages ADD COLUMN edited_at BIGINT NULL');
    if (!(await indexExists(c, 'messages', 'messages_target'))) await c.query('CREATE INDEX messages_target ON messages (target)');
  },
  // 7: the host app's event outbox (docs/webhooks.md): state 0 pending, 1 delivered, 2 dead-lettered;
  // the pending index serves each room's oldest pending event in id order. Delivery leases whole
  // rooms (webhook_leases) so exactly one node of a cluster delivers a room's events, in order.
  // IF NOT EXISTS: the step stands on its own, whatever migration precedes it.
  async (c) => {
    await c.query(`CREATE TABLE IF NOT EXISTS webhook_events (
       id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
       room VARCHAR(64) NOT NULL,
       type VARCHAR(32) NOT NULL,
       at BIGINT NOT NULL,
       message_id CHAR(13) NULL,
       body MEDIUMTEXT NOT NULL,
       state TINYINT NOT NULL,
       attempts INT NOT NULL DEFAULT 0,
       next_at BIGINT NOT NULL DEFAULT 0,
       done_at BIGINT NULL,
       error VARCHAR(512) NULL,
       KEY webhook_events_pending (state, room, id),
       KEY webhook_events_done (state, done_at),
       KEY webhook_events_message (message_id)
     ) ${TABLE_OPTS}`);
    await c.query(`CREATE TABLE IF NOT EXISTS webhook_leases (room VARCHAR(64) NOT NULL PRIMARY KEY, node INT NOT NULL, until BIGINT NOT NULL) ${TABLE_OPTS}`);
  },
];

export const MYSQL_SCHEMA_VERSION = MIGRATIONS.length;

/** Apply pending migrations (up to `target`: tests build a database of an older version). */
export async function migrateMysql(conn: mysql.Connection, target = MYSQL_SCHEMA_VERSION): Promise<void> {
  // Several nodes of a cluster may start at once on a new database: one migrates, the others wait
  // for it (a named lock of this connection's session), then find the schema current.
  const [locked] = await conn.query<mysql.RowDataPacket[]>("SELECT GET_LOCK(CONCAT(DATABASE(), '.chat_migrate'), 60) AS ok");
  if (Number(locked[0].ok) !== 1) throw new Error('another engine has been migrating this database for 60 s; is it stuck?');
  try {
    await migrateLocked(conn, target);
  } finally {
    await conn.query("SELECT RELEASE_LOCK(CONCAT(DATABASE(), '.chat_migrate'))");
  }
}

async function migrateLocked(conn: mysql.Connection, target: number): Promise<void> {
  await conn.query(`CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL) ${TABLE_OPTS}`);
  const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT version FROM schema_version');
  if (rows.length === 0) await conn.query('INSERT INTO schema_version (version) VALUES (0)');
  const current = rows.length === 0 ? 0 : Number(rows[0].version);
  if (current > MYSQL_SCHEMA_VERSION) {
    throw new Error(`the database is at schema version ${current} but this engine knows only up to ${MYSQL_SCHEMA_VERSION}; run a newer engine or restore a backup`);
  }
  for (let v = current; v < target; v++) {
    await MIGRATIONS[v](conn);
    await conn.query('UPDATE schema_version SET version = ?', [v + 1]);
  }
}
