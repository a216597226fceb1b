// MariaDB/MySQL for tests: CHAT_TEST_MYSQL_URL (default the local MariaDB's `test` database).
// Under CI=true a missing server fails the suite; on a newcomer's box it skips, loudly.

import { createServer, connect, type Server, type Socket } from 'node:net';
import mysql from 'mysql2/promise';

export const MYSQL_URL = process.env.CHAT_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const IN_CI = process.env.CI === 'true';

export async function mysqlAvailable(): Promise<boolean> {
  try {
    const c = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: 2000 });
    await c.end();
    return true;
  } catch (err) {
    if (IN_CI) throw new Error(`MariaDB/MySQL at ${MYSQL_URL} is required under CI=true: ${(err as Error).message}`);
    console.warn(`\n*** MySQL suites SKIPPED: no server at ${MYSQL_URL} (${(err as Error).message}). Start MariaDB (see README) or set CHAT_TEST_MYSQL_URL. Under CI=true this fails. ***\n`);
    return false;
  }
}

/** A fresh database for one test file; returns its URL and a drop function. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `chat_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = await mysql.createConnection({ uri: MYSQL_URL });
  await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  await admin.end();
  const u = new URL(MYSQL_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = await mysql.createConnection({ uri: MYSQL_URL });
      await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await c.end();
    },
  };
}

/** A TCP proxy between the engine and MySQL that the test can cut and restore. */
export class DbProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  static async start(url: string): Promise<DbProxy> {
    const u = new URL(url);
    const p = new DbProxy({ host: u.hostname, port: Number(u.port || 3306) });
    await p.listen(0);
    return p;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((client) => {
        const upstream = connect(this.target.port, this.target.host);
        this.sockets.add(client);
        this.sockets.add(upstream);
        const drop = (): void => { client.destroy(); upstream.destroy(); this.sockets.delete(client); this.sockets.delete(upstream); };
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        this.server = server;
        this.port = (server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  /** The database "goes away": every connection is cut and new ones are refused. */
  async cut(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const sock of this.sockets) sock.destroy();
    this.sockets.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  /** The database is back, on the same port. */
  restore(): Promise<void> {
    return this.listen(this.port);
  }

  /** The engine's CHAT_STORE URL through this proxy. */
  urlFor(dbUrl: string): string {
    const u = new URL(dbUrl);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }
}
