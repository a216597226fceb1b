// A minimal keep-alive HTTP/1.1 GET client on a raw socket, one request in flight per connection:
// cheaper per request than fetch/undici, and it can bind a 127.0.0.x source address.
import net from 'node:net';

export type HttpCallback = (status: number, body: string, err?: string) => void;

export class HttpConn {
  private socket: net.Socket | null = null;
  private chunks: Buffer[] = [];
  private size = 0;
  private cb: HttpCallback | null = null;

  constructor(private readonly host: string, private readonly port: number, private readonly localAddress: string | undefined) {}

  get(path: string, cb: HttpCallback): void {
    if (this.cb) { cb(0, '', 'busy'); return; }
    this.cb = cb;
    this.chunks = []; this.size = 0;
    if (this.socket === null || this.socket.destroyed) this.open();
    this.socket!.write(`GET ${path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\nConnection: keep-alive\r\n\r\n`);
  }

  close(): void { this.socket?.destroy(); this.socket = null; }

  private open(): void {
    const s = net.connect({ host: this.host, port: this.port, localAddress: this.localAddress, noDelay: true });
    this.socket = s;
    s.on('data', (d: Buffer) => { this.chunks.push(d); this.size += d.length; this.tryParse(); });
    s.on('error', () => {});
    s.on('close', () => { if (this.socket === s) this.socket = null; this.finish(0, '', 'connection_closed'); });
  }

  private finish(status: number, body: string, err?: string): void {
    const cb = this.cb;
    this.cb = null;
    if (cb) cb(status, body, err);
  }

  private tryParse(): void {
    const buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
    this.chunks = [buf];
    const he = buf.indexOf('\r\n\r\n');
    if (he < 0) return;
    const head = buf.toString('latin1', 0, he);
    const status = Number(head.slice(9, 12));
    const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (cl) {
      const len = Number(cl[1]);
      if (buf.length < he + 4 + len) return;
      this.chunks = []; this.size = 0;
      this.finish(status, buf.toString('utf8', he + 4, he + 4 + len));
      return;
    }
    if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      let off = he + 4;
      const parts: Buffer[] = [];
      for (;;) {
        const le = buf.indexOf('\r\n', off);
        if (le < 0) return;
        const n = parseInt(buf.toString('latin1', off, le), 16);
        if (buf.length < le + 2 + n + 2) return;
        if (n === 0) break;
        parts.push(buf.subarray(le + 2, le + 2 + n));
        off = le + 2 + n + 2;
      }
      this.chunks = []; this.size = 0;
      this.finish(status, Buffer.concat(parts).toString('utf8'));
      return;
    }
    this.chunks = []; this.size = 0;
    this.finish(status, '', 'no_length');
    this.close();
  }
}
