// MySQL/MariaDB (mysql2) connections: the options every connection uses, the session every
// connection pins, and the actor's one write connection, which runs one statement or transaction
// at a time. A connection that dies is replaced on the next use, so the actor's retry with backoff
// is also the reconnect.

import mysql from 'mysql2/promise';

export function connOptions(url: string): mysql.ConnectionOptions {
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

/**
 * The sql_mode of every session, whatever the server's default. Values are escaped by the client
 * (mysql2 writes `'` as `\'`): NO_BACKSLASH_ESCAPES would end a string at that backslash, and
 * ANSI_QUOTES would read a double-quoted value as a name. Strict, so a value that does not fit is
 * an error, never silently cut.
 */
export const SESSION_SQL_MODE = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';
const PIN_SESSION = `SET SESSION sql_mode = '${SESSION_SQL_MODE}'`;

/** How connections are set up beyond connOptions. */
export interface SessionSetup {
  /**
   * Tests only: a statement run on every new connection before the engine pins its session, as a
   * server's own defaults would be (e.g. `SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'`).
   */
  serverDefaults?: string;
}

/** Pin the session of a new connection (see SESSION_SQL_MODE). */
export async function pinSession(c: mysql.Connection, setup: SessionSetup): Promise<void> {
  if (setup.serverDefaults !== undefined) await c.query(setup.serverDefaults);
  await c.query(PIN_SESSION);
}

/** What a pool hands its 'connection' listener at run time: mysql2's callback connection. */
interface RawConnection {
  query(sql: string, cb: (err: Error | null) => void): unknown;
  destroy(): void;
}

/** A pool whose every connection pins its session before its first query runs. */
export function pinnedPool(url: string, connections: number, setup: SessionSetup): mysql.Pool {
  const pool = mysql.createPool({ ...connOptions(url), connectionLimit: connections, enableKeepAlive: true });
  // Commands on a connection run in order: these are queued before the query it was opened for.
  pool.on('connection', (conn) => {
    const raw = conn as unknown as RawConnection;
    const fail = (err: Error | null): void => { if (err) raw.destroy(); };
    if (setup.serverDefaults !== undefined) raw.query(setup.serverDefaults, fail);
    raw.query(PIN_SESSION, fail);
  });
  return pool;
}

/** Bytes kept free in every packet for its header and the statements around a batch. */
const PACKET_HEADROOM = 4096;

/** The largest row a message may make, for a frame of `maxPayload` bytes (text escaped, names, ids). */
export function maxRowBytes(maxPayload: number): number {
  // A UTF-16 unit is at most 3 UTF-8 bytes; an escaped quote or backslash is 2.
  return 3 * maxPayload + 4096;
}

export class WriteConnection {
  private conn: mysql.Connection | null = null;
  /** Serializes use of the connection: one statement or transaction at a time. */
  private chain: Promise<unknown> = Promise.resolve();
  /**
   * The most bytes one query may carry: the server's max_allowed_packet (read at every connect)
   * less some headroom. 1 MiB until the first connect.
   */
  packetBytes = (1 << 20) - PACKET_HEADROOM;

  /**
   * `idleTxTimeoutS`: the server ends this connection's transaction (and the connection) when it
   * sits idle inside a write transaction this long, so a node that freezes between the two round
   * trips of a cluster commit does not hold its rooms' row locks until innodb_lock_wait_timeout
   * (MariaDB's idle_transaction_timeout; MySQL has no such setting, and keeps the old
   * behaviour). 0: off.
   */
  constructor(private readonly url: string, private readonly idleTxTimeoutS: number, private readonly setup: SessionSetup) {}

  private async connect(): Promise<mysql.Connection> {
    // A group commit goes as one multi-statement query (or a few, under max_allowed_packet).
    const c = await mysql.createConnection({ ...connOptions(this.url), multipleStatements: true });
    try {
      await pinSession(c, this.setup);
      const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT @@max_allowed_packet AS p');
      this.packetBytes = Number(rows[0].p) - PACKET_HEADROOM;
      if (this.idleTxTimeoutS > 0) {
        try {
          await c.query('SET SESSION idle_transaction_timeout = ?', [this.idleTxTimeoutS]);
        } catch (err) {
          if ((err as { code?: string }).code !== 'ER_UNKNOWN_SYSTEM_VARIABLE') throw err;
        }
      }
    } catch (err) {
      c.destroy();
      throw err;
    }
    return c;
  }

  /** Run `fn` on the write connection, after everything queued before it; reconnect if needed. */
  write<T>(fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
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

  /** `fn` in one transaction on the write connection, rolled back if it throws. */
  tx<T>(fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
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

  /** After everything queued has run. */
  async close(): Promise<void> {
    await this.chain;
    await this.conn?.end().catch(() => undefined);
  }
}
