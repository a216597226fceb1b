// Start-up contract: settings validated with messages naming the setting, --help, the native check;
// the commands of `uchat` (start, migrate, version, --print-config); settings from an env file,
// flags > environment > file; secrets redacted wherever settings are printed.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { redactUrl } from '../src/config.ts';
import { parseEnvFile } from '../src/env-file.ts';
import { MYSQL_SCHEMA_VERSION } from '../workers/stores/mysql/migrations.ts';
import { Client } from './support/client.ts';
import { runCli, startEngine, tempDir } from './support/engine.ts';
import { freshDatabase, mysqlAvailable } from './mysql-helpers.ts';

const HAVE_MYSQL = await mysqlAvailable();

function envFile(text: string): string {
  const file = join(tempDir(), 'uchat.env');
  writeFileSync(file, text);
  return file;
}

/** --print-config's lines as variable -> { value, group } (group: the comment heading it). */
function printed(stdout: string): Map<string, { value: string; group: string }> {
  const out = new Map<string, { value: string; group: string }>();
  let group = '';
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# ')) group = line.slice(2);
    const m = /^(CHAT_\w+)=(.*)$/.exec(line);
    if (m) out.set(m[1], { value: m[2], group });
  }
  return out;
}

describe('cli and config', () => {
  it('--help lists every setting of the contract', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const v of ['CHAT_PORT', 'CHAT_HOST', 'CHAT_STORE', 'CHAT_SQLITE_SYNC', 'CHAT_DELIVERY', 'CHAT_AUTH', 'CHAT_JWT_SECRET',
      'CHAT_JWT_PUBLIC_KEY', 'CHAT_ALLOWED_ORIGINS', 'CHAT_RETENTION', 'CHAT_MAX_PAYLOAD', 'CHAT_REDIS_URL', 'CHAT_NODE_ID']) {
      expect(r.stdout).toContain(v);
    }
  });

  it.each([
    [{ CHAT_PORT: '70000' }, 'CHAT_PORT'],
    [{ CHAT_PORT: 'eighty' }, 'CHAT_PORT'],
    [{ CHAT_STORE: 'postgres://x' }, 'CHAT_STORE'],
    [{ CHAT_STORE: 'sqlite::memory:' }, 'CHAT_STORE: an in-memory SQLite database cannot be shared'],
    [{ CHAT_SQLITE_SYNC: 'sometimes' }, 'CHAT_SQLITE_SYNC'],
    [{ CHAT_DELIVERY: 'later' }, 'CHAT_DELIVERY'],
    [{ CHAT_AUTH: 'jwt' }, 'CHAT_JWT_SECRET'],
    [{ CHAT_AUTH: 'jwt', CHAT_JWT_SECRET: 'short' }, 'CHAT_JWT_SECRET'],
    [{ CHAT_RETENTION: 'forever' }, 'CHAT_RETENTION'],
    [{ CHAT_MAX_PAYLOAD: '12q' }, 'CHAT_MAX_PAYLOAD'],
    [{ CHAT_ALLOWED_ORIGINS: 'https://a.example/path' }, 'CHAT_ALLOWED_ORIGINS'],
    [{ CHAT_NODE_ID: '5000' }, 'CHAT_NODE_ID'],
    [{ CHAT_IDLE_TIMEOUT: '5' }, 'CHAT_IDLE_TIMEOUT'],
    [{ CHAT_REDIS_URL: 'http://127.0.0.1:6379' }, 'CHAT_REDIS_URL'],
    [{ CHAT_REDIS_URL: 'redis://127.0.0.1:6379', CHAT_STORE: 'mysql://root@127.0.0.1:3306/test', CHAT_NODE_ID: '1', CHAT_DELIVERY: 'immediate' }, 'CHAT_DELIVERY=after-commit'],
    [{ CHAT_REDIS_PREFIX: 'a b' }, 'CHAT_REDIS_PREFIX'],
    [{ CHAT_NODE_TIMEOUT: '10ms' }, 'CHAT_NODE_TIMEOUT'],
    [{ CHAT_GAP_WAIT: 'soon' }, 'CHAT_GAP_WAIT'],
    [{ CHAT_SQLITE_CHECKPOINT: '5ms' }, 'CHAT_SQLITE_CHECKPOINT'],
    [{ CHAT_SQLITE_CHECKPOINT: 'often' }, 'CHAT_SQLITE_CHECKPOINT'],
  ])('refuses %j naming %s, exit 2', async (env, name) => {
    const r = await runCli([], env as Record<string, string>);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(name);
  });

  it('a flag overrides the environment and is named in its error', async () => {
    const r = await runCli(['--port', 'x'], { CHAT_PORT: '8080' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--port');
    const u = await runCli(['--frobnicate', '1']);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain('--frobnicate');
  });

  it('refuses the pure-JS uWebSockets.js fallback with an actionable message', async () => {
    const r = await runCli([], { UWS_USE_FALLBACK: '1' });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/UWS_USE_FALLBACK/);
  });

  it('--help names the commands, --env-file, --print-config and the TLS settings', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const w of ['start', 'migrate', 'version', '--print-config', '--env-file', 'CHAT_TLS_CERT', 'CHAT_TLS_KEY', 'CHAT_TLS_KEY_PASSPHRASE']) {
      expect(r.stdout).toContain(w);
    }
    expect((await runCli(['start', '--help'])).stdout).toBe(r.stdout);
  });

  it('version prints the package version; an unknown command exits 2', async () => {
    const v = await runCli(['version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^uchat \d+\.\d+\.\d+\n/);
    const u = await runCli(['serve']);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain('unknown command "serve"');
  });
});

describe('settings from an env file', () => {
  it('a flag wins over the environment, the environment over the file', async () => {
    const file = envFile('CHAT_WINDOW=300\nCHAT_READERS=3\nCHAT_RECOVERY_MAX=1000\n');
    const r = await runCli(['--print-config', '--env-file', file, '--recovery-max', '3000'], { CHAT_READERS: '4' });
    expect(r.code, r.stderr).toBe(0);
    const p = printed(r.stdout);
    expect(p.get('CHAT_WINDOW')).toEqual({ value: '300', group: `from --env-file ${file}` });
    expect(p.get('CHAT_READERS')).toEqual({ value: '4', group: 'from the environment' });
    expect(p.get('CHAT_RECOVERY_MAX')).toEqual({ value: '3000', group: 'from flags' });
    expect(p.get('CHAT_IDLE_TIMEOUT')).toEqual({ value: '120', group: 'defaults' });
  });

  it("the running engine applies the file's settings", async () => {
    const e = await startEngine({}, tempDir(), ['--env-file', envFile('# one room per connection\nCHAT_MAX_ROOMS_PER_CONN=1\n')]);
    try {
      const c = await Client.connect(e.url, { user: 'ada', name: 'Ada' });
      expect((await c.request({ op: 'join', room: 'one' })).op).toBe('joined');
      const second = await c.request({ op: 'join', room: 'two' });
      expect(second).toMatchObject({ op: 'error', code: 'forbidden' });
      expect(second.message).toContain('at most 1 rooms');
      await c.close();
    } finally {
      await e.stop();
    }
  });

  it.each([
    ['CHAT_PROT=9000\n', 'unknown setting CHAT_PROT'],
    ['CHAT_PORT=1\nCHAT_PORT\n', 'line 2: "CHAT_PORT" is not a KEY=value assignment'],
    ['export CHAT_PORT=1\n', 'line 1: "export CHAT_PORT" is not a valid variable name'],
    ['CHAT_PORT="1\n', 'line 1: a double quote is never closed'],
    ['CHAT_WINDOW=lots\n', 'CHAT_WINDOW must be a whole number'],
  ])('refuses a bad env file (%j) with exit 2: %s', async (text, message) => {
    const r = await runCli(['--env-file', envFile(text)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('reads the systemd EnvironmentFile= format', () => {
    const vars = parseEnvFile([
      '# a comment',
      '; another comment',
      '',
      '  CHAT_A = spaced   ',
      "CHAT_B='single $HOME \\n kept'",
      'CHAT_C="double \\"quoted\\" \\\\ \\$HOME"',
      'CHAT_D=joined \\',
      'line',
      'CHAT_E="-----BEGIN PUBLIC KEY-----',
      'MFkw',
      '-----END PUBLIC KEY-----"',
      'CHAT_F=',
      'CHAT_G=a # not a comment',
      'CHAT_A=later wins',
    ].join('\n'), 'test.env');
    expect(Object.fromEntries(vars)).toEqual({
      CHAT_A: 'later wins',
      CHAT_B: 'single $HOME \\n kept',
      CHAT_C: 'double "quoted" \\ $HOME',
      CHAT_D: 'joined line',
      CHAT_E: '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----',
      CHAT_F: '',
      CHAT_G: 'a # not a comment',
    });
  });
});

describe('secrets stay out of what is printed', () => {
  const secrets = ['db@secret', 'db%40secret', 'redis@secret', 'redis%40secret', 'jwt-secret-jwt-secret-jwt-secret-0', 'admin-token-secret-1'];
  const env = {
    CHAT_STORE: 'mysql://root:db@secret@127.0.0.1:3306/test',
    CHAT_REDIS_URL: 'redis://default:redis@secret@127.0.0.1:1',
    CHAT_NODE_ID: '7',
    CHAT_AUTH: 'jwt',
    CHAT_JWT_SECRET: 'jwt-secret-jwt-secret-jwt-secret-0',
    CHAT_ADMIN_TOKEN: 'admin-token-secret-1',
  };

  it('--print-config shows *** for passwords, secrets and tokens', async () => {
    const r = await runCli(['--print-config'], env);
    expect(r.code, r.stderr).toBe(0);
    for (const s of secrets) expect(r.stdout).not.toContain(s);
    const p = printed(r.stdout);
    expect(p.get('CHAT_STORE')?.value).toBe('mysql://root:***@127.0.0.1:3306/test');
    expect(p.get('CHAT_REDIS_URL')?.value).toBe('redis://default:***@127.0.0.1:1');
    expect(p.get('CHAT_JWT_SECRET')?.value).toBe('***');
    expect(p.get('CHAT_ADMIN_TOKEN')?.value).toBe('***');
  });

  it('a Redis that cannot be reached is named without its password, in the error and the start log', async () => {
    const r = await runCli([], { ...env, CHAT_LOG_LEVEL: 'info' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot reach Redis at redis://default:***@127.0.0.1:1');
    expect(r.stderr).toContain('"msg":"starting"');
    for (const s of secrets) expect(r.stdout + r.stderr).not.toContain(s);
  });

  it.each([
    ['mysql://root:p@ss@db:3306/chat', 'mysql://root:***@db:3306/chat'],
    ['mysql://root:p%40ss@db/chat?ssl=1', 'mysql://root:***@db/chat?ssl=1'],
    ['redis://:secret@h:6379', 'redis://:***@h:6379'],
    ['rediss://u:a/b@c@h:6380', 'rediss://***@h:6380'],
    ['redis://h:6379', 'redis://h:6379'],
    ['mysql://root@db/chat', 'mysql://root@db/chat'],
    ['not a url //u:p@ss@h', 'not a url //***@h'],
  ])('redactUrl(%s) = %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });
});

describe.runIf(HAVE_MYSQL)('uchat migrate on MySQL', () => {
  it('brings a new database to the schema version, again without change, and serves nothing', async () => {
    const db = await freshDatabase();
    try {
      for (let i = 0; i < 2; i++) {
        const r = await runCli(['migrate'], { CHAT_STORE: db.url });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain(`schema version ${MYSQL_SCHEMA_VERSION}`);
        expect(r.stdout).not.toContain('listening on');
      }
      const c = await mysql.createConnection({ uri: db.url });
      const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT version FROM schema_version');
      await c.end();
      expect(rows.map((x) => Number(x.version))).toEqual([MYSQL_SCHEMA_VERSION]);
    } finally {
      await db.drop();
    }
  });
});
