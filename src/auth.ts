// Identity: who a connection or HTTP request is. Auth mode `none` trusts ?user=&name= (the open-chat
// use: a nickname typed on entry); mode `jwt` verifies a token (HS256 secret, RS256/ES256/EdDSA
// public key, or a key set fetched by URL) and its claims (exp required; nbf, iat, and iss/aud when
// configured; a clock tolerance on the times), and refuses bad ones with a 401 before any upgrade.
// A key set that cannot be fetched is the server's problem: 503 overloaded, never a 401.

import { createPublicKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { Config } from './config.ts';
import { ChatError } from './protocol/errors.ts';
import { printable, truncate } from './protocol/text.ts';
import { USER_RE, USER_SHAPE } from './protocol/validate.ts';

export interface Identity {
  id: string;
  name: string;
  admin: boolean;
  /**
   * When the token stops being accepted, in ms since the epoch: its exp plus the clock tolerance
   * (a connection accepted within the tolerance is not closed the moment it opens). 0 = never.
   */
  exp: number;
}

/** The algorithms a key set by URL may sign with: asymmetric only (a published key set holds no secret). */
const JWKS_ALGORITHMS = ['RS256', 'ES256', 'EdDSA', 'Ed25519'];

/** A key set fetch failed (down, slow, not 200, not a key set): the server's problem, not the token's. */
class KeySetUnavailable extends Error {
  override name = 'KeySetUnavailable';
}

/** The key source of mode jwt and the algorithms it verifies. */
type Verifier =
  | { kind: 'key'; key: Uint8Array | KeyObject; algorithms: string[] }
  | { kind: 'set'; getKey: JWTVerifyGetKey; algorithms: string[] };

/** The algorithm a PEM public key signs with, by its type. */
function keyAlgorithms(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'ec': return ['ES256'];
    case 'ed25519': return ['EdDSA', 'Ed25519'];
    default: return ['RS256'];
  }
}

/** The claim named by CHAT_JWT_ADMIN_CLAIM equals the admin value, or is an array holding it. */
function claimsAdmin(payload: JWTPayload, claim: string, value: string): boolean {
  const v = payload[claim];
  return v === value || (Array.isArray(v) && v.includes(value));
}

/** Why a token was refused, in words a client developer can act on. */
function refusal(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.reason === 'missing' && err.claim === 'exp') return 'the token has no exp claim; every token must expire';
    if (err.claim === 'nbf' && err.reason === 'check_failed') return 'the token is not valid yet (nbf is in the future)';
    if (err.claim === 'iss') return 'the token was not issued by the expected issuer (iss)';
    if (err.claim === 'aud') return 'the token is not meant for this service (aud)';
    return `the token's ${err.claim} claim is malformed`;
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) return 'no key of the key set matches the token (kid)';
  return 'the token is invalid';
}

const MAX_NAME = 64;

function checkName(name: string): string {
  if (name.length === 0 || name.length > MAX_NAME || !printable(name)) {
    throw new ChatError('invalid', `name must be 1..${MAX_NAME} printable characters`);
  }
  return name;
}

function timingSafeEqualStr(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface Credentials {
  /** Raw query string of the request (without '?'). */
  query: string;
  /** Value of the Authorization header, or ''. */
  authorization: string;
}

export class Authenticator {
  private readonly verifier: Verifier | null;
  private readonly options: JWTVerifyOptions;
  /** Since when the key set cannot be fetched (ms; 0 = it can): one warning per outage, not per token. */
  private keySetDownSince = 0;

  /** `warn` hears when a key set by URL becomes unreachable and when it is back. */
  constructor(private readonly cfg: Config, private readonly warn: (msg: string, fields: Record<string, unknown>) => void = () => {}) {
    this.options = {
      requiredClaims: ['exp'],
      clockTolerance: cfg.jwtClockToleranceMs / 1000,
      ...(cfg.jwtIssuer !== null ? { issuer: cfg.jwtIssuer } : {}),
      ...(cfg.jwtAudience.length > 0 ? { audience: cfg.jwtAudience } : {}),
    };
    if (cfg.auth !== 'jwt') {
      this.verifier = null;
    } else if (cfg.jwtSecret) {
      this.verifier = { kind: 'key', key: new TextEncoder().encode(cfg.jwtSecret), algorithms: ['HS256'] };
    } else if (cfg.jwtPublicKey) {
      const key = createPublicKey(cfg.jwtPublicKey);
      this.verifier = { kind: 'key', key, algorithms: keyAlgorithms(key) };
    } else {
      this.verifier = { kind: 'set', getKey: this.keySet(cfg), algorithms: JWKS_ALGORITHMS };
    }
  }

  /**
   * jose's remote key set (cached; an unknown kid refetches at most once per cooldown; each fetch
   * bounded by the timeout), with its failures told apart: a token whose kid no key matches is
   * the token's problem, anything else (refused, timed out, not 200, not a key set) the server's.
   */
  private keySet(cfg: Config): JWTVerifyGetKey {
    const remote = createRemoteJWKSet(new URL(cfg.jwtJwksUrl!), { timeoutDuration: cfg.jwtJwksTimeoutMs, cooldownDuration: cfg.jwtJwksCooldownMs });
    return async (header, token) => {
      try {
        const key = await remote(header, token);
        this.keySetUp();
        return key;
      } catch (err) {
        if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys || err instanceof joseErrors.JOSENotSupported) {
          this.keySetUp();
          throw err;
        }
        if (this.keySetDownSince === 0) {
          this.keySetDownSince = Date.now();
          this.warn('the JWT key set cannot be fetched; tokens are answered 503 until it can', { err: String(err), cause: String((err as { cause?: unknown }).cause ?? '') });
        }
        throw new KeySetUnavailable(String(err));
      }
    };
  }

  private keySetUp(): void {
    if (this.keySetDownSince === 0) return;
    this.warn('the JWT key set can be fetched again', { downMs: Date.now() - this.keySetDownSince });
    this.keySetDownSince = 0;
  }

  private verify(token: string, v: Verifier): Promise<{ payload: JWTPayload }> {
    const options = { ...this.options, algorithms: v.algorithms };
    return v.kind === 'key' ? jwtVerify(token, v.key, options) : jwtVerify(token, v.getKey, options);
  }

  /** Resolve who is asking; throws ChatError('unauthorized' | 'invalid' | 'overloaded'). */
  async identify(c: Credentials): Promise<Identity> {
    const params = new URLSearchParams(c.query);
    const bearer = /^Bearer\s+(\S+)$/i.exec(c.authorization)?.[1];
    if (this.cfg.adminToken !== null && bearer !== undefined && timingSafeEqualStr(bearer, this.cfg.adminToken)) {
      return { id: 'admin', name: 'admin', admin: true, exp: 0 };
    }
    if (this.verifier === null) {
      const user = params.get('user');
      const name = params.get('name');
      if (user !== null && !USER_RE.test(user)) throw new ChatError('invalid', `user must match ${USER_SHAPE}`);
      const id = user ?? 'anon-' + randomBytes(6).toString('hex');
      return { id, name: checkName(name ?? id), admin: false, exp: 0 };
    }
    const token = bearer ?? params.get('token');
    if (!token) throw new ChatError('unauthorized', 'a JWT is required (?token= or Authorization: Bearer)');
    let payload: JWTPayload;
    try {
      payload = (await this.verify(token, this.verifier)).payload;
    } catch (err) {
      if (err instanceof KeySetUnavailable) throw new ChatError('overloaded', 'the keys that verify tokens cannot be fetched right now; retry later');
      throw new ChatError('unauthorized', refusal(err));
    }
    const tolerance = this.cfg.jwtClockToleranceMs;
    // jose checks iat only against a maximum age; one from the future is refused here.
    if (typeof payload.iat === 'number' && payload.iat * 1000 > Date.now() + tolerance) throw new ChatError('unauthorized', 'the token was issued in the future (iat)');
    if (typeof payload.sub !== 'string' || !USER_RE.test(payload.sub)) throw new ChatError('unauthorized', 'the token has no usable sub claim');
    // A name claim longer than a display name is shortened; one that is not printable text is
    // the token issuer's mistake, refused as such rather than shown.
    const name = typeof payload.name === 'string' && payload.name.length > 0 ? truncate(payload.name, MAX_NAME) : payload.sub;
    if (!printable(name)) throw new ChatError('unauthorized', "the token's name claim must be printable text");
    return {
      id: payload.sub,
      name,
      admin: claimsAdmin(payload, this.cfg.jwtAdminClaim, this.cfg.jwtAdminValue),
      exp: payload.exp! * 1000 + tolerance, // exp is a required claim
    };
  }
}
