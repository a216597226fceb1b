// The SQL the SQLite and MySQL stores share, each statement written once. Where the two dialects
// differ inside a shared statement, a Dialect fills in the difference; statements only one
// store runs (its migrations, its batch lookups and purges) live in that store's folder.

import { MESSAGE_COLS, ROOM_COLS } from './rows.ts';

/** What the two dialects spell differently. */
export interface Dialect {
  /** An INSERT that skips rows whose key is already there. */
  insertIgnore: string;
  /**
   * The VALUES of an INSERT of `columns` columns: SQLite binds one row per run, mysql2 expands
   * one `?` into every row of a nested array.
   */
  rows(columns: number): string;
  /** The tail of a read-marker INSERT that moves an existing marker forward, never backwards. */
  markForward: string;
  /** The tail of the INSERT that records a block pair's latest directory version. */
  newVersion: string;
  /** A room's last seq in a SELECT list (`t`: the rooms table's name or alias), named last_seq. */
  lastSeq(t: string): string;
}

export const SQLITE: Dialect = {
  insertIgnore: 'INSERT OR IGNORE',
  rows: (columns) => `(${new Array<string>(columns).fill('?').join(', ')})`,
  markForward: 'ON CONFLICT (room, user) DO UPDATE SET seq = excluded.seq, id = excluded.id WHERE excluded.seq > read_markers.seq',
  newVersion: 'ON CONFLICT (blocker, blocked) DO UPDATE SET version = excluded.version',
  // A commit does not write rooms.last_seq (one B-tree page fewer per room and commit): the room's
  // newest message has its last seq (ids follow seq within a room; one index probe), and
  // rooms.last_seq keeps it when no message is left (retention and deletion write it first).
  lastSeq: (t) => `MAX(${t}.last_seq, IFNULL((SELECT m.seq FROM messages m WHERE m.room = ${t}.id ORDER BY m.tsid DESC LIMIT 1), 0)) AS last_seq`,
};

export const MYSQL: Dialect = {
  insertIgnore: 'INSERT IGNORE',
  rows: () => '?',
  // Correct whether the server evaluates the assignments left to right (MySQL, MariaDB by default:
  // `seq` in the second one is already the maximum) or all against the old row (MariaDB's
  // SIMULTANEOUS_ASSIGNMENT).
  markForward: 'ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq)), id = IF(VALUES(seq) >= seq, VALUES(id), id)',
  newVersion: 'ON DUPLICATE KEY UPDATE version = VALUES(version)',
  lastSeq: (t) => `${t}.last_seq`,
};

/** ROOM_COLS of the rooms table named `t`, the last seq as the dialect has it. */
function roomCols(d: Dialect, t: string): string {
  return ROOM_COLS.split(', ').map((c) => (c === 'last_seq' ? d.lastSeq(t) : `${t}.${c}`)).join(', ');
}
const MESSAGE_INSERT_COLS = 'tsid, id, room, seq, type, from_id, from_name, text, at, cid, target';

/**
 * Statements both dialects spell the same. `IN (?)`: MySQL binds a list to the one `?`; SQLite,
 * which binds scalars only, runs the statement once per value.
 */
export const SQL = {
  // rooms and the directory (the statements that read a room's last seq are the dialect's)
  createRoom: 'INSERT INTO rooms (id, kind, name, subject, epoch, last_seq, created_at, dm_key, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  roomsCreatedBy: 'SELECT COUNT(*) AS n FROM rooms WHERE created_by = ? AND deleted = 0',
  members: 'SELECT user FROM members WHERE room = ? ORDER BY user',
  removeMembers: 'DELETE FROM members WHERE room = ? AND user IN (?)',
  unblock: 'DELETE FROM blocks WHERE blocker = ? AND blocked = ?',
  allBlocks: 'SELECT blocker, blocked FROM blocks',
  blockCount: 'SELECT COUNT(*) AS n FROM blocks WHERE blocker = ?',
  // directory versions (see DirectoryStore)
  dirVersion: 'SELECT v FROM directory_version',
  roomVersion: 'UPDATE rooms SET dir_version = ? WHERE id = ?',
  blockChanges: `SELECT c.blocker, c.blocked, c.version, CASE WHEN b.blocker IS NULL THEN 0 ELSE 1 END AS active
    FROM block_changes c LEFT JOIN blocks b ON b.blocker = c.blocker AND b.blocked = c.blocked
    WHERE c.version > ? ORDER BY c.version LIMIT ?`,
  // deleting a room: its messages, members and markers go, its row stays as a tombstone
  deleteMessages: 'DELETE FROM messages WHERE room = ?',
  deleteMembers: 'DELETE FROM members WHERE room = ?',
  deleteMarkers: 'DELETE FROM read_markers WHERE room = ?',
  tombstone: 'UPDATE rooms SET deleted = 1, dm_key = NULL, dir_version = ? WHERE id = ?',
  // messages: (room, notBefore, limit) and the cursors
  latest: `SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND at >= ? ORDER BY tsid DESC LIMIT ?`,
  before: `SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND tsid < ? AND at >= ? ORDER BY tsid DESC LIMIT ?`,
  after: `SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND tsid > ? AND at >= ? ORDER BY tsid ASC LIMIT ?`,
  range: `SELECT ${MESSAGE_COLS} FROM messages WHERE room = ? AND seq BETWEEN ? AND ? ORDER BY seq`,
  seqOf: 'SELECT seq FROM messages WHERE room = ? AND tsid = ?',
  seqAt: 'SELECT seq FROM messages WHERE room = ? AND tsid <= ? ORDER BY tsid DESC LIMIT 1',
  // "my rooms" and the `read` reply: the oldest message not expired; the senders of the newest
  // messages with seq in (after, upTo] (ids follow seq within a room)
  firstLive: 'SELECT seq FROM messages WHERE room = ? AND at >= ? ORDER BY tsid LIMIT 1',
  sendersAfter: 'SELECT from_id, at FROM messages WHERE room = ? AND seq > ? AND seq <= ? ORDER BY tsid DESC LIMIT ?',
  // retraction (DELETE and EDIT events, see RETRACTION below) and read markers
  retractTarget: 'SELECT id, from_id, type, deleted FROM messages WHERE tsid = ? AND room = ?',
  deleteEvent: "SELECT room, seq, id, at FROM messages WHERE target = ? AND type = 'DELETE' ORDER BY tsid LIMIT 1",
  reads: 'SELECT user, seq FROM read_markers WHERE room = ?',
} as const;

/**
 * What a DELETE or EDIT event does to the rows it names, in the transaction that stores the event.
 * The text is overwritten with '' (with SQLite's secure_delete the old bytes are zeroed, not freed):
 * - erase: the target message (binds tsid, room);
 * - edit: the target takes the new text and its time (binds text, at, tsid, room);
 * - eraseEdits: earlier EDIT events of the target, whose text is the old text (binds target, the
 *   new event's tsid; a DELETE erases all of them);
 * - eraseExpiredEdits: retention, EDIT events whose target has expired: ids sort as TSIDs do, so
 *   `target < cutoff id` is the expired ones (binds the cutoff id).
 */
export const RETRACTION = {
  erase: "UPDATE messages SET text = '', deleted = 1, edited_at = NULL WHERE tsid = ? AND room = ?",
  edit: 'UPDATE messages SET text = ?, edited_at = ? WHERE tsid = ? AND room = ? AND deleted = 0',
  eraseEdits: "UPDATE messages SET text = '', deleted = 1 WHERE target = ? AND type = 'EDIT' AND tsid <> ? AND deleted = 0",
  eraseExpiredEdits: "UPDATE messages SET text = '', deleted = 1 WHERE target < ? AND type = 'EDIT' AND deleted = 0",
} as const;

/** Statements both dialects run, in the dialect's words. */
export function dialectSql(d: Dialect) {
  return {
    getRoom: `SELECT ${roomCols(d, 'rooms')} FROM rooms WHERE id = ?`,
    findDirect: `SELECT ${roomCols(d, 'rooms')} FROM rooms WHERE dm_key = ?`,
    lastSeqs: `SELECT id, ${d.lastSeq('rooms')} FROM rooms WHERE id IN (?)`,
    roomsBySubject: `SELECT ${roomCols(d, 'rooms')} FROM rooms WHERE subject = ? AND deleted = 0 ORDER BY created_at, id`,
    // A user's rooms: group/direct rooms they are a member of, and public rooms they have a read
    // marker in (set when they first join one). Binds the user three times.
    myRooms: `SELECT ${roomCols(d, 'r')}, k.seq AS read_seq
      FROM rooms r LEFT JOIN read_markers k ON k.room = r.id AND k.user = ?
      WHERE r.deleted = 0 AND r.id IN (SELECT room FROM members WHERE user = ? UNION SELECT room FROM read_markers WHERE user = ?)
      ORDER BY r.id`,
    roomChanges: `SELECT ${roomCols(d, 'rooms')}, dir_version FROM rooms WHERE dir_version > ? ORDER BY dir_version LIMIT ?`,
    addMembers: `${d.insertIgnore} INTO members (room, user) VALUES ${d.rows(2)}`,
    block: `${d.insertIgnore} INTO blocks (blocker, blocked) VALUES (?, ?)`,
    blockVersion: `INSERT INTO block_changes (blocker, blocked, version) VALUES (?, ?, ?) ${d.newVersion}`,
    /** Skips messages already stored: a commit repeated after an unknown outcome. */
    insertMessages: `${d.insertIgnore} INTO messages (${MESSAGE_INSERT_COLS}) VALUES ${d.rows(11)}`,
    /** Fails on a message already stored (a cluster's (sender, cid) stored by another node). */
    insertNewMessages: `INSERT INTO messages (${MESSAGE_INSERT_COLS}) VALUES ${d.rows(11)}`,
    markForward: `INSERT INTO read_markers (room, user, seq, id) VALUES ${d.rows(4)} ${d.markForward}`,
    markIfAbsent: `${d.insertIgnore} INTO read_markers (room, user, seq, id) VALUES ${d.rows(4)}`,
  };
}
