// Identity: who a connection or HTTP request is. Auth mode `none` trusts ?user=&name= (the open-chat
// use: a nickname typed on entry); mode `jwt` verifies a token (HS256 secret, or RS256/ES256 public
// key) and refuses bad, expired, unsigned or wrongly signed tokens with a 401 before any upgrade.

import { createPublicKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { jwtVerify, errors as joseErrors } from 'jose';
import type { Config } from './config.ts';
import { ChatError } from './protocol/errors.ts';
import { truncate, wellFormed } from './protocol/text.ts';
import { USER_RE, USER_SHAPE } from './protocol/validate.ts';

export interface Identity {
  id: string;
  name: string;
  admin: boolean;
  /** Token expiry in ms since the epoch; 0 = none. */
  exp: number;
}

const MAX_NAME = 64;

/** Control characters and lone surrogates are refused in a display name; the rest is kept as typed. */
function printable(name: string): boolean {
  return !/[\u0000-\u001f\u007f]/.test(name) && wellFormed(name);
}

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
  private readonly key: Uint8Array | KeyObject | null;
  private readonly algorithms: string[];

  constructor(private readonly cfg: Config) {
    if (cfg.auth !== 'jwt') {
      this.key = null;
      this.algorithms = [];
    } else if (cfg.jwtSecret) {
      this.key = new TextEncoder().encode(cfg.jwtSecret);
      this.algorithms = ['HS256'];
    } else {
      this.key = createPublicKey(cfg.jwtPublicKey!);
      this.algorithms = this.key.asymmetricKeyType === 'ec' ? ['ES256'] : ['RS256'];
    }
  }

  /** Resolve who is asking; throws ChatError('unauthorized' | 'invalid'). */
  async identify(c: Credentials): Promise<Identity> {
    const params = new URLSearchParams(c.query);
    const bearer = /^Bearer\s+(\S+)$/i.exec(c.authorization)?.[1];
    if (this.cfg.adminToken !== null && bearer !== undefined && timingSafeEqualStr(bearer, this.cfg.adminToken)) {
      return { id: 'admin', name: 'admin', admin: true, exp: 0 };
    }
    if (this.cfg.auth === 'none') {
      const user = params.get('user');
      const name = params.get('name');
      if (user !== null && !USER_RE.test(user)) throw new ChatError('invalid', `user must match ${USER_SHAPE}`);
      const id = user ?? 'anon-' + randomBytes(6).toString('hex');
      return { id, name: checkName(name ?? id), admin: false, exp: 0 };
    }
    const token = bearer ?? params.get('token');
    if (!token) throw new ChatError('unauthorized', 'a JWT is required (?token= or Authorization: Bearer)');
    try {
      const { payload } = await jwtVerify(token, this.key!, { algorithms: this.algorithms });
      if (typeof payload.sub !== 'string' || !USER_RE.test(payload.sub)) throw new ChatError('unauthorized', 'the token has no usable sub claim');
      // A name claim longer than a display name is shortened; one that is not printable text is
      // the token issuer's mistake, refused as such rather than shown.
      const name = typeof payload.name === 'string' && payload.name.length > 0 ? truncate(payload.name, MAX_NAME) : payload.sub;
      if (!printable(name)) throw new ChatError('unauthorized', "the token's name claim must be printable text");
      return { id: payload.sub, name, admin: payload.role === 'admin', exp: typeof payload.exp === 'number' ? payload.exp * 1000 : 0 };
    } catch (err) {
      if (err instanceof ChatError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new ChatError('unauthorized', 'the token has expired');
      throw new ChatError('unauthorized', 'the token is invalid');
    }
  }
}
