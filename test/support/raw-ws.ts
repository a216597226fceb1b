// The bench's raw RFC 6455 client (bench/lib/wsclient.ts) for tests: awaitable open and close,
// silent peers (never answering a ping), and any frame a well-behaved client never sends.

import { sourceAddress, WsConn } from '../../bench/lib/wsclient.ts';

export interface RawOpts {
  localAddress?: string;
  /** Sec-WebSocket-Protocol (none by default). */
  protocol?: string;
  query?: string | ((i: number) => string);
  /** Never answers a ping: to the server, a peer gone quiet. */
  silent?: boolean;
}

/** One raw connection to the engine's /ws on 127.0.0.1. `closed` resolves when the socket closes, with the server's close code (1006 when it sent none; an errno-like string when the socket broke). */
export class RawWs {
  readonly conn: WsConn;
  readonly closed: Promise<number | string>;
  /** Text and binary messages the server sent, whole (after reassembling fragments). */
  readonly messages: Buffer[] = [];
  isClosed = false;
  closeCode: number | string | null = null;
  private wake: (() => void)[] = [];

  private constructor(port: number, o: RawOpts, onOpen: () => void, onRefused: (why: number | string) => void) {
    let opened = false;
    let closed!: (code: number | string) => void;
    this.closed = new Promise((res) => { closed = res; });
    const query = typeof o.query === 'string' && o.query ? `?${o.query}` : '';
    this.conn = new WsConn({ host: '127.0.0.1', port, path: '/ws', protocol: o.protocol ?? null }, `/ws${query}`, o.localAddress, {
      open: () => { opened = true; onOpen(); },
      message: (_c, buf, start, end) => { this.messages.push(Buffer.from(buf.subarray(start, end))); this.woken(); },
      close: (_c, code) => {
        this.isClosed = true;
        this.closeCode = code;
        this.woken();
        if (!opened) onRefused(code);
        closed(code);
      },
    }, 0, o.silent === true);
  }

  /** Resolves after the 101; rejects with `upgrade refused: <why>` (e.g. http_403) otherwise. */
  static open(port: number, o: RawOpts = {}): Promise<RawWs> {
    return new Promise((resolve, reject) => {
      const ws: RawWs = new RawWs(port, o, () => resolve(ws), (why) => reject(new Error(`upgrade refused: ${why}`)));
    });
  }

  private woken(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  /** The first message (as text) that matches; waits for it, failing when the connection closes first or after timeoutMs. */
  message(pred: (text: string) => boolean, what: string, timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      const check = (): void => {
        const hit = this.messages.map((m) => m.toString()).find(pred);
        if (hit !== undefined) { clearTimeout(deadline); resolve(hit); return; }
        if (this.isClosed) { clearTimeout(deadline); reject(new Error(`connection closed (${this.closeCode}) while waiting for ${what}`)); return; }
        this.wake.push(check);
      };
      check();
    });
  }

  /** Starts a clean close (close frame with `code`, then FIN). */
  close(code = 1000): Promise<number | string> {
    this.conn.close(code);
    return this.closed;
  }

  destroy(): void {
    this.conn.destroy();
  }
}

/** Open `n` raw connections, `concurrency` handshakes at a time, spread over source addresses. */
export async function openMany(port: number, n: number, o: RawOpts = {}, concurrency = 200): Promise<RawWs[]> {
  const out: RawWs[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await RawWs.open(port, { ...o, query: typeof o.query === 'function' ? o.query(i) : o.query, localAddress: sourceAddress(i, '127.0.0.1') });
    }
  }));
  return out;
}
