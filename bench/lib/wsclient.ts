// A minimal RFC 6455 client on raw net sockets, built to receive hundreds of thousands of small
// frames per second on one core: no per-frame allocation beyond the payload string the caller
// asks for, a shared read buffer (net's onread), and no JSON parsing here at all. The tests use
// it too (test/support/raw-ws.ts): silent peers, and frames a well-behaved client never sends.
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

export interface WsTarget { host: string; port: number; path: string; protocol: string | null }

export interface WsHandlers {
  /** Handshake done (101 with a valid accept key). */
  open(conn: WsConn): void;
  /** A complete text or binary message; the payload is buf[start, end) and is only valid during the call. */
  message(conn: WsConn, buf: Buffer, start: number, end: number): void;
  /** Socket closed; code is the close frame's code, or an errno-like string when it never opened or broke. */
  close(conn: WsConn, code: number | string): void;
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
// One read buffer shared by every socket: reads are delivered one socket at a time on this thread,
// and leftovers are copied out, so nothing outlives the callback (saves a Buffer per read).
const SHARED_READ = Buffer.allocUnsafe(256 * 1024);

/** 127.0.0.2..127.0.0.254 round-robin: each source address has its own ephemeral port range. */
export function sourceAddress(i: number, targetHost: string): string | undefined {
  return targetHost.startsWith('127.') ? '127.0.0.' + (2 + (i % 253)) : undefined;
}

export function parseWsUrl(url: string): WsTarget {
  const u = new URL(url);
  if (u.protocol !== 'ws:') throw new Error(`--url must be ws://...: ${url}`);
  const host = u.hostname === 'localhost' ? '127.0.0.1' : u.hostname.replace(/^\[|\]$/g, '');
  if (!(host.startsWith('127.') || host === '::1')) throw new Error(`load tests target loopback only (127.0.0.0/8 or ::1), not ${host}`);
  return { host, port: Number(u.port || 80), path: u.pathname + (u.search || ''), protocol: 'chat.v1.json' };
}

export class WsConn {
  readonly socket: net.Socket;
  isOpen = false;
  private handshake: Buffer | null = Buffer.alloc(0);
  private pending: Buffer | null = null;
  private frags: Buffer[] | null = null;
  private closeSent = false;
  private closeCode: number | string = 1006;
  private readonly key: string;

  /** silent: never answers a ping (to the server, a peer gone quiet). */
  constructor(readonly target: WsTarget, path: string, localAddress: string | undefined, private readonly h: WsHandlers, readonly tag: number, private readonly silent = false) {
    this.key = randomBytes(16).toString('base64');
    this.socket = net.connect({
      host: target.host, port: target.port, localAddress, noDelay: true,
      onread: { buffer: SHARED_READ, callback: (n: number, buf: Uint8Array) => { this.feed(buf as Buffer, n); return true; } },
    });
    this.socket.on('connect', () => {
      this.socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n` +
        (target.protocol ? `Sec-WebSocket-Protocol: ${target.protocol}\r\n` : '') + '\r\n');
    });
    this.socket.on('error', (e: NodeJS.ErrnoException) => { this.closeCode = e.code ?? 'socket_error'; });
    this.socket.on('close', () => { this.isOpen = false; this.h.close(this, this.closeCode); });
  }

  /** Sends one text frame, masked as RFC 6455 requires of clients. */
  sendText(s: string): boolean {
    const len = Buffer.byteLength(s);
    const hdr = len < 126 ? 6 : len < 65536 ? 8 : 14;
    const f = Buffer.allocUnsafe(hdr + len); // small allocUnsafe comes from Node's pool: cheap
    f[0] = 0x81;
    if (len < 126) f[1] = 0x80 | len;
    else if (len < 65536) { f[1] = 0x80 | 126; f.writeUInt16BE(len, 2); }
    else { f[1] = 0x80 | 127; f.writeUInt32BE(0, 2); f.writeUInt32BE(len, 6); }
    const m = (Math.random() * 0x100000000) >>> 0; // per-frame mask key; Math.random is enough here (no proxies to poison)
    f.writeUInt32BE(m, hdr - 4);
    f.write(s, hdr, len, 'utf8');
    const m0 = m >>> 24, m1 = (m >>> 16) & 255, m2 = (m >>> 8) & 255, m3 = m & 255;
    let i = hdr;
    const end = hdr + len;
    for (; i + 3 < end; i += 4) { f[i] ^= m0; f[i + 1] ^= m1; f[i + 2] ^= m2; f[i + 3] ^= m3; }
    for (let j = 0; i < end; i++, j++) f[i] ^= j === 0 ? m0 : j === 1 ? m1 : m2;
    return this.socket.write(f);
  }

  /** Writes one frame as given: FIN, masked and with its true length unless told otherwise. */
  sendFrame(opcode: number, payload: Buffer, o: { fin?: boolean; mask?: boolean; rsv?: number; declaredLength?: number } = {}): void {
    const mask = o.mask ?? true;
    const len = o.declaredLength ?? payload.length;
    const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
    const f = Buffer.alloc(2 + ext + (mask ? 4 : 0) + payload.length);
    f[0] = ((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | (opcode & 15);
    f[1] = (mask ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
    if (ext === 2) f.writeUInt16BE(len, 2);
    else if (ext === 8) f.writeBigUInt64BE(BigInt(len), 2);
    const at = 2 + ext + (mask ? 4 : 0);
    payload.copy(f, at);
    if (mask) {
      const key = randomBytes(4);
      key.copy(f, 2 + ext);
      for (let i = 0; i < payload.length; i++) f[at + i] ^= key[i & 3];
    }
    this.socket.write(f);
  }

  private sendControl(op: number, payload: Buffer): void {
    const f = Buffer.alloc(6 + payload.length); // zero mask key: masking is a no-op for control frames
    f[0] = 0x80 | op;
    f[1] = 0x80 | payload.length;
    payload.copy(f, 6);
    this.socket.write(f);
  }

  /** Starts a clean close (close frame, then FIN). */
  close(code = 1000): void {
    if (this.closeSent || this.socket.destroyed) return;
    this.closeSent = true;
    const p = Buffer.alloc(2);
    p.writeUInt16BE(code, 0);
    this.sendControl(8, p);
    this.socket.end();
  }

  destroy(): void { this.socket.destroy(); }

  private feed(chunk: Buffer, n: number): void {
    let buf = chunk;
    let end = n;
    if (this.handshake !== null) {
      const hs = this.handshake = Buffer.concat([this.handshake, chunk.subarray(0, n)]);
      const at = hs.indexOf('\r\n\r\n');
      if (at < 0) { if (hs.length > 16384) this.fail('bad_handshake'); return; }
      const head = hs.toString('latin1', 0, at);
      this.handshake = null;
      if (!head.startsWith('HTTP/1.1 101')) { this.fail('http_' + head.slice(9, 12)); return; }
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)?.[1];
      if (accept !== createHash('sha1').update(this.key + GUID).digest('base64')) { this.fail('bad_accept'); return; }
      this.isOpen = true;
      this.h.open(this);
      buf = hs.subarray(at + 4); // hs is a private concat, so frames after the 101 can be parsed in place
      end = buf.length;
      if (end === 0) return;
    } else if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk.subarray(0, n)]);
      end = buf.length;
      this.pending = null;
    }
    let off = 0;
    while (end - off >= 2) {
      const b0 = buf[off], b1 = buf[off + 1];
      let len = b1 & 127, hdr = 2;
      if (len === 126) { if (end - off < 4) break; len = (buf[off + 2] << 8) | buf[off + 3]; hdr = 4; }
      else if (len === 127) { if (end - off < 10) break; len = buf.readUInt32BE(off + 2) * 0x100000000 + buf.readUInt32BE(off + 6); hdr = 10; }
      if (b1 & 0x80) { this.fail('masked_server_frame'); return; }
      if (end - off - hdr < len) break;
      const ps = off + hdr, pe = ps + len;
      off = pe;
      const op = b0 & 15;
      if (op === 1 || op === 2) {
        if (b0 & 0x80) this.h.message(this, buf, ps, pe);
        else { this.frags = [Buffer.from(buf.subarray(ps, pe))]; }
      } else if (op === 0) {
        if (this.frags === null) { this.fail('stray_continuation'); return; }
        this.frags.push(Buffer.from(buf.subarray(ps, pe)));
        if (b0 & 0x80) { const whole = Buffer.concat(this.frags); this.frags = null; this.h.message(this, whole, 0, whole.length); }
      } else if (op === 9) {
        if (!this.silent) this.sendControl(10, buf.subarray(ps, pe));
      } else if (op === 8) {
        this.closeCode = len >= 2 ? (buf[ps] << 8) | buf[ps + 1] : 1005;
        if (!this.closeSent) { this.closeSent = true; this.sendControl(8, buf.subarray(ps, Math.min(pe, ps + 2))); }
        this.socket.end();
        return;
      } // op 10 (pong): nothing to do
    }
    if (off < end) this.pending = Buffer.from(buf.subarray(off, end)); // copy: the shared read buffer is reused
  }

  private fail(code: string): void {
    this.closeCode = code;
    this.socket.destroy();
  }
}
