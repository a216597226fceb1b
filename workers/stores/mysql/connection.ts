// MySQL/MariaDB (mysql2) connections: the options every connection uses, and the actor's one write
// connection, which runs one statement or transaction at a time. A connection that dies is
// replaced on the next use, so the actor's retry with backoff is also the reconnect.

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

export class WriteConnection {
  private conn: mysql.Connection | null = null;
  /** Serializes use of the connection: one statement or transaction at a time. */
  private chain: Promise<unknown> = Promise.resolve();

  /**
   * `idleTxTimeoutS`: the server ends this connection's transaction (and the connection) when it
   * sits idle inside a write transaction this long, so a node that freezes between the two round
   * trips of a cluster commit does not hold its rooms' row locks until innodb_lock_wait_timeout
   * (MariaDB's idle_transaction_timeout; MySQL has no such setting, and keeps the old
   * behaviour). 0: off.
   */
  constructor(private readonly url: string, private readonly idleTxTimeoutS: number) {}

  private async connect(): Promise<mysql.Connection> {
    // A group commit goes as one multi-statement query.
    const c = await mysql.createConnection({ ...connOptions(this.url), multipleStatements: true });
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
