// Start-up contract: settings validated with messages naming the setting, --help, the native check.

import { describe, expect, it } from 'vitest';
import { runCli } from './helpers.ts';

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
});
