// deploy/: what can be checked without a container runtime or a running systemd. The Dockerfile's
// HEALTHCHECK command answers for a plain and a TLS engine and fails once the engine is gone; what
// the Dockerfile copies exists and is in the build context; systemd accepts the unit.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, startEngine, tempDir } from './support/engine.ts';
import { selfSigned } from './tls-helpers.ts';

const dockerfile = readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8');

/** The HEALTHCHECK's exec-form command (continuation lines joined). */
function healthcheck(): string[] {
  const joined = dockerfile.replace(/\\\n\s*/g, '');
  const m = /^HEALTHCHECK .*?CMD (\[.*\])$/m.exec(joined);
  if (m === null) throw new Error('deploy/Dockerfile has no exec-form HEALTHCHECK');
  return JSON.parse(m[1]) as string[];
}

/** Run the HEALTHCHECK as the container would, with the container's environment; its exit code. */
function runHealthcheck(env: Record<string, string>): Promise<number | null> {
  const [cmd, ...args] = healthcheck();
  const proc = spawn(cmd === 'node' ? process.execPath : cmd, args, { cwd: tempDir(), env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' });
  return new Promise((res) => proc.once('exit', (code) => res(code)));
}

describe('deploy/Dockerfile', () => {
  it('its HEALTHCHECK passes while the engine serves and fails once it stopped', async () => {
    const plain = await startEngine();
    expect(await runHealthcheck({ CHAT_PORT: String(plain.port) })).toBe(0);
    expect(await plain.stop()).toBe(0);
    expect(await runHealthcheck({ CHAT_PORT: String(plain.port) })).toBe(1);
  });

  it('its HEALTHCHECK asks over https when CHAT_TLS_CERT is set', async () => {
    const { cert, key } = selfSigned(tempDir(), 'site');
    const tls = await startEngine({ CHAT_TLS_CERT: cert, CHAT_TLS_KEY: key });
    try {
      expect(await runHealthcheck({ CHAT_PORT: String(tls.port), CHAT_TLS_CERT: cert })).toBe(0);
      // Asked over plain http, the TLS engine does not answer 200.
      expect(await runHealthcheck({ CHAT_PORT: String(tls.port) })).toBe(1);
    } finally {
      await tls.stop();
    }
  });

  it('copies only files that exist and that .dockerignore leaves in the context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].split(/\s+/));
    expect(sources.length).toBeGreaterThan(3);
    for (const s of sources) {
      expect(existsSync(join(ROOT, s)), s).toBe(true);
      expect(ignored.filter((i) => s === i || s.startsWith(`${i}/`)), s).toEqual([]);
    }
  });

  it('runs the compiled engine as a non-root user, with a data volume, SIGTERM and a grace note', () => {
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/src\/cli\.js", "start"\]$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^VOLUME \["\/app\/data"\]$/m);
    expect(dockerfile).toMatch(/^STOPSIGNAL SIGTERM$/m);
    expect(dockerfile).toContain('stop_grace_period');
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
  });
});

// verify also checks that ExecStart's program (/usr/bin/node) exists.
const analyze = spawnSync('systemd-analyze', ['--version']).status === 0 && existsSync('/usr/bin/node');
if (!analyze) console.warn('\n*** deploy/uchat.service not verified: needs systemd-analyze (Debian: apt-get install systemd) and /usr/bin/node. ***\n');

describe.runIf(analyze)('deploy/uchat.service', () => {
  it('passes systemd-analyze verify without a warning', () => {
    const r = spawnSync('systemd-analyze', ['verify', join(ROOT, 'deploy', 'uchat.service')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.trim()).toBe('');
  });
});
