// The one place that reads settings. Environment variables, mirrored by CLI flags, and an env
// file (`--env-file FILE`); a flag wins over the environment, the environment over the file.
// Validated once at start-up; a bad value throws ConfigError naming the setting, and the CLI
// prints it and exits 2. Everything downstream takes the typed, already-checked Config.

import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { EnvFileError, parseEnvFile } from './env-file.ts';
import { parseCidr } from './net/address.ts';
import { ENTRY_BYTES } from './core/window-entry.ts';
import { checkTlsFiles } from './tls.ts';

export type Delivery = 'after-commit' | 'immediate';
export type SqliteSync = 'normal' | 'full';
export type AuthMode = 'none' | 'jwt';

export type StoreUrl =
  | { kind: 'sqlite'; path: string }
  | { kind: 'mysql'; url: string };

export interface Config {
  port: number;
  host: string;
  store: StoreUrl;
  sqliteSync: SqliteSync;
  delivery: Delivery;
  auth: AuthMode;
  jwtSecret: string | null;
  jwtPublicKey: string | null;
  allowedOrigins: string[];
  /** Retention in ms; 0 = keep forever. */
  retentionMs: number;
  maxPayload: number;
  redisUrl: string | null;
  /** 0..1023, the TSID node bits; unique among live nodes of a cluster. */
  nodeId: number;
  /** Prefix of every Redis key and channel of this cluster. */
  redisPrefix: string;
  /** A node silent this long is dead (its presence is reaped). */
  nodeTimeoutMs: number;
  /** How long a seq gap waits for the bus before it is filled from the store. */
  gapWaitMs: number;
  /** Messages of each active room held on the front thread. */
  window: number;
  bufferMaxMessages: number;
  commitPaceMs: number;
  bufferMaxBytes: number;
  maxBackpressure: number;
  idleTimeout: number;
  readers: number;
  /** SQLite: how long a stored (sender, cid) is recognized, so a retry gets the original ack. */
  dedupeWindowMs: number;
  /** SQLite: run a PASSIVE checkpoint on a reader thread this often; 0 = only the writer's own. */
  checkpointMs: number;
  recoveryMax: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Static bearer token of the host app's server API; null = only JWTs with role admin. */
  adminToken: string | null;
  /** Sends per second per connection (token bucket refill); 0 = no limit. */
  sendRate: number;
  sendBurst: number;
  maxRoomsPerConn: number;
  maxConnsPerUser: number;
  /** Which rooms get ENTER/QUIT messages. */
  enterQuit: 'public' | 'all' | 'off';
  /** Read receipts in public rooms too (group and direct rooms always have them). */
  publicReceipts: boolean;
  /** Extra WebSocket path where STOMP is the default subprotocol (Spring apps use /ws-stomp). */
  stompPath: string;
  stompAppPrefix: string;
  stompBrokerPrefix: string;
  /** Test hook: the actor sleeps this long before each commit (a slow disk). */
  testCommitDelayMs: number;
  // Quotas, enforced by the persistence actor against the store (shared by a cluster).
  /** Rooms one user may create (POST /api/rooms, or a new public room by using it in mode none). */
  maxRoomsPerUser: number;
  /** Members of one group room. */
  maxMembers: number;
  /** Users one user may block. */
  maxBlocks: number;
  /** Test hooks: the /_test/ routes that hold commits, reads and joins (src/test-hooks.ts). */
  testHooks: boolean;
  // ---- limits against hostile clients (src/core/limits.ts, src/net/caps.ts) ----
  /** Largest message text, as bytes of its JSON encoding (what is stored and sent). */
  maxTextBytes: number;
  /** What one room's hot window may hold, in entryBytes (src/core/window.ts). */
  windowBytes: number;
  /** What all hot windows together may hold, in entryBytes. */
  windowsMaxBytes: number;
  /** Joins and leaves per second per connection, and the burst. */
  joinRate: number;
  joinBurst: number;
  /** Joins and leaves of one room per second per connection (after its first join), and the burst. */
  roomJoinRate: number;
  roomJoinBurst: number;
  /** History pages and read markers per second per connection, and the burst. */
  historyRate: number;
  historyBurst: number;
  /** Typing events per second per connection, and the burst. */
  typingRate: number;
  typingBurst: number;
  /** Bytes of messages (as measured for the write buffer) per second per connection, and the burst. */
  sendBytesRate: number;
  sendBytesBurst: number;
  /** Bytes of messages per second from one client address, all its connections together. */
  addressBytesRate: number;
  /** Bytes of frames on the wire per second per connection, charged before decoding (0 = no limit). */
  inboundBytesRate: number;
  /** A user's connections together get this many times one connection's rates and bursts. */
  userRateFactor: number;
  /** HTTP API requests per second per client address, and the burst. */
  httpRate: number;
  httpBurst: number;
  /** Open WebSocket connections, all clients together. */
  maxConns: number;
  /** Open WebSocket connections from one client address. */
  maxConnsPerIp: number;
  /** Proxies whose X-Forwarded-For is believed: exact addresses or CIDR blocks. */
  trustProxy: string[];
  /** A connection that has not said who it is (STOMP CONNECT) within this long is closed. */
  authTimeoutMs: number;
  /** CHAT_AUTH=none: which rooms guests may use (group and direct rooms protect nothing there). */
  guestRooms: 'all' | 'public';

  /** JWT (mode jwt): a key set fetched by URL instead of a secret or a public key. */
  jwtJwksUrl: string | null;
  jwtJwksTimeoutMs: number;
  /** An unknown `kid` refetches the key set at most this often. */
  jwtJwksCooldownMs: number;
  /** Required `iss` when set. */
  jwtIssuer: string | null;
  /** The token's `aud` must name one of these; empty = not checked. */
  jwtAudience: string[];
  /** Clock skew allowed on exp, nbf and iat; the connection also closes this long after exp. */
  jwtClockToleranceMs: number;
  /** A token is an admin when this claim equals jwtAdminValue or is an array holding it. */
  jwtAdminClaim: string;
  jwtAdminValue: string;
  /** TLS: PEM certificate (chain) and key files; both set = serve https:// and wss:// (SSLApp). */
  tlsCert: string | null;
  tlsKey: string | null;
  tlsKeyPassphrase: string | null;
  // ---- webhooks: events for the host app (docs/webhooks.md) ----
  /** Where events are POSTed; null = no events are written at all. */
  webhookUrl: string | null;
  /** The HMAC-SHA256 key of X-Chat-Signature. */
  webhookSecret: string | null;
  /** message.created events for public rooms too. */
  webhookPublic: boolean;
  /** Events per request at most. */
  webhookBatch: number;
  /** A request unanswered this long is a failed attempt (retried). */
  webhookTimeoutMs: number;
  /** Attempts of one event before it is dead-lettered. */
  webhookMaxAttempts: number;
  /** The first retry's pause; it doubles (with jitter) up to webhookRetryMaxMs. */
  webhookRetryMs: number;
  webhookRetryMaxMs: number;
  /** Delivered and dead-lettered events are kept this long (replay), then deleted. */
  webhookKeepMs: number;
  /** Pending events at most; past it new events go straight to the dead-letter list, counted. */
  webhookMaxPending: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

interface Setting<K extends keyof Config> {
  key: K;
  env: string;
  flag: string;
  def: string;
  help: string;
  parse: (raw: string, name: string) => Config[K];
}

/** A rate: a decimal number of operations per second (0.5 = one every two seconds). */
function rate(max: number) {
  return (raw: string, name: string): number => {
    if (!/^\d+(\.\d+)?$/.test(raw.trim())) throw new ConfigError(`${name} must be a number of operations per second like 50 or 0.5, got "${raw}"`);
    const n = Number(raw);
    if (n > max) throw new ConfigError(`${name} must be at most ${max}, got ${n}`);
    return n;
  };
}

function int(min: number, max: number) {
  return (raw: string, name: string): number => {
    if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

function oneOf<T extends string>(...values: T[]) {
  return (raw: string, name: string): T => {
    const v = raw.trim().toLowerCase() as T;
    if (!values.includes(v)) throw new ConfigError(`${name} must be one of ${values.join(', ')}, got "${raw}"`);
    return v;
  };
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20 };

function bytes(min: number, max: number) {
  return (raw: string, name: string): number => {
    const m = /^(\d+)\s*([a-z]*)$/i.exec(raw.trim());
    const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
    if (!m || unit === undefined) throw new ConfigError(`${name} must be a size like 65536, 64k or 1m, got "${raw}"`);
    const n = Number(m[1]) * unit;
    if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max} bytes, got ${n}`);
    return n;
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30d`, `12h`, `15m`, `90s`; empty = 0 (forever). */
export function parseDuration(raw: string, name: string): number {
  const v = raw.trim();
  if (v === '') return 0;
  const m = /^(\d+)\s*(ms|s|m|h|d)$/.exec(v);
  if (!m || Number(m[1]) === 0) throw new ConfigError(`${name} must be a duration like 30d, 12h, 15m or 90s (or empty for forever), got "${raw}"`);
  return Number(m[1]) * DURATION_UNITS[m[2]];
}

function parseStore(raw: string, name: string): StoreUrl {
  const v = raw.trim();
  if (v.startsWith('sqlite:')) {
    const path = v.slice('sqlite:'.length);
    if (path === '') throw new ConfigError(`${name}: sqlite: needs a file path, e.g. sqlite:./data/chat.db`);
    // The reader threads and the checkpointer open the file by its path: an in-memory database
    // would be a separate empty one on each connection (and every message is gone at exit).
    if (path === ':memory:' || /^file:.*mode=memory/.test(path)) {
      throw new ConfigError(`${name}: an in-memory SQLite database cannot be shared with the reader threads; use a file (on tmpfs for a throwaway store, e.g. sqlite:/dev/shm/chat.db)`);
    }
    return { kind: 'sqlite', path };
  }
  if (v.startsWith('mysql://')) {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw new ConfigError(`${name}: "${redactUrl(v)}" is not a valid mysql:// URL`);
    }
    if (!u.hostname || u.pathname.length < 2) throw new ConfigError(`${name}: a mysql URL needs a host and a database, e.g. mysql://root@127.0.0.1:3306/test`);
    return { kind: 'mysql', url: v };
  }
  throw new ConfigError(`${name} must be sqlite:<path> or mysql://user:pass@host:port/db, got "${redactUrl(v)}"`);
}

function pathSetting(raw: string, name: string): string {
  const v = raw.trim();
  if (!/^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/.test(v)) throw new ConfigError(`${name} must be a path like /ws-stomp (no trailing slash), got "${raw}"`);
  return v;
}

function nullable(raw: string): string | null {
  return raw.trim() === '' ? null : raw;
}

function origins(raw: string, name: string): string[] {
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const o of list) {
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      throw new ConfigError(`${name}: "${o}" is not an origin like https://chat.example.com`);
    }
    if (u.origin !== o) throw new ConfigError(`${name}: "${o}" is not an exact origin (scheme://host[:port], no path or slash); did you mean "${u.origin}"?`);
  }
  return list;
}

function redisUrl(raw: string, name: string): string | null {
  const v = raw.trim();
  if (v === '') return null;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(`${name} must be a URL like redis://127.0.0.1:6379, got "${redactUrl(raw)}"`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new ConfigError(`${name} must start with redis:// or rediss://, got "${redactUrl(raw)}"`);
  return v;
}

/** Proxy addresses: IPv4/IPv6 addresses, optionally with a /prefix (checked by net/address.ts). */
function proxies(raw: string, name: string): string[] {
  const list = raw.split(',').map((v) => v.trim()).filter(Boolean);
  for (const p of list) {
    if (parseCidr(p) === null) throw new ConfigError(`${name}: "${p}" is not an IP address or CIDR block like 10.0.0.0/8`);
  }
  return list;
}

function host(raw: string, name: string): string {
  const v = raw.trim();
  if (!/^[A-Za-z0-9.:-]+$/.test(v)) throw new ConfigError(`${name} must be an IP address or host name, got "${raw}"`);
  return v;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** A URL setting: empty = unset (null); else it must parse and pass `ok`, or `must` says why not. */
function urlSetting(ok: (u: URL) => boolean, must: string) {
  return (raw: string, name: string): string | null => {
    const v = raw.trim();
    if (v === '') return null;
    let u: URL | null = null;
    try {
      u = new URL(v);
    } catch { /* refused below */ }
    if (u !== null && ok(u)) return v;
    throw new ConfigError(`${name} must be ${must}, got "${redactUrl(v)}"`);
  };
}

/** A key set URL: https, or plain http only to this machine (keys must not cross a network in clear). */
const jwksUrl = urlSetting((u) => u.protocol === 'https:' || (u.protocol === 'http:' && isLoopback(u.hostname)),
  'an https:// URL (http:// only to a loopback address such as 127.0.0.1)');

const webhookUrl = urlSetting((u) => (u.protocol === 'https:' || u.protocol === 'http:') && u.username === '' && u.password === '',
  'an http:// or https:// URL without credentials in it');

function claimText(raw: string, name: string): string {
  const v = raw.trim();
  if (v.length === 0 || v.length > 256 || /[\u0000-\u001f\u007f]/.test(v)) throw new ConfigError(`${name} must be 1..256 printable characters, got "${raw}"`);
  return v;
}

/** Registered claims that decide validity or identity; none of them can also mean "admin". */
const REGISTERED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'name'];

function boundedDuration(min: number, max: number, range: string, allowZero: boolean) {
  return (raw: string, name: string): number => {
    if (raw.trim() === '') throw new ConfigError(`${name} must be ${range}, got an empty value`);
    const ms = allowZero && /^0\s*(ms|s|m|h|d)?$/.test(raw.trim()) ? 0 : parseDuration(raw, name);
    if ((ms !== 0 || !allowZero) && (ms < min || ms > max)) throw new ConfigError(`${name} must be ${range}, got "${raw}"`);
    return ms;
  };
}

/** Hide a password in a URL before it is printed anywhere. */
export function redactUrl(url: string): string {
  let u: URL | null = null;
  try {
    u = new URL(url);
  } catch {
    // not a URL: below
  }
  // An '@' after the host means a raw '/' (or '?', '#') in the password ended the host early.
  if (u !== null && !`${u.pathname}${u.search}${u.hash}`.includes('@')) {
    if (u.password === '') return url;
    u.password = '***';
    return u.href;
  }
  // Hide everything from `//` to the last `@`, wherever the password ends.
  return url.replace(/\/\/.*@/s, '//***@');
}

/** A path to a file this process can read (null when empty). */
function readableFile(raw: string, name: string): string | null {
  const v = raw.trim();
  if (v === '') return null;
  try {
    if (!statSync(v).isFile()) throw new ConfigError(`${name}: ${v} is not a file`);
    closeSync(openSync(v, 'r'));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${name}: cannot read ${v} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return v;
}

// Order is the order of --help.
const SETTINGS: Setting<keyof Config>[] = [
  { key: 'port', env: 'CHAT_PORT', flag: '--port', def: '8080', help: 'listen port (0 = any free port, printed on start)', parse: int(0, 65535) },
  { key: 'host', env: 'CHAT_HOST', flag: '--host', def: '0.0.0.0', help: 'listen address', parse: host },
  { key: 'store', env: 'CHAT_STORE', flag: '--store', def: 'sqlite:./data/chat.db', help: 'sqlite:<path> or mysql://user:pass@host:port/db', parse: parseStore },
  { key: 'sqliteSync', env: 'CHAT_SQLITE_SYNC', flag: '--sqlite-sync', def: 'normal', help: 'normal (survives a process crash) or full (also power loss)', parse: oneOf('normal', 'full') },
  { key: 'delivery', env: 'CHAT_DELIVERY', flag: '--delivery', def: 'after-commit', help: 'after-commit (deliver once stored) or immediate (deliver on acceptance, ack on commit)', parse: oneOf('after-commit', 'immediate') },
  { key: 'auth', env: 'CHAT_AUTH', flag: '--auth', def: 'none', help: 'none (?user=&name=) or jwt', parse: oneOf('none', 'jwt') },
  { key: 'jwtSecret', env: 'CHAT_JWT_SECRET', flag: '--jwt-secret', def: '', help: 'HS256 secret (auth jwt)', parse: nullable },
  { key: 'jwtPublicKey', env: 'CHAT_JWT_PUBLIC_KEY', flag: '--jwt-public-key', def: '', help: 'PEM public key for RS256/ES256/EdDSA (auth jwt)', parse: nullable },
  { key: 'jwtJwksUrl', env: 'CHAT_JWT_JWKS_URL', flag: '--jwt-jwks-url', def: '', help: 'URL of a JSON Web Key Set with RS256/ES256/EdDSA keys (auth jwt): https://, or http:// to a loopback address', parse: jwksUrl },
  { key: 'jwtJwksTimeoutMs', env: 'CHAT_JWT_JWKS_TIMEOUT', flag: '--jwt-jwks-timeout', def: '5s', help: 'longest wait for the key set; past it the client gets 503 overloaded', parse: boundedDuration(100, 60_000, 'a duration from 100ms to 60s', false) },
  { key: 'jwtJwksCooldownMs', env: 'CHAT_JWT_JWKS_COOLDOWN', flag: '--jwt-jwks-cooldown', def: '30s', help: 'a token with an unknown kid refetches the key set at most this often (0 = every time)', parse: boundedDuration(1, 3_600_000, '0 or a duration up to 1h', true) },
  { key: 'jwtIssuer', env: 'CHAT_JWT_ISSUER', flag: '--jwt-issuer', def: '', help: 'required iss claim of every token; empty = not checked', parse: (raw, name) => (raw.trim() === '' ? null : claimText(raw, name)) },
  { key: 'jwtAudience', env: 'CHAT_JWT_AUDIENCE', flag: '--jwt-audience', def: '', help: "comma-separated audiences; a token's aud must name one of them; empty = not checked", parse: (raw, name) => raw.split(',').map((a) => a.trim()).filter(Boolean).map((a) => claimText(a, name)) },
  { key: 'jwtClockToleranceMs', env: 'CHAT_JWT_CLOCK_TOLERANCE', flag: '--jwt-clock-tolerance', def: '30s', help: 'clock skew allowed on exp, nbf and iat; a connection closes this long after exp', parse: boundedDuration(1, 600_000, '0 or a duration up to 10m', true) },
  { key: 'jwtAdminClaim', env: 'CHAT_JWT_ADMIN_CLAIM', flag: '--jwt-admin-claim', def: 'role', help: 'claim that makes a token an admin (equal to CHAT_JWT_ADMIN_VALUE, or an array holding it)', parse: (raw, name) => { const v = claimText(raw, name); if (REGISTERED_CLAIMS.includes(v)) throw new ConfigError(`${name} cannot be ${v}: it is a claim with its own meaning (use a claim of your own, e.g. role)`); return v; } },
  { key: 'jwtAdminValue', env: 'CHAT_JWT_ADMIN_VALUE', flag: '--jwt-admin-value', def: 'admin', help: 'value of CHAT_JWT_ADMIN_CLAIM that makes a token an admin', parse: claimText },
  { key: 'allowedOrigins', env: 'CHAT_ALLOWED_ORIGINS', flag: '--allowed-origins', def: '', help: 'comma-separated exact origins allowed to open a WebSocket; empty = any', parse: origins },
  { key: 'retentionMs', env: 'CHAT_RETENTION', flag: '--retention', def: '', help: 'keep messages this long (30d, 12h, 15m, 90s); empty = forever', parse: parseDuration },
  { key: 'maxPayload', env: 'CHAT_MAX_PAYLOAD', flag: '--max-payload', def: '65536', help: 'largest accepted frame in bytes', parse: bytes(512, 16 << 20) },
  { key: 'redisUrl', env: 'CHAT_REDIS_URL', flag: '--redis-url', def: '', help: 'redis://host:port: run as one node of a cluster (needs a mysql:// CHAT_STORE and CHAT_NODE_ID)', parse: redisUrl },
  { key: 'nodeId', env: 'CHAT_NODE_ID', flag: '--node-id', def: '', help: "this node's id, 0..1023, unique among live nodes (the TSID node bits); default 0 on a single node", parse: (raw, name) => (raw.trim() === '' ? -1 : int(0, 1023)(raw, name)) },
  { key: 'redisPrefix', env: 'CHAT_REDIS_PREFIX', flag: '--redis-prefix', def: 'chat', help: 'prefix of every Redis key and channel (several clusters can share one Redis)', parse: (raw, name) => { if (!/^[A-Za-z0-9._:-]{1,64}$/.test(raw)) throw new ConfigError(`${name} must be 1..64 of [A-Za-z0-9._:-], got "${raw}"`); return raw; } },
  { key: 'nodeTimeoutMs', env: 'CHAT_NODE_TIMEOUT', flag: '--node-timeout', def: '5s', help: 'a cluster node silent this long is dead: its presence is reaped (QUIT)', parse: (raw, name) => { const ms = parseDuration(raw, name); if (ms < 1000 || ms > 600_000) throw new ConfigError(`${name} must be between 1s and 10m, got "${raw}"`); return ms; } },
  { key: 'gapWaitMs', env: 'CHAT_GAP_WAIT', flag: '--gap-wait', def: '200ms', help: 'how long a seq gap waits for the bus before it is filled from the store', parse: (raw, name) => { const ms = parseDuration(raw, name); if (ms < 1 || ms > 60_000) throw new ConfigError(`${name} must be between 1ms and 60s, got "${raw}"`); return ms; } },
  { key: 'window', env: 'CHAT_WINDOW', flag: '--window', def: '200', help: 'messages of each active room kept hot on the front thread', parse: int(100, 100_000) },
  { key: 'bufferMaxMessages', env: 'CHAT_BUFFER_MAX_MESSAGES', flag: '--buffer-max-messages', def: '50000', help: 'write buffer cap in messages; past it sends get overloaded', parse: int(1, 10_000_000) },
  { key: 'commitPaceMs', env: 'CHAT_COMMIT_PACE_MS', flag: '--commit-pace-ms', def: '0', help: 'under load (the previous group commit held 32 messages or more), start the next one no sooner than this many ms after it: fewer, larger commits write fewer pages per message; 0 = back to back', parse: int(0, 1000) },
  { key: 'bufferMaxBytes', env: 'CHAT_BUFFER_MAX_BYTES', flag: '--buffer-max-bytes', def: '64m', help: 'write buffer cap in bytes of message text; past it sends get overloaded', parse: bytes(1024, 4096 * 1024 * 1024) },
  { key: 'maxBackpressure', env: 'CHAT_MAX_BACKPRESSURE', flag: '--max-backpressure', def: '1m', help: 'per-connection send buffer; a connection past it is closed as a slow consumer', parse: bytes(1024, 1024 << 20) },
  { key: 'idleTimeout', env: 'CHAT_IDLE_TIMEOUT', flag: '--idle-timeout', def: '120', help: 'seconds without traffic before a connection is closed (pings are sent automatically); 0 = never', parse: (raw, name) => { const n = int(0, 960)(raw, name); if (n !== 0 && (n < 8 || n % 4 !== 0)) throw new ConfigError(`${name} must be 0 or a multiple of 4 of at least 8 (a uWebSockets.js rule), got ${n}`); return n; } },
  { key: 'checkpointMs', env: 'CHAT_SQLITE_CHECKPOINT', flag: '--sqlite-checkpoint', def: '250ms', help: 'SQLite: copy committed WAL pages into the database file this often, on a reader thread (0 = only when the WAL reaches 10,000 pages, in the actor, stalling commits)', parse: (raw, name) => { const ms = raw.trim() === '0' ? 0 : parseDuration(raw, name); if (ms !== 0 && (ms < 10 || ms > 60_000)) throw new ConfigError(`${name} must be 0 or between 10ms and 60s, got "${raw}"`); return ms; } },
  { key: 'dedupeWindowMs', env: 'CHAT_DEDUPE_WINDOW', flag: '--dedupe-window', def: '5m', help: 'SQLite: a retried send (same sender and cid) stored this long ago or less gets the original ack; an older one is stored again. Keep it above the clients\' maxPendingAge (2m by default)', parse: boundedDuration(1000, 86_400_000, 'a duration from 1s to 24h', false) },
  { key: 'readers', env: 'CHAT_READERS', flag: '--readers', def: '1', help: 'reader threads for history pages that touch the disk', parse: int(1, 64) },
  { key: 'recoveryMax', env: 'CHAT_RECOVERY_MAX', flag: '--recovery-max', def: '20000', help: 'most messages a join with since replays; past it recovered:false', parse: int(1, 1_000_000) },
  { key: 'logLevel', env: 'CHAT_LOG_LEVEL', flag: '--log-level', def: 'info', help: 'debug, info, warn, error or silent', parse: oneOf('debug', 'info', 'warn', 'error', 'silent') },
  { key: 'adminToken', env: 'CHAT_ADMIN_TOKEN', flag: '--admin-token', def: '', help: 'bearer token of the host app server API (>= 16 chars); empty = JWT role admin only', parse: (raw, name) => { const v = nullable(raw); if (v !== null && v.length < 16) throw new ConfigError(`${name} must be at least 16 characters`); return v; } },
  { key: 'sendRate', env: 'CHAT_SEND_RATE', flag: '--send-rate', def: '50', help: 'sends per second per connection before rate_limited (token bucket); 0 = no limit', parse: rate(1_000_000) },
  { key: 'sendBurst', env: 'CHAT_SEND_BURST', flag: '--send-burst', def: '100', help: 'burst size of the send token bucket', parse: int(1, 1_000_000) },
  { key: 'maxRoomsPerConn', env: 'CHAT_MAX_ROOMS_PER_CONN', flag: '--max-rooms-per-conn', def: '200', help: 'rooms one connection may join', parse: int(1, 100_000) },
  { key: 'maxConnsPerUser', env: 'CHAT_MAX_CONNS_PER_USER', flag: '--max-conns-per-user', def: '20', help: 'simultaneous connections of one user id', parse: int(1, 100_000) },
  { key: 'enterQuit', env: 'CHAT_ENTER_QUIT', flag: '--enter-quit', def: 'public', help: 'ENTER/QUIT messages in: public rooms, all rooms, or off', parse: oneOf('public', 'all', 'off') },
  { key: 'publicReceipts', env: 'CHAT_PUBLIC_RECEIPTS', flag: '--public-receipts', def: 'off', help: 'read receipts (joined.reads, receipt frames) in public rooms too: on or off; group and direct rooms always have them', parse: (raw, name) => oneOf('on', 'off')(raw, name) === 'on' },
  { key: 'stompPath', env: 'CHAT_STOMP_PATH', flag: '--stomp-path', def: '/ws-stomp', help: 'extra WebSocket path for STOMP clients (STOMP is also spoken on /ws)', parse: pathSetting },
  { key: 'stompAppPrefix', env: 'CHAT_STOMP_APP_PREFIX', flag: '--stomp-app-prefix', def: '/app', help: 'STOMP application destination prefix (SEND), e.g. /app or /pub', parse: pathSetting },
  { key: 'stompBrokerPrefix', env: 'CHAT_STOMP_BROKER_PREFIX', flag: '--stomp-broker-prefix', def: '/topic', help: 'STOMP broker destination prefix (SUBSCRIBE), e.g. /topic or /sub', parse: pathSetting },
  { key: 'testHooks', env: 'CHAT_TEST_HOOKS', flag: '--test-hooks', def: '0', help: 'test hook: 1 serves /_test/ routes that hold commits, reads and joins and collect every heap (never in production)', parse: (raw, name) => oneOf('0', '1')(raw, name) === '1' },
  { key: 'testCommitDelayMs', env: 'CHAT_TEST_COMMIT_DELAY_MS', flag: '--test-commit-delay-ms', def: '0', help: 'test hook: sleep this long before every commit (simulates a slow disk)', parse: int(0, 60_000) },
  // Limits against hostile clients: each has a default a person chatting never meets.
  { key: 'maxTextBytes', env: 'CHAT_MAX_TEXT_BYTES', flag: '--max-text-bytes', def: '16k', help: 'largest message text, in bytes of its JSON encoding (what is stored and sent); past it too_large', parse: bytes(64, 16 << 20) },
  { key: 'windowBytes', env: 'CHAT_WINDOW_BYTES', flag: '--window-bytes', def: '256k', help: `memory one room's hot window may take on the front thread: each message's JSON bytes plus ${ENTRY_BYTES} (older pages are read from the store)`, parse: bytes(4096, 1 << 30) },
  { key: 'windowsMaxBytes', env: 'CHAT_WINDOWS_MAX_BYTES', flag: '--windows-max-bytes', def: '128m', help: `memory all hot windows together may take (each message's JSON bytes plus ${ENTRY_BYTES}); past it idle rooms go first, then the growing room trims its own`, parse: bytes(64 << 10, 64 * 1024 * 1024 * 1024) },
  { key: 'joinRate', env: 'CHAT_JOIN_RATE', flag: '--join-rate', def: '5', help: 'joins and leaves per second per connection before rate_limited; 0 = no limit', parse: rate(1_000_000) },
  { key: 'joinBurst', env: 'CHAT_JOIN_BURST', flag: '--join-burst', def: '400', help: 'burst of the join/leave token bucket (a reconnect rejoins up to CHAT_MAX_ROOMS_PER_CONN rooms at once)', parse: int(1, 1_000_000) },
  { key: 'roomJoinRate', env: 'CHAT_ROOM_JOIN_RATE', flag: '--room-join-rate', def: '1', help: 'joins and leaves of one room per second per connection, after its first join (a join/leave loop posts an ENTER and a QUIT each cycle); 0 = no limit', parse: rate(1_000_000) },
  { key: 'roomJoinBurst', env: 'CHAT_ROOM_JOIN_BURST', flag: '--room-join-burst', def: '20', help: 'burst of the per-room join/leave token bucket', parse: int(1, 1_000_000) },
  { key: 'historyRate', env: 'CHAT_HISTORY_RATE', flag: '--history-rate', def: '20', help: 'history pages and read markers per second per connection; 0 = no limit', parse: rate(1_000_000) },
  { key: 'historyBurst', env: 'CHAT_HISTORY_BURST', flag: '--history-burst', def: '50', help: 'burst of the history/read token bucket', parse: int(1, 1_000_000) },
  { key: 'typingRate', env: 'CHAT_TYPING_RATE', flag: '--typing-rate', def: '1', help: 'typing events per second per connection; 0 = no limit', parse: rate(1_000_000) },
  { key: 'typingBurst', env: 'CHAT_TYPING_BURST', flag: '--typing-burst', def: '3', help: 'burst of the typing token bucket', parse: int(1, 1_000_000) },
  { key: 'sendBytesRate', env: 'CHAT_SEND_BYTES_RATE', flag: '--send-bytes-rate', def: '32k', help: 'bytes of messages per second per connection (text JSON-encoded plus about 200 bytes of fields each) before rate_limited; 0 = no limit', parse: bytes(0, 1 << 30) },
  { key: 'sendBytesBurst', env: 'CHAT_SEND_BYTES_BURST', flag: '--send-bytes-burst', def: '256k', help: 'burst of the send-bytes token bucket (at least CHAT_MAX_TEXT_BYTES)', parse: bytes(1024, 1 << 30) },
  { key: 'addressBytesRate', env: 'CHAT_ADDRESS_BYTES_RATE', flag: '--address-bytes-rate', def: '1m', help: 'bytes of messages per second from one client address, all its connections and users together (burst: 4 s of it); 0 = no limit', parse: bytes(0, 1 << 30) },
  { key: 'inboundBytesRate', env: 'CHAT_INBOUND_BYTES_RATE', flag: '--inbound-bytes-rate', def: '', help: 'bytes of frames on the wire per second per connection, charged before a frame is decoded (burst: 4 s of it, at least CHAT_SEND_BYTES_BURST and 2 x CHAT_MAX_PAYLOAD); empty = 4 x CHAT_SEND_BYTES_RATE; 0 = no limit', parse: (raw, name) => (raw.trim() === '' ? -1 : bytes(0, 1 << 30)(raw, name)) },
  { key: 'userRateFactor', env: 'CHAT_USER_RATE_FACTOR', flag: '--user-rate-factor', def: '4', help: "a user's connections together get this many times one connection's rates and bursts", parse: int(1, 1000) },
  { key: 'httpRate', env: 'CHAT_HTTP_RATE', flag: '--http-rate', def: '20', help: 'HTTP API requests per second per client address (and per user, times CHAT_USER_RATE_FACTOR); 0 = no limit', parse: rate(1_000_000) },
  { key: 'httpBurst', env: 'CHAT_HTTP_BURST', flag: '--http-burst', def: '100', help: 'burst of the HTTP API token bucket', parse: int(1, 1_000_000) },
  { key: 'maxConns', env: 'CHAT_MAX_CONNS', flag: '--max-conns', def: '50000', help: 'open WebSocket connections in all; past it upgrades get 503 (keep it under the open-files limit)', parse: int(1, 10_000_000) },
  { key: 'maxConnsPerIp', env: 'CHAT_MAX_CONNS_PER_IP', flag: '--max-conns-per-ip', def: '1000', help: 'open WebSocket connections from one client address; past it upgrades get 429', parse: int(1, 10_000_000) },
  { key: 'trustProxy', env: 'CHAT_TRUST_PROXY', flag: '--trust-proxy', def: '', help: "comma-separated addresses or CIDR blocks of proxies whose X-Forwarded-For names the client; empty = the socket's address", parse: proxies },
  { key: 'authTimeoutMs', env: 'CHAT_AUTH_TIMEOUT', flag: '--auth-timeout', def: '10s', help: 'a connection that has not identified itself (STOMP CONNECT) within this long is closed', parse: (raw, name) => { const ms = parseDuration(raw, name); if (ms < 100 || ms > 600_000) throw new ConfigError(`${name} must be between 100ms and 10m, got "${raw}"`); return ms; } },
  { key: 'guestRooms', env: 'CHAT_GUEST_ROOMS', flag: '--guest-rooms', def: 'all', help: 'CHAT_AUTH=none only: all, or public (refuse group and direct rooms and /api/me/*, which a self-asserted identity cannot protect)', parse: oneOf('all', 'public') },
  // Quotas (the store is the truth: the persistence actor checks them, so a cluster shares them).
  { key: 'maxRoomsPerUser', env: 'CHAT_MAX_ROOMS_PER_USER', flag: '--max-rooms-per-user', def: '1000', help: 'rooms one user may create (POST /api/rooms, or a new public room by joining it in auth mode none); past it forbidden', parse: int(1, 100_000_000) },
  { key: 'maxMembers', env: 'CHAT_MAX_MEMBERS', flag: '--max-members', def: '1000', help: 'members of one group room; adding past it is invalid', parse: int(2, 1_000_000) },
  { key: 'maxBlocks', env: 'CHAT_MAX_BLOCKS', flag: '--max-blocks', def: '1000', help: 'users one user may block; past it invalid', parse: int(1, 1_000_000) },
  // TLS: serve https:// and wss:// directly.
  { key: 'tlsCert', env: 'CHAT_TLS_CERT', flag: '--tls-cert', def: '', help: 'PEM certificate file (leaf first, then the chain): serve https:// and wss:// (with CHAT_TLS_KEY)', parse: readableFile },
  { key: 'tlsKey', env: 'CHAT_TLS_KEY', flag: '--tls-key', def: '', help: "PEM private key file of CHAT_TLS_CERT", parse: readableFile },
  { key: 'tlsKeyPassphrase', env: 'CHAT_TLS_KEY_PASSPHRASE', flag: '--tls-key-passphrase', def: '', help: 'passphrase of an encrypted CHAT_TLS_KEY', parse: nullable },
  // Webhooks: events for the host app (docs/webhooks.md).
  { key: 'webhookUrl', env: 'CHAT_WEBHOOK_URL', flag: '--webhook-url', def: '', help: 'POST events (message.created, room.*, member.*, user.*) to this http(s):// URL; empty = no events', parse: webhookUrl },
  { key: 'webhookSecret', env: 'CHAT_WEBHOOK_SECRET', flag: '--webhook-secret', def: '', help: 'key of the X-Chat-Signature HMAC-SHA256 (>= 16 chars; required with CHAT_WEBHOOK_URL)', parse: (raw, name) => { const v = nullable(raw); if (v !== null && v.length < 16) throw new ConfigError(`${name} must be at least 16 characters`); return v; } },
  { key: 'webhookPublic', env: 'CHAT_WEBHOOK_PUBLIC', flag: '--webhook-public', def: '0', help: '1: message.created events for public rooms too (recipients empty: a public room has no members)', parse: (raw, name) => oneOf('0', '1')(raw, name) === '1' },
  { key: 'webhookBatch', env: 'CHAT_WEBHOOK_BATCH', flag: '--webhook-batch', def: '100', help: 'events per webhook request at most', parse: int(1, 1000) },
  { key: 'webhookTimeoutMs', env: 'CHAT_WEBHOOK_TIMEOUT', flag: '--webhook-timeout', def: '10s', help: 'a webhook request unanswered this long failed (retried)', parse: boundedDuration(100, 120_000, 'a duration from 100ms to 2m', false) },
  { key: 'webhookMaxAttempts', env: 'CHAT_WEBHOOK_MAX_ATTEMPTS', flag: '--webhook-max-attempts', def: '15', help: 'attempts of one event (5xx, 429, timeout, refused) before it is dead-lettered', parse: int(1, 1000) },
  { key: 'webhookRetryMs', env: 'CHAT_WEBHOOK_RETRY', flag: '--webhook-retry', def: '1s', help: "first retry's pause; doubles on every failure, with jitter, up to CHAT_WEBHOOK_RETRY_MAX", parse: boundedDuration(1, 3_600_000, 'a duration from 1ms to 1h', false) },
  { key: 'webhookRetryMaxMs', env: 'CHAT_WEBHOOK_RETRY_MAX', flag: '--webhook-retry-max', def: '5m', help: 'longest pause between two attempts of an event', parse: boundedDuration(1, 86_400_000, 'a duration from 1ms to 24h', false) },
  { key: 'webhookKeepMs', env: 'CHAT_WEBHOOK_KEEP', flag: '--webhook-keep', def: '24h', help: 'delivered and dead-lettered events are kept this long (listed, replayable), then deleted', parse: boundedDuration(1000, 365 * 86_400_000, 'a duration from 1s to 365d', false) },
  { key: 'webhookMaxPending', env: 'CHAT_WEBHOOK_MAX_PENDING', flag: '--webhook-max-pending', def: '100000', help: 'pending events at most; past it messages are still accepted and new events go straight to the dead-letter list (counted)', parse: int(1, 100_000_000) },
];

/** How a secret setting is shown by --print-config and in the start-up log (by variable name). */
const REDACT: Record<string, (raw: string) => string> = {
  CHAT_STORE: redactUrl,
  CHAT_REDIS_URL: redactUrl,
  CHAT_JWT_JWKS_URL: redactUrl,
  CHAT_JWT_SECRET: () => '***',
  CHAT_ADMIN_TOKEN: () => '***',
  CHAT_TLS_KEY_PASSPHRASE: () => '***',
  CHAT_WEBHOOK_SECRET: () => '***',
  CHAT_WEBHOOK_URL: redactUrl,
  // Not a secret, but many lines: shown by its size.
  CHAT_JWT_PUBLIC_KEY: (raw) => `(PEM, ${raw.length} bytes)`,
};

export function helpText(): string {
  const lines = [
    'Settings: each is an environment variable, a flag (--port 9000 or --port=9000), or a line of',
    'the --env-file FILE (KEY=value, as systemd\'s EnvironmentFile= reads it). A flag wins over the',
    'environment, the environment over the file.',
    '',
  ];
  for (const s of SETTINGS) {
    lines.push(`  ${s.env.padEnd(26)} ${(s.flag + ' <v>').padEnd(28)} ${s.help}${s.def ? ` (default ${s.def})` : ''}`);
  }
  lines.push(`  ${''.padEnd(26)} ${'--env-file <file>'.padEnd(28)} read settings from this file (the environment wins over it)`);
  return lines.join('\n');
}

type Source = 'flag' | 'environment' | 'env file' | 'default';

/** Parse `--flag value` and `--flag=value` pairs (and `--env-file FILE`); unknown flags are errors. */
function parseFlags(argv: string[]): { flags: Map<string, string>; envFiles: string[] } {
  const byFlag = new Map(SETTINGS.map((s) => [s.flag, s]));
  const flags = new Map<string, string>();
  const envFiles: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const s = byFlag.get(flag);
    if (!s && flag !== '--env-file') throw new ConfigError(`unknown option ${flag} (see --help)`);
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else value = argv[++i];
    if (value === undefined) throw new ConfigError(`${flag} needs a value`);
    if (s) flags.set(s.env, value);
    else envFiles.push(value);
  }
  return { flags, envFiles };
}

/** The CHAT_ settings of the env files, a later file winning; an unknown CHAT_ name is an error. */
function readEnvFiles(files: string[]): Map<string, string> {
  const known = new Set(SETTINGS.map((s) => s.env));
  const out = new Map<string, string>();
  for (const file of files) {
    let vars: Map<string, string>;
    try {
      vars = parseEnvFile(readFileSync(file, 'utf8'), file);
    } catch (err) {
      if (err instanceof EnvFileError) throw new ConfigError(`--env-file ${err.message}`);
      throw new ConfigError(`--env-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    for (const [k, v] of vars) {
      if (!k.startsWith('CHAT_')) continue; // other variables are for other programs
      if (!known.has(k)) throw new ConfigError(`--env-file ${file}: unknown setting ${k} (see --help)`);
      out.set(k, v);
    }
  }
  return out;
}

/** Every setting's raw value and where it came from: a flag, else the environment, else an env file, else the default. */
function resolveRaw(env: NodeJS.ProcessEnv, argv: string[]): { setting: Setting<keyof Config>; value: string; source: Source }[] {
  const { flags, envFiles } = parseFlags(argv);
  const fromFile = readEnvFiles(envFiles);
  return SETTINGS.map((setting) => {
    const flag = flags.get(setting.env);
    if (flag !== undefined) return { setting, value: flag, source: 'flag' };
    const inEnv = env[setting.env];
    if (inEnv !== undefined) return { setting, value: inEnv, source: 'environment' };
    const inFile = fromFile.get(setting.env);
    if (inFile !== undefined) return { setting, value: inFile, source: 'env file' };
    return { setting, value: setting.def, source: 'default' };
  });
}

/**
 * Build the Config from argv (flags, `--env-file FILE`) and env: flags > env > file > default.
 * Throws ConfigError with an actionable message.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = []): Config {
  const cfg = {} as Record<keyof Config, unknown>;
  for (const { setting: s, value, source } of resolveRaw(env, argv)) {
    cfg[s.key] = s.parse(value, source === 'flag' ? s.flag : s.env);
  }
  const c = cfg as unknown as Config;
  if (c.auth === 'jwt') {
    const sources = [c.jwtSecret && 'CHAT_JWT_SECRET', c.jwtPublicKey && 'CHAT_JWT_PUBLIC_KEY', c.jwtJwksUrl && 'CHAT_JWT_JWKS_URL'].filter(Boolean);
    if (sources.length !== 1) {
      throw new ConfigError(`CHAT_AUTH=jwt needs exactly one key source: CHAT_JWT_SECRET (HS256), CHAT_JWT_PUBLIC_KEY (RS256/ES256/EdDSA) or CHAT_JWT_JWKS_URL (a key set by URL)${sources.length > 1 ? `; got ${sources.join(' and ')}` : ''}`);
    }
  }
  if (c.jwtSecret && c.jwtSecret.length < 32) {
    throw new ConfigError('CHAT_JWT_SECRET must be at least 32 characters (HS256 needs a 256-bit key)');
  }
  if (c.redisUrl) {
    if (c.store.kind !== 'mysql') throw new ConfigError('CHAT_REDIS_URL: a cluster needs one shared MySQL/MariaDB store: set CHAT_STORE=mysql://user:pass@host:port/db (SQLite is a single-node store)');
    if (c.nodeId < 0) throw new ConfigError('CHAT_REDIS_URL: every node of a cluster needs its own CHAT_NODE_ID (0..1023)');
    if (c.delivery !== 'after-commit') throw new ConfigError('CHAT_REDIS_URL: a cluster assigns seq when it commits, so it needs CHAT_DELIVERY=after-commit');
  }
  if (c.nodeId < 0) c.nodeId = 0;
  if (c.inboundBytesRate < 0) c.inboundBytesRate = 4 * c.sendBytesRate;
  else if (c.inboundBytesRate !== 0 && c.inboundBytesRate < c.sendBytesRate) throw new ConfigError(`CHAT_INBOUND_BYTES_RATE (${c.inboundBytesRate}) must be 0 or at least CHAT_SEND_BYTES_RATE (${c.sendBytesRate}): a frame carries its text and more`);
  if (c.sendBytesBurst < c.maxTextBytes + 512) throw new ConfigError(`CHAT_SEND_BYTES_BURST (${c.sendBytesBurst}) must hold the largest message: CHAT_MAX_TEXT_BYTES + 512 = ${c.maxTextBytes + 512}`);
  if (c.webhookUrl !== null && c.webhookSecret === null) throw new ConfigError('CHAT_WEBHOOK_URL needs CHAT_WEBHOOK_SECRET (>= 16 characters): every request is signed with it');
  if (c.webhookRetryMaxMs < c.webhookRetryMs) throw new ConfigError('CHAT_WEBHOOK_RETRY_MAX must be at least CHAT_WEBHOOK_RETRY');
  if (c.windowBytes < 2 * c.maxTextBytes + 4096) throw new ConfigError(`CHAT_WINDOW_BYTES (${c.windowBytes}) must hold at least two of the largest messages: 2 x CHAT_MAX_TEXT_BYTES + 4096 = ${2 * c.maxTextBytes + 4096}`);
  if (c.windowsMaxBytes < c.windowBytes) throw new ConfigError('CHAT_WINDOWS_MAX_BYTES must be at least CHAT_WINDOW_BYTES');
  if (c.maxConnsPerIp > c.maxConns) c.maxConnsPerIp = c.maxConns;
  if (c.stompPath === '/ws') throw new ConfigError('CHAT_STOMP_PATH must differ from /ws (STOMP is already offered there by subprotocol)');
  // TLS: both files or neither; their content is checked now, not at the first handshake.
  if ((c.tlsCert === null) !== (c.tlsKey === null)) {
    throw new ConfigError('CHAT_TLS_CERT and CHAT_TLS_KEY go together: set both to serve https:// and wss://, or neither');
  }
  if (c.tlsKeyPassphrase !== null && c.tlsKey === null) throw new ConfigError('CHAT_TLS_KEY_PASSPHRASE is set but CHAT_TLS_KEY is not');
  if (c.tlsCert !== null && c.tlsKey !== null) {
    try {
      checkTlsFiles(c.tlsCert, c.tlsKey, c.tlsKeyPassphrase);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  return c;
}

/** The config as it is safe to log: secrets redacted. */
export function describeConfig(c: Config): Record<string, unknown> {
  const out: Record<string, unknown> = { ...c, store: c.store.kind === 'sqlite' ? `sqlite:${c.store.path}` : c.store.url };
  for (const s of SETTINGS) {
    const redact = REDACT[s.env];
    const v = out[s.key];
    if (redact !== undefined && typeof v === 'string') out[s.key] = redact(v);
  }
  return out;
}

/** Quote a value for an env file when it needs it. */
function envFileValue(v: string): string {
  return /^[A-Za-z0-9_.,:/@*+=%()-]*$/.test(v) ? v : `"${v.replace(/["\\`$]/g, '\\$&')}"`;
}

/**
 * `uchat --print-config`: the effective settings as env-file lines, grouped by where each came
 * from, secrets redacted. Validates them first (a bad value throws ConfigError like a start).
 */
export function printConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = []): string {
  loadConfig(env, argv);
  const { envFiles } = parseFlags(argv);
  const groups: [Source, string][] = [
    ['flag', '# from flags'],
    ['environment', '# from the environment'],
    ['env file', `# from --env-file ${envFiles.join(', ')}`],
    ['default', '# defaults'],
  ];
  const all = resolveRaw(env, argv);
  const lines = ['# effective settings: a flag wins over the environment, the environment over --env-file; secrets redacted'];
  for (const [source, title] of groups) {
    const mine = all.filter((r) => r.source === source);
    if (mine.length === 0) continue;
    lines.push('', title);
    for (const { setting, value } of mine) {
      const redact = REDACT[setting.env];
      lines.push(`${setting.env}=${envFileValue(redact !== undefined && value !== '' ? redact(value) : value)}`);
    }
  }
  return lines.join('\n');
}
