// The SQLite schema: its migrations, applied in order, one transaction each, and the schema
// version they bring a database to (PRAGMA user_version).

import type Database from 'better-sqlite3';

/** Each entry upgrades the schema from version i to i+1; applied in one transaction each. */
const MIGRATIONS: string[] = [
  `CREATE TABLE rooms (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     name TEXT,
     subject TEXT,
     epoch TEXT NOT NULL,
     last_seq INTEGER NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX rooms_subject ON rooms(subject) WHERE subject IS NOT NULL;
   -- tsid is the message id as an integer and the row key: time order is key order, so retention
   -- deletes a key range, and the (room) index, which carries the key, serves every cursor.
   CREATE TABLE messages (
     tsid INTEGER PRIMARY KEY,
     id TEXT NOT NULL,
     room TEXT NOT NULL,
     seq INTEGER NOT NULL,
     type TEXT NOT NULL,
     from_id TEXT NOT NULL,
     from_name TEXT NOT NULL,
     text TEXT NOT NULL,
     at INTEGER NOT NULL,
     cid TEXT
   );
   CREATE INDEX messages_room ON messages(room);
   CREATE UNIQUE INDEX messages_sender_cid ON messages(from_id, cid) WHERE cid IS NOT NULL;`,
  // 2: the chat domain: room kinds with members, direct-room lookup, read markers, blocks.
  `ALTER TABLE rooms ADD COLUMN dm_key TEXT;
   -- a deleted room keeps its row as a tombstone: its id is never silently reused
   ALTER TABLE rooms ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
   CREATE UNIQUE INDEX rooms_dm ON rooms(dm_key) WHERE dm_key IS NOT NULL;
   CREATE TABLE members (room TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY (room, user)) WITHOUT ROWID;
   CREATE INDEX members_user ON members(user);
   CREATE TABLE read_markers (
     room TEXT NOT NULL, user TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
     PRIMARY KEY (room, user)) WITHOUT ROWID;
   CREATE INDEX read_markers_user ON read_markers(user);
   CREATE TABLE blocks (blocker TEXT NOT NULL, blocked TEXT NOT NULL, PRIMARY KEY (blocker, blocked)) WITHOUT ROWID;`,
  // 3: quotas and directory versions. Who created a room (counted per user, cheaply, by the index;
  // rooms created before stay uncounted); the directory version of a room's latest membership
  // change or deletion and of a block pair's latest change, from one counter (see DirectoryStore).
  `ALTER TABLE rooms ADD COLUMN created_by TEXT;
   ALTER TABLE rooms ADD COLUMN dir_version INTEGER NOT NULL DEFAULT 0;
   CREATE INDEX rooms_created_by ON rooms(created_by, deleted) WHERE created_by IS NOT NULL;
   CREATE INDEX rooms_dir_version ON rooms(dir_version);
   CREATE TABLE block_changes (blocker TEXT NOT NULL, blocked TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (blocker, blocked)) WITHOUT ROWID;
   CREATE INDEX block_changes_version ON block_changes(version);
   CREATE TABLE directory_version (v INTEGER NOT NULL);
   INSERT INTO directory_version (v) VALUES (0);`,
  // 4: retraction. DELETE and EDIT events name the message they change (target); the message keeps
  // its row, its text erased (deleted) or replaced (edited_at: when). The index finds a message's
  // EDIT and DELETE events, and (by id range) the EDIT events of expired messages.
  `ALTER TABLE messages ADD COLUMN target TEXT;
   ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE messages ADD COLUMN edited_at INTEGER;
   CREATE INDEX messages_target ON messages(target) WHERE target IS NOT NULL;`,
  // 5: the host app's event outbox (docs/webhooks.md). AUTOINCREMENT: an id is never reused once its
  // row is purged, so "replay from id" means the same events. state 0 pending, 1 delivered, 2
  // dead-lettered; the pending index serves each room's oldest pending event in id order. IF NOT
  // EXISTS: the step stands on its own, whatever migration precedes it.
  `CREATE TABLE IF NOT EXISTS webhook_events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     room TEXT NOT NULL,
     type TEXT NOT NULL,
     at INTEGER NOT NULL,
     message_id TEXT,
     body TEXT NOT NULL,
     state INTEGER NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     next_at INTEGER NOT NULL DEFAULT 0,
     done_at INTEGER,
     error TEXT
   );
   CREATE INDEX IF NOT EXISTS webhook_events_pending ON webhook_events(state, room, id);
   CREATE INDEX IF NOT EXISTS webhook_events_done ON webhook_events(state, done_at);
   CREATE INDEX IF NOT EXISTS webhook_events_message ON webhook_events(message_id) WHERE message_id IS NOT NULL;`,
  // 6: idempotency by the actor's window of recent (sender, cid) pairs (dedupe-window.ts), not by a
  // unique index that every insert updated at a random place. Every row is kept.
  `DROP INDEX IF EXISTS messages_sender_cid;`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export class SchemaTooNewError extends Error {
  override name = 'SchemaTooNewError';
}

/**
 * Apply pending migrations (up to `target`: tests build a database of an older version); safe to
 * re-run; refuses a database written by newer code.
 */
export function migrate(db: Database.Database, target = SCHEMA_VERSION): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new SchemaTooNewError(
      `the database is at schema version ${current} but this engine knows only up to ${SCHEMA_VERSION}; ` +
        'run a newer engine or restore a backup',
    );
  }
  for (let v = current; v < target; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
