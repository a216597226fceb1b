// Test helpers: a real engine process (node --import tsx src/cli.ts, or a compiled tree) on a
// random port with a real SQLite file, and a small WebSocket client that awaits frames by
// predicate (never sleeps).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';

export const ROOT = resolve(import.meta.dirname, '..');

export interface EngineProc {
  port: number;
  url: string;
  http: string;
  dir: string;
  proc: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Send a signal and resolve with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'chat-test-'));
}

/** Every engine a test started: killed when the test process exits, even after a failed test. */
const started = new Set<ChildProcess>();
process.once('exit', () => { for (const p of started) if (p.exitCode === null) p.kill('SIGKILL'); });

/** How the engine is launched: node's argv before the engine's flags, and its working directory. */
export interface Launch {
  node: string[];
  cwd: string;
}

/** From sources, through tsx. */
export const FROM_SOURCES: Launch = { node: ['--import', 'tsx', 'src/cli.ts'], cwd: ROOT };

/**
 * Every send limit off: the message rate and both byte budgets (per connection, per address). For
 * tests that send fast; a test of one limit sets that one and leaves this out.
 */
export const SEND_LIMITS_OFF = { CHAT_SEND_RATE: '0', CHAT_SEND_BYTES_RATE: '0', CHAT_ADDRESS_BYTES_RATE: '0' } as const;

/** Start the engine; resolves once it printed `listening on`. */
export function startEngine(env: Record<string, string> = {}, dir = tempDir(), args: string[] = [], launch: Launch = FROM_SOURCES): Promise<EngineProc> {
  const proc = spawn(process.execPath, [...launch.node, ...args], {
    cwd: launch.cwd,
    env: {
      ...process.env,
      CHAT_PORT: '0',
      CHAT_HOST: '127.0.0.1',
      CHAT_STORE: `sqlite:${join(dir, 'chat.db')}`,
      CHAT_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(proc);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => { started.delete(proc); res(code); }));
  proc.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  return new Promise((resolveStart, reject) => {
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      stdout.push(d.toString());
      buf += d.toString();
      const m = /listening on ([^\s:]+):(\d+)/.exec(buf);
      if (m) {
        const port = Number(m[2]);
        resolveStart({
          port,
          url: `ws://127.0.0.1:${port}/ws`,
          http: `http://127.0.0.1:${port}`,
          dir,
          proc,
          stdout,
          stderr,
          exited,
          stop: (signal: NodeJS.Signals = 'SIGTERM') => {
            if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then((code) => reject(new Error(`engine exited (${code}) before listening: ${stderr.join('')}`)));
  });
}

/** Run the CLI to completion (for config errors and --help). */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: ROOT, env: { ...process.env, CHAT_PORT: '0', CHAT_STORE: `sqlite:${join(tempDir(), 'c.db')}`, ...env } });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((res) => proc.once('exit', (code) => {
    if (code === null) res({ code, stdout, stderr });
    else res({ code, stdout, stderr });
  }));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Frame = Record<string, any>;

const packr = new Packr({ useRecords: false });

export class Client {
  readonly frames: Frame[] = [];
  private taken = new Set<number>();
  private waiters: (() => void)[] = [];
  closeCode: number | null = null;
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket, readonly msgpack: boolean) {
    this.closed = new Promise((res) => ws.once('close', (code) => { this.closeCode = code; res(code); this.wake(); }));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.frames.push(isBinary ? (packr.unpack(data) as Frame) : (JSON.parse(data.toString()) as Frame));
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static connect(url: string, opts: { user?: string; name?: string; protocol?: string | string[]; query?: string; headers?: Record<string, string>; ca?: string | Buffer } = {}): Promise<Client> {
    const q = new URLSearchParams();
    if (opts.user !== undefined) q.set('user', opts.user);
    if (opts.name !== undefined) q.set('name', opts.name);
    const qs = [q.toString(), opts.query ?? ''].filter(Boolean).join('&');
    const protocol = opts.protocol ?? 'chat.v1.json';
    const ws = new WebSocket(qs ? `${url}?${qs}` : url, protocol, { headers: opts.headers, ca: opts.ca });
    const msgpack = (Array.isArray(protocol) ? protocol[0] : protocol) === 'chat.v1.msgpack';
    return new Promise((res, rej) => {
      ws.once('open', () => res(new Client(ws, msgpack)));
      ws.once('error', rej);
      ws.once('unexpected-response', (_req, resp) => rej(new Error(`HTTP ${resp.statusCode}`)));
    });
  }

  send(frame: Frame): void {
    if (this.msgpack) this.ws.send(packr.pack(frame));
    else this.ws.send(JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer, binary = typeof data !== 'string'): void {
    this.ws.send(data, { binary });
  }

  /** The first frame not yet taken that matches; waits for it (rejects after timeoutMs). */
  waitFor(pred: (f: Frame) => boolean, timeoutMs = 10_000, what = 'frame'): Promise<Frame> {
    return new Promise((res, rej) => {
      const deadline = setTimeout(() => rej(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.frames.slice(-5))}`)), timeoutMs);
      const check = (): void => {
        for (let i = 0; i < this.frames.length; i++) {
          if (!this.taken.has(i) && pred(this.frames[i])) {
            this.taken.add(i);
            clearTimeout(deadline);
            res(this.frames[i]);
            return;
          }
        }
        if (this.closeCode !== null) {
          clearTimeout(deadline);
          rej(new Error(`connection closed (${this.closeCode}) while waiting for ${what}`));
          return;
        }
        this.waiters.push(check);
      };
      check();
    });
  }

  op(op: string, extra: (f: Frame) => boolean = () => true, timeoutMs?: number): Promise<Frame> {
    return this.waitFor((f) => f.op === op && extra(f), timeoutMs, `op ${op}`);
  }

  /** Send a frame with a fresh ref and await the reply (or error) echoing it. */
  async request(frame: Frame): Promise<Frame> {
    const ref = `r${Math.random().toString(36).slice(2)}`;
    this.send({ ...frame, ref });
    return this.waitFor((f) => f.ref === ref && f.op !== 'msg', 10_000, `reply to ${frame.op}`);
  }

  /** Wait until `n` msg frames of `room` have arrived; returns all of them. */
  async msgs(room: string, n: number, timeoutMs = 15_000): Promise<Frame[]> {
    const got: Frame[] = [];
    while (got.length < n) got.push(await this.waitFor((f) => f.op === 'msg' && f.room === room, timeoutMs, `msg #${got.length + 1} of ${n} in ${room}`));
    return got;
  }

  close(): Promise<number> {
    this.ws.close();
    return this.closed;
  }
}

export async function getJson(url: string): Promise<{ status: number; body: Frame }> {
  const r = await fetch(url);
  return { status: r.status, body: (await r.json()) as Frame };
}

/**
 * One HTTP/1.1 keep-alive connection, requests in turn on it. It outlives the engine's listen
 * socket: once a stopping engine stops accepting, a connection opened before still reaches it
 * (`/healthz` while stopping, the test hooks).
 */
export class KeepAlive {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private closed = false;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => { this.buf = Buffer.concat([this.buf, d]); this.waiter?.(); });
    sock.on('close', () => { this.closed = true; this.waiter?.(); });
    sock.on('error', () => {});
  }

  static open(port: number): Promise<KeepAlive> {
    return new Promise((res, rej) => {
      const s = connect({ host: '127.0.0.1', port }, () => res(new KeepAlive(s)));
      s.once('error', rej);
    });
  }

  async request(method: string, path: string, timeoutMs = 15_000): Promise<{ status: number; body: Frame }> {
    this.sock.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.buf.subarray(0, end).toString('latin1');
        const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (this.buf.length >= end + 4 + len) {
          const body = this.buf.subarray(end + 4, end + 4 + len).toString();
          this.buf = this.buf.subarray(end + 4 + len);
          return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body: (body ? JSON.parse(body) : {}) as Frame };
        }
      }
      if (this.closed) throw new Error(`connection closed before the answer to ${method} ${path}`);
      if (Date.now() > deadline) throw new Error(`no answer to ${method} ${path} within ${timeoutMs} ms`);
      await new Promise<void>((r) => { const t = setTimeout(r, 100); this.waiter = () => { clearTimeout(t); r(); }; });
    }
  }

  close(): void {
    this.sock.destroy();
  }
}
