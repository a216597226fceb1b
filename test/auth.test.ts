// Strict JWT identity: exp required, nbf/iat/exp with the clock tolerance, issuer and audience,
// the admin claim, and keys fetched by URL (a JWKS served by a local HTTP server, rotated, slow,
// failing). Real engine processes for what a client sees; the Authenticator alone for the rest.

import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Authenticator } from '../src/auth.ts';
import { describeConfig, loadConfig } from '../src/config.ts';
import { ChatError } from '../src/protocol/errors.ts';
import type { Frame } from './support/client.ts';
import { runCli, startEngine, type EngineProc } from './support/engine.ts';

const SECRET = 'auth-test-secret-that-is-long-enough-0123456789';
const HS = new TextEncoder().encode(SECRET);
const now = (): number => Math.floor(Date.now() / 1000);

type Claims = Omit<JWTPayload, 'exp'> & { exp?: number | null };

/** Sign claims; `exp` defaults to an hour from now, `exp: null` leaves it out. */
function hs256(claims: Claims): Promise<string> {
  const { exp, ...rest } = claims;
  const body = exp === null ? rest : { ...rest, exp: exp ?? now() + 3600 };
  return new SignJWT(body).setProtectedHeader({ alg: 'HS256' }).sign(HS);
}

interface Answer { status: number; body: Frame }

/** Poll an observable condition (bounded). */
async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An upgrade to /ws with this token: 101, or the refusal's status and JSON body. */
function upgrade(eng: EngineProc, token: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${eng.url}?token=${token}`, 'chat.v1.json');
    ws.once('open', () => { ws.close(); resolve({ status: 101, body: {} }); });
    ws.once('unexpected-response', (_req, resp) => {
      let text = '';
      resp.on('data', (d: Buffer) => { text += d.toString(); });
      resp.on('end', () => resolve({ status: resp.statusCode ?? 0, body: JSON.parse(text) as Frame }));
    });
    ws.once('error', reject);
  });
}

/** An HTTP API request with this token as the bearer. */
async function api(eng: EngineProc, token: string, method = 'GET', path = '/api/me/rooms', body?: unknown): Promise<Answer> {
  const r = await fetch(`${eng.http}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Frame };
}

/** A STOMP connection without identity on the upgrade; CONNECT carries the token. Resolves with the first frame. */
function stompConnect(eng: EngineProc, token: string): Promise<{ frame: string; closed: Promise<number> }> {
  const ws = new WebSocket(eng.url, 'v12.stomp');
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  return new Promise((resolve, reject) => {
    ws.once('open', () => ws.send(`CONNECT\naccept-version:1.2\nhost:x\nAuthorization:Bearer ${token}\n\n\0`));
    ws.once('message', (d: Buffer) => resolve({ frame: d.toString(), closed }));
    ws.once('error', reject);
  });
}

describe('strict JWT claims, against an engine', () => {
  let eng: EngineProc;
  const iss = 'https://issuer.example';
  const aud = 'chat';
  beforeAll(async () => {
    eng = await startEngine({
      CHAT_AUTH: 'jwt', CHAT_JWT_SECRET: SECRET, CHAT_JWT_ISSUER: iss, CHAT_JWT_AUDIENCE: 'chat, chat-mobile',
      CHAT_JWT_ADMIN_CLAIM: 'groups', CHAT_JWT_ADMIN_VALUE: 'chat-admins',
    });
  });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('accepts a token with exp, the issuer and one of the audiences (a string or an array)', async () => {
    for (const a of ['chat', 'chat-mobile', ['other', 'chat']]) {
      const t = await hs256({ sub: 'ok-user', iss, aud: a });
      expect((await upgrade(eng, t)).status, JSON.stringify(a)).toBe(101);
      expect((await api(eng, t)).status).toBe(200);
    }
  });

  it.each([
    ['no exp', { sub: 'u', iss, aud, exp: null }, /no exp claim/],
    ['exp beyond the tolerance', { sub: 'u', iss, aud, exp: now() - 60 }, /expired/],
    ['nbf in the future', { sub: 'u', iss, aud, nbf: now() + 120 }, /not valid yet/],
    ['iat in the future', { sub: 'u', iss, aud, iat: now() + 120 }, /issued in the future/],
    ['another issuer', { sub: 'u', iss: 'https://evil.example', aud }, /issuer \(iss\)/],
    ['no issuer', { sub: 'u', aud }, /issuer \(iss\)/],
    ['another audience', { sub: 'u', iss, aud: 'billing' }, /this service \(aud\)/],
    ['no audience', { sub: 'u', iss }, /this service \(aud\)/],
  ] as const)('refuses a token with %s: 401 on the upgrade and the API, ERROR on STOMP CONNECT', async (_what, claims, why) => {
    const t = await hs256({ ...claims });
    const up = await upgrade(eng, t);
    expect(up.status).toBe(401);
    expect(up.body.error).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(why) });
    const r = await api(eng, t);
    expect(r.status).toBe(401);
    expect(r.body.error.message).toMatch(why);
    const s = await stompConnect(eng, t);
    expect(s.frame).toMatch(/^ERROR\n/);
    expect(s.frame).toMatch(/\n\nunauthorized: /);
    expect(await s.closed).toBe(1008);
  });

  it('accepts nbf and exp within the clock tolerance (30s by default)', async () => {
    expect((await upgrade(eng, await hs256({ sub: 'skew1', iss, aud, nbf: now() + 10 }))).status).toBe(101);
    expect((await upgrade(eng, await hs256({ sub: 'skew2', iss, aud, exp: now() - 10 }))).status).toBe(101);
    expect((await upgrade(eng, await hs256({ sub: 'skew3', iss, aud, iat: now() + 10 }))).status).toBe(101);
  });

  it('the admin claim is a setting: its name and value, as a string or in an array', async () => {
    const create = async (claims: JWTPayload, id: string): Promise<number> =>
      (await api(eng, await hs256({ sub: 'boss', iss, aud, ...claims }), 'POST', '/api/rooms', { kind: 'public', id })).status;
    expect(await create({ groups: 'chat-admins' }, 'adm1')).toBe(201);
    expect(await create({ groups: ['staff', 'chat-admins'] }, 'adm2')).toBe(201);
    expect(await create({ groups: ['staff'] }, 'adm3')).toBe(403);
    expect(await create({ role: 'admin' }, 'adm4')).toBe(403); // the default claim means nothing here
    expect(await create({ groups: { 0: 'chat-admins' } }, 'adm5')).toBe(403);
  });
});

/** A JSON Web Key Set over node:http; `mode` makes it fail the ways a real endpoint fails. */
class JwksServer {
  keys: JWK[] = [];
  fetches = 0;
  mode: 'serve' | 'reset' | 'hang' | 'error' | 'garbage' = 'serve';
  private readonly hung: ServerResponse[] = [];
  private readonly server: Server = createServer((req, res) => {
    this.fetches++;
    if (this.mode === 'reset') return void req.socket.destroy();
    if (this.mode === 'hang') return void this.hung.push(res);
    if (this.mode === 'error') return void res.writeHead(500).end('down');
    if (this.mode === 'garbage') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
  });

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }

  async stop(): Promise<void> {
    for (const r of this.hung) r.destroy();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

interface SigningKey { kid: string; alg: string; privateKey: CryptoKey; jwk: JWK }

async function signingKey(kid: string, alg: 'RS256' | 'ES256' | 'EdDSA'): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

function signWith(k: SigningKey, sub: string, kid: string | undefined = k.kid): Promise<string> {
  return new SignJWT({ sub }).setProtectedHeader({ alg: k.alg, ...(kid === undefined ? {} : { kid }) }).setExpirationTime(now() + 3600).sign(k.privateKey);
}

describe('keys by URL (JWKS)', () => {
  const jwks = new JwksServer();
  let eng: EngineProc;
  let rsa: SigningKey;
  let ec: SigningKey;
  let ed: SigningKey;
  beforeAll(async () => {
    [rsa, ec, ed] = await Promise.all([signingKey('rsa-1', 'RS256'), signingKey('ec-1', 'ES256'), signingKey('ed-1', 'EdDSA')]);
    jwks.keys = [rsa.jwk, ec.jwk, ed.jwk];
    // Cooldown 0: a token with an unknown kid refetches at once (rotation without waiting).
    eng = await startEngine({ CHAT_AUTH: 'jwt', CHAT_JWT_JWKS_URL: await jwks.start(), CHAT_JWT_JWKS_COOLDOWN: '0', CHAT_JWT_JWKS_TIMEOUT: '300ms' });
  });
  afterAll(async () => {
    expect(await eng.stop()).toBe(0);
    await jwks.stop();
  });

  it('accepts RS256, ES256 and EdDSA tokens whose kid is in the set, on the upgrade and the API', async () => {
    for (const k of [rsa, ec, ed]) {
      const t = await signWith(k, `user-${k.kid}`);
      expect((await upgrade(eng, t)).status, k.alg).toBe(101);
      expect((await api(eng, t)).status, k.alg).toBe(200);
    }
  });

  it('refuses a token signed by another key (same kid, no kid), or with HS256, with 401', async () => {
    const impostor = await signingKey('rsa-1', 'RS256');
    for (const t of [await signWith(impostor, 'mallory'), await signWith(impostor, 'mallory', undefined), await new SignJWT({ sub: 'mallory' }).setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' }).setExpirationTime('1h').sign(HS)]) {
      const up = await upgrade(eng, t);
      expect(up.status).toBe(401);
      expect(up.body.error.code).toBe('unauthorized');
    }
    const unknown = await signWith(impostor, 'mallory', 'no-such-kid');
    expect((await upgrade(eng, unknown)).body.error).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/kid/) });
  });

  it('follows a key rotation: a token with the new kid is accepted once the set is refetched, the old kid is refused', async () => {
    const next = await signingKey('rsa-2', 'RS256');
    const before = jwks.fetches;
    jwks.keys = [next.jwk, ec.jwk, ed.jwk];
    expect((await upgrade(eng, await signWith(next, 'rotated'))).status).toBe(101);
    expect(jwks.fetches).toBeGreaterThan(before);
    expect((await upgrade(eng, await signWith(rsa, 'retired'))).status).toBe(401);
    jwks.keys = [rsa.jwk, next.jwk, ec.jwk, ed.jwk];
  });

  it.each(['reset', 'hang', 'error', 'garbage'] as const)('a key set that cannot be fetched (%s) answers 503 overloaded: upgrade, API and STOMP CONNECT', async (mode) => {
    const k = await signingKey(`fresh-${mode}`, 'ES256'); // an unknown kid: verifying it needs a fetch
    const t = await signWith(k, 'waiting');
    jwks.mode = mode;
    try {
      const up = await upgrade(eng, t);
      expect(up.status).toBe(503);
      expect(up.body.error).toMatchObject({ code: 'overloaded', message: expect.stringMatching(/retry later/) });
      const r = await api(eng, t);
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe('overloaded');
      const s = await stompConnect(eng, t);
      expect(s.frame).toMatch(/^ERROR\n/);
      expect(s.frame).toMatch(/\n\noverloaded: .*retry later/);
      expect(await s.closed).toBe(1008);
    } finally {
      jwks.mode = 'serve';
    }
    jwks.keys = [...jwks.keys, k.jwk];
    expect((await upgrade(eng, t)).status).toBe(101); // back: the same token is accepted
  });
});

describe('keys by URL: cold start and the refetch cooldown', () => {
  const jwks = new JwksServer();
  let eng: EngineProc;
  beforeAll(async () => {
    jwks.mode = 'reset'; // down before the engine ever fetched the set
    eng = await startEngine({ CHAT_AUTH: 'jwt', CHAT_JWT_JWKS_URL: await jwks.start(), CHAT_JWT_JWKS_TIMEOUT: '300ms' });
  });
  afterAll(async () => {
    expect(await eng.stop()).toBe(0);
    await jwks.stop();
  });

  it('503 while the set was never fetched, accepted once it is served; unknown kids within the cooldown do not refetch', async () => {
    const k = await signingKey('k1', 'ES256');
    jwks.keys = [k.jwk];
    const t = await signWith(k, 'cold');
    expect((await upgrade(eng, t)).status).toBe(503);
    expect((await api(eng, t)).status).toBe(503);
    await until(() => /key set cannot be fetched/.test(eng.stderr.join('')), 'the warning on stderr');
    jwks.mode = 'serve';
    const served = jwks.fetches;
    expect((await upgrade(eng, t)).status).toBe(101);
    expect(jwks.fetches).toBe(served + 1);
    for (let i = 0; i < 5; i++) {
      const stranger = await signingKey(`random-${i}`, 'ES256');
      expect((await upgrade(eng, await signWith(stranger, 'flood'))).status).toBe(401);
    }
    expect(jwks.fetches).toBe(served + 1); // the default 30 s cooldown: no refetch per unknown kid
  });
});

describe('Authenticator alone', () => {
  const jwtConfig = (env: Record<string, string> = {}) => loadConfig({ CHAT_AUTH: 'jwt', CHAT_JWT_SECRET: SECRET, ...env });
  const refusal = async (p: Promise<unknown>): Promise<ChatError> => {
    const err = await p.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ChatError);
    return err as ChatError;
  };
  const bearer = (t: string) => ({ query: '', authorization: `Bearer ${t}` });

  it("the identity's expiry is exp plus the tolerance", async () => {
    const exp = now() + 100;
    expect((await new Authenticator(jwtConfig()).identify(bearer(await hs256({ sub: 'e', exp })))).exp).toBe(exp * 1000 + 30_000);
    expect((await new Authenticator(jwtConfig({ CHAT_JWT_CLOCK_TOLERANCE: '5s' })).identify(bearer(await hs256({ sub: 'e', exp })))).exp).toBe(exp * 1000 + 5_000);
  });

  it('tolerance 0: a token that expired a second ago, or with nbf a second ahead, is refused', async () => {
    const auth = new Authenticator(jwtConfig({ CHAT_JWT_CLOCK_TOLERANCE: '0' }));
    expect((await refusal(auth.identify(bearer(await hs256({ sub: 'z', exp: now() - 1 }))))).message).toMatch(/expired/);
    expect((await refusal(auth.identify(bearer(await hs256({ sub: 'z', nbf: now() + 2 }))))).message).toMatch(/not valid yet/);
    expect((await refusal(auth.identify(bearer(await hs256({ sub: 'z', iat: now() + 2 }))))).message).toMatch(/issued in the future/);
    const ok = await auth.identify(bearer(await hs256({ sub: 'z', exp: now() + 5, nbf: now() - 1, iat: now() })));
    expect(ok.exp).toBeGreaterThan(Date.now());
  });

  it('every refusal is unauthorized with its reason; a malformed claim is named', async () => {
    const auth = new Authenticator(jwtConfig({ CHAT_JWT_AUDIENCE: 'a,b' }));
    const cases: [Claims, RegExp][] = [
      [{ sub: 'x', aud: 'a', exp: null }, /^the token has no exp claim; every token must expire$/],
      [{ sub: 'x', aud: 'a', exp: 'soon' as unknown as number }, /exp claim is malformed/],
      [{ sub: 'x', aud: 'c' }, /not meant for this service \(aud\)/],
      [{ sub: 'bad sub!', aud: 'b' }, /no usable sub/],
    ];
    for (const [claims, why] of cases) {
      const err = await refusal(auth.identify(bearer(await hs256(claims))));
      expect(err.code, JSON.stringify(claims)).toBe('unauthorized');
      expect(err.message, JSON.stringify(claims)).toMatch(why);
    }
  });

  it('admin: the default claim is role = admin; other values, shapes and types are not admin', async () => {
    const auth = new Authenticator(jwtConfig());
    const admin = async (claims: JWTPayload): Promise<boolean> => (await auth.identify(bearer(await hs256({ sub: 'a', ...claims })))).admin;
    expect(await admin({ role: 'admin' })).toBe(true);
    expect(await admin({ role: ['user', 'admin'] })).toBe(true);
    expect(await admin({ role: 'Admin' })).toBe(false);
    expect(await admin({ role: ['administrator'] })).toBe(false);
    expect(await admin({ role: true })).toBe(false);
    expect(await admin({ admin: 'admin' })).toBe(false);
    expect(await admin({})).toBe(false);
  });

  it('an Ed25519 public key verifies EdDSA tokens', async () => {
    const { publicKey, privateKey } = await generateKeyPair('EdDSA');
    const auth = new Authenticator(loadConfig({ CHAT_AUTH: 'jwt', CHAT_JWT_PUBLIC_KEY: await exportSPKI(publicKey) }));
    const t = await new SignJWT({ sub: 'ed' }).setProtectedHeader({ alg: 'EdDSA' }).setExpirationTime('1h').sign(privateKey);
    expect((await auth.identify(bearer(t))).id).toBe('ed');
    expect((await refusal(auth.identify(bearer(await hs256({ sub: 'ed' }))))).code).toBe('unauthorized');
  });

  it('a key set that fails is warned about once per outage, and once when it is back', async () => {
    const jwks = new JwksServer();
    const k = await signingKey('w1', 'ES256');
    jwks.keys = [k.jwk];
    jwks.mode = 'error';
    const warnings: string[] = [];
    const auth = new Authenticator(loadConfig({ CHAT_AUTH: 'jwt', CHAT_JWT_JWKS_URL: await jwks.start() }), (msg) => warnings.push(msg));
    try {
      const t = await signWith(k, 'w');
      for (let i = 0; i < 3; i++) expect((await refusal(auth.identify(bearer(t)))).code).toBe('overloaded');
      expect(jwks.fetches).toBe(3); // nothing cached yet: every token tries again
      expect(warnings).toEqual(['the JWT key set cannot be fetched; tokens are answered 503 until it can']);
      jwks.mode = 'serve';
      expect((await auth.identify(bearer(t))).id).toBe('w');
      expect(warnings).toHaveLength(2);
      expect(warnings[1]).toMatch(/fetched again/);
    } finally {
      await jwks.stop();
    }
  });
});

describe('JWT settings', () => {
  it.each([
    [{ CHAT_JWT_SECRET: SECRET, CHAT_JWT_JWKS_URL: 'https://keys.example/jwks.json' }, /exactly one key source.*CHAT_JWT_SECRET and CHAT_JWT_JWKS_URL/],
    [{ CHAT_JWT_JWKS_URL: 'http://keys.example/jwks.json' }, /CHAT_JWT_JWKS_URL must be an https:\/\/ URL/],
    [{ CHAT_JWT_JWKS_URL: 'keys.example' }, /CHAT_JWT_JWKS_URL/],
    [{ CHAT_JWT_SECRET: SECRET, CHAT_JWT_CLOCK_TOLERANCE: '1h' }, /CHAT_JWT_CLOCK_TOLERANCE must be 0 or a duration up to 10m/],
    [{ CHAT_JWT_SECRET: SECRET, CHAT_JWT_CLOCK_TOLERANCE: 'lots' }, /CHAT_JWT_CLOCK_TOLERANCE/],
    [{ CHAT_JWT_SECRET: SECRET, CHAT_JWT_JWKS_TIMEOUT: '10ms' }, /CHAT_JWT_JWKS_TIMEOUT/],
    [{ CHAT_JWT_SECRET: SECRET, CHAT_JWT_ADMIN_CLAIM: 'sub' }, /CHAT_JWT_ADMIN_CLAIM cannot be sub/],
    [{ CHAT_JWT_SECRET: SECRET, CHAT_JWT_ADMIN_VALUE: ' ' }, /CHAT_JWT_ADMIN_VALUE/],
  ])('refuses %j', (env, message) => {
    expect(() => loadConfig({ CHAT_AUTH: 'jwt', ...env })).toThrow(message);
  });

  it('parses audiences, tolerance and loopback key set URLs; describeConfig hides a password in the URL', () => {
    const c = loadConfig({ CHAT_AUTH: 'jwt', CHAT_JWT_JWKS_URL: 'http://u:hunter2@127.0.0.1:9/jwks', CHAT_JWT_AUDIENCE: ' chat , ,mobile', CHAT_JWT_CLOCK_TOLERANCE: '0' });
    expect(c.jwtAudience).toEqual(['chat', 'mobile']);
    expect(c.jwtClockToleranceMs).toBe(0);
    for (const url of ['http://localhost:8080/jwks', 'http://[::1]/jwks', 'https://keys.example/jwks']) {
      expect(loadConfig({ CHAT_AUTH: 'jwt', CHAT_JWT_JWKS_URL: url }).jwtJwksUrl).toBe(url);
    }
    expect(JSON.stringify(describeConfig(c))).not.toContain('hunter2');
  });

  it('the CLI exits 2 naming the key sources when two are set', async () => {
    const r = await runCli([], { CHAT_AUTH: 'jwt', CHAT_JWT_SECRET: SECRET, CHAT_JWT_JWKS_URL: 'https://keys.example/jwks.json' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/CHAT_JWT_SECRET.*CHAT_JWT_PUBLIC_KEY.*CHAT_JWT_JWKS_URL/);
  });
});
