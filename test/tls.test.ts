// TLS: with CHAT_TLS_CERT and CHAT_TLS_KEY the engine serves wss:// and https:// (uWS's SSLApp)
// with a self-signed certificate made here by openssl, and a bad pair stops start-up with exit 2.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from './support/client.ts';
import { runCli, startEngine, tempDir, type EngineProc } from './support/engine.ts';
import { selfSigned } from './tls-helpers.ts';

const dir = tempDir();
const file = (name: string): string => join(dir, name);

/** GET over https trusting only `ca`; the status, the body and the certificate the server showed. */
function httpsGet(url: string, ca: Buffer): Promise<{ status: number; body: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint }));
    }).on('error', reject);
  });
}

beforeAll(() => {
  selfSigned(dir, 'site');
  selfSigned(dir, 'other');
  selfSigned(dir, 'locked', 'correct horse');
});

describe('TLS', () => {
  let engine: EngineProc | null = null;
  afterAll(async () => { await engine?.stop(); });

  it('serves wss:// and https:// with the configured certificate, and no plain http://', async () => {
    engine = await startEngine({ CHAT_TLS_CERT: file('site.crt'), CHAT_TLS_KEY: file('site.key') });
    expect(engine.stdout.join('')).toContain('(TLS: https://, wss://)');
    const ca = readFileSync(file('site.crt'));
    const health = await httpsGet(`https://127.0.0.1:${engine.port}/healthz`, ca);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, store: 'ok' });
    expect(health.fingerprint).toBe(new X509Certificate(ca).fingerprint256);

    const c = await Client.connect(`wss://127.0.0.1:${engine.port}/ws`, { user: 'ada', name: 'Ada', ca });
    expect((await c.request({ op: 'join', room: 'secure' })).op).toBe('joined');
    c.send({ op: 'send', room: 'secure', text: 'over tls', cid: 't-1' });
    const ack = await c.op('ack', (f) => f.cid === 't-1');
    expect(ack.room).toBe('secure');
    await c.close();

    // A client that does not trust the certificate is refused by its own TLS check.
    await expect(Client.connect(`wss://127.0.0.1:${engine.port}/ws`, { user: 'bob', ca: readFileSync(file('other.crt')) })).rejects.toThrow(/self[- ]signed|certificate/i);
    await expect(fetch(`http://127.0.0.1:${engine.port}/healthz`)).rejects.toThrow();
    expect(await engine.stop()).toBe(0);
    engine = null;
  });

  it('an encrypted key opens with CHAT_TLS_KEY_PASSPHRASE', async () => {
    const e = await startEngine({ CHAT_TLS_CERT: file('locked.crt'), CHAT_TLS_KEY: file('locked.key'), CHAT_TLS_KEY_PASSPHRASE: 'correct horse' });
    try {
      expect((await httpsGet(`https://localhost:${e.port}/healthz`, readFileSync(file('locked.crt')))).status).toBe(200);
    } finally {
      await e.stop();
    }
  });

  it.each([
    ['CHAT_TLS_CERT and CHAT_TLS_KEY go together', () => ({ CHAT_TLS_CERT: file('site.crt') })],
    ['CHAT_TLS_CERT and CHAT_TLS_KEY go together: set both', () => ({ CHAT_TLS_KEY: file('site.key') })],
    ['CHAT_TLS_CERT: cannot read', () => ({ CHAT_TLS_CERT: file('nope.crt'), CHAT_TLS_KEY: file('site.key') })],
    ['is not a file', () => ({ CHAT_TLS_CERT: dir, CHAT_TLS_KEY: file('site.key') })],
    ['is not a PEM certificate', () => ({ CHAT_TLS_CERT: file('site.key'), CHAT_TLS_KEY: file('site.key') })],
    ['site.crt is not a PEM private key', () => ({ CHAT_TLS_CERT: file('site.crt'), CHAT_TLS_KEY: file('site.crt') })],
    ['is not the private key of the certificate', () => ({ CHAT_TLS_CERT: file('site.crt'), CHAT_TLS_KEY: file('other.key') })],
    ['an encrypted key needs CHAT_TLS_KEY_PASSPHRASE', () => ({ CHAT_TLS_CERT: file('locked.crt'), CHAT_TLS_KEY: file('locked.key') })],
    ['CHAT_TLS_KEY_PASSPHRASE does not decrypt it', () => ({ CHAT_TLS_CERT: file('locked.crt'), CHAT_TLS_KEY: file('locked.key'), CHAT_TLS_KEY_PASSPHRASE: 'wrong' })],
    ['CHAT_TLS_KEY_PASSPHRASE is set but CHAT_TLS_KEY is not', () => ({ CHAT_TLS_KEY_PASSPHRASE: 'x' })],
  ])('refuses a bad pair with exit 2: %s', async (message, env) => {
    const r = await runCli([], env());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });
});
