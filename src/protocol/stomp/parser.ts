// STOMP 1.2 (and 1.1/1.0) frames over WebSocket: a strict, bounded parser and the encoder.
// Frames may arrive several per WebSocket message or split across messages; the parser keeps
// at most one partial frame per connection, bounded by the frame size limit.

import { STRICT_UTF8 } from '../text.ts';

export interface StompFrame {
  command: string;
  /** Header names and values, unescaped; for a repeated header the first one wins. */
  headers: Map<string, string>;
  body: Buffer;
}

export interface StompLimits {
  maxFrame: number;
  maxHeaders: number;
  maxHeaderLine: number;
}

export const DEFAULT_LIMITS: StompLimits = { maxFrame: 65536, maxHeaders: 32, maxHeaderLine: 4096 };

export class StompError extends Error {
  override name = 'StompError';
}

const CLIENT_COMMANDS = new Set(['CONNECT', 'STOMP', 'SEND', 'SUBSCRIBE', 'UNSUBSCRIBE', 'ACK', 'NACK', 'BEGIN', 'COMMIT', 'ABORT', 'DISCONNECT']);
const NUL = 0;
const LF = 10;
const CR = 13;

/** STOMP 1.1/1.2 header value escaping (not applied to CONNECT/CONNECTED). */
function unescapeHeader(s: string): string {
  if (!s.includes('\\')) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = s[++i];
    if (n === 'n') out += '\n';
    else if (n === 'r') out += '\r';
    else if (n === 'c') out += ':';
    else if (n === '\\') out += '\\';
    else throw new StompError(`invalid escape sequence \\${n ?? ''} in a header`);
  }
  return out;
}

const NEEDS_ESCAPE = /[\\\r\n:]/;

export function escapeHeader(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s; // the common case: nothing to escape, no new string
  return s.replace(/[\\\r\n:]/g, (c) => (c === '\\' ? '\\\\' : c === '\r' ? '\\r' : c === '\n' ? '\\n' : '\\c'));
}

export class StompParser {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly limits: StompLimits) {}

  /**
   * Feed bytes; returns the complete frames (their bodies are copies) and whether heart-beats
   * (bare EOLs) were seen.
   * Throws StompError on malformed input (the caller sends ERROR and closes).
   */
  push(chunk: Buffer): { frames: StompFrame[]; beat: boolean } {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: StompFrame[] = [];
    let beat = false;
    for (;;) {
      // Heart-beats and the optional EOLs between frames.
      let i = 0;
      while (i < this.buf.length && (this.buf[i] === LF || this.buf[i] === CR)) i++;
      if (i > 0) {
        beat = true;
        this.buf = this.buf.subarray(i);
      }
      if (this.buf.length === 0) break;
      const f = this.parseOne();
      if (f === null) break;
      frames.push(f);
    }
    if (this.buf.length > this.limits.maxFrame) throw new StompError(`frame exceeds ${this.limits.maxFrame} bytes`);
    // A partial frame waits for the next message: keep a copy, since `chunk` may be a view of
    // memory the caller reuses (uWS detaches a message's buffer once its handler returns).
    if (this.buf.length === 0) this.buf = Buffer.alloc(0);
    else if (this.buf.buffer === chunk.buffer) this.buf = Buffer.from(this.buf);
    return { frames, beat };
  }

  /** Parse one frame from the buffer start, or null if it is incomplete. */
  private parseOne(): StompFrame | null {
    const b = this.buf;
    // The header block ends at the first empty line.
    let pos = 0;
    const lines: string[] = [];
    for (;;) {
      const nl = b.indexOf(LF, pos);
      // A NUL ends a frame; one before the header block is over is a truncated frame, not a wait.
      const nul = b.indexOf(NUL, pos);
      if (nul >= 0 && (nl < 0 || nul < nl)) throw new StompError('frame ended (NUL) before its headers did');
      if (nl < 0) {
        if (b.length - pos > this.limits.maxHeaderLine) throw new StompError(`a header line exceeds ${this.limits.maxHeaderLine} bytes`);
        return null;
      }
      const end = nl > pos && b[nl - 1] === CR ? nl - 1 : nl;
      if (end - pos > this.limits.maxHeaderLine) throw new StompError(`a header line exceeds ${this.limits.maxHeaderLine} bytes`);
      let line = b.toString('utf8', pos, end);
      if (line.includes('\ufffd')) {
        // A real U+FFFD, or bytes that are not UTF-8 (replaced): a cid header must not change.
        try {
          line = STRICT_UTF8.decode(b.subarray(pos, end));
        } catch {
          throw new StompError('a header line is not valid UTF-8');
        }
      }
      pos = nl + 1;
      if (line === '') break;
      lines.push(line);
      if (lines.length > this.limits.maxHeaders + 1) throw new StompError(`more than ${this.limits.maxHeaders} headers`);
    }
    if (lines.length === 0) throw new StompError('empty frame');
    const command = lines[0];
    if (!CLIENT_COMMANDS.has(command)) throw new StompError(`unknown command "${command.slice(0, 32)}"`);
    const raw = command === 'CONNECT' || command === 'STOMP';
    const headers = new Map<string, string>();
    for (let k = 1; k < lines.length; k++) {
      const line = lines[k];
      const colon = line.indexOf(':');
      if (colon <= 0) throw new StompError(`malformed header line "${line.slice(0, 64)}"`);
      const name = raw ? line.slice(0, colon) : unescapeHeader(line.slice(0, colon));
      const value = raw ? line.slice(colon + 1) : unescapeHeader(line.slice(colon + 1));
      if (!headers.has(name)) headers.set(name, value);
    }
    let body: Buffer;
    const cl = headers.get('content-length');
    if (cl !== undefined) {
      if (!/^\d{1,9}$/.test(cl)) throw new StompError('content-length must be a non-negative integer');
      const n = Number(cl);
      if (pos + n + 1 > this.limits.maxFrame) throw new StompError(`frame exceeds ${this.limits.maxFrame} bytes`);
      if (b.length < pos + n + 1) return null;
      if (b[pos + n] !== NUL) throw new StompError('frame body is not NUL-terminated after content-length bytes');
      body = b.subarray(pos, pos + n);
      pos += n + 1;
    } else {
      const nul = b.indexOf(NUL, pos);
      if (nul < 0) {
        if (b.length > this.limits.maxFrame) throw new StompError(`frame exceeds ${this.limits.maxFrame} bytes`);
        return null;
      }
      body = b.subarray(pos, nul);
      pos = nul + 1;
    }
    this.buf = b.subarray(pos);
    return { command, headers, body: Buffer.from(body) };
  }
}

/** Encode a server frame. `raw` headers (CONNECTED) are not escaped. */
export function encodeStomp(command: string, headers: [string, string][], body = '', raw = false): string {
  let s = command + '\n';
  for (const [k, v] of headers) s += (raw ? k : escapeHeader(k)) + ':' + (raw ? v : escapeHeader(v)) + '\n';
  if (body.length > 0) s += 'content-length:' + Buffer.byteLength(body) + '\n';
  return s + '\n' + body + '\0';
}
