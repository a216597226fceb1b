// Clients for tests: a WebSocket client (ws) that awaits frames by predicate (never sleeps), plain
// JSON over HTTP, and one HTTP/1.1 keep-alive connection that outlives the engine's listen socket.

import { connect, type Socket } from 'node:net';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';

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
