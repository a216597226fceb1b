// The harness the tests and the bench share: the engine spawner (bench/lib/proc.ts, through
// test/support/engine.ts) and the raw RFC 6455 client (bench/lib/wsclient.ts, through
// test/support/raw-ws.ts), against a real engine and against a scripted server for what the
// engine never sends (fragmented messages, a close code of the server's choosing).

import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerStartError } from '../bench/lib/proc.ts';
import { ROOT, SEND_LIMITS_OFF, startEngine, tempDir, type EngineProc } from './support/engine.ts';
import { RawWs } from './support/raw-ws.ts';
import { until } from './support/wait.ts';

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true; } catch { return false; }
};

describe('the engine spawner', () => {
  it('resolves once the engine listens, keeps what it printed, and stop() gives its exit code', async () => {
    const eng = await startEngine({ CHAT_LOG_LEVEL: 'info' });
    expect(eng.stdout.join('')).toContain(`listening on 127.0.0.1:${eng.port}`);
    expect((await fetch(`${eng.http}/healthz`)).status).toBe(200);
    expect(await eng.stop()).toBe(0);
  });

  it('an engine that refuses its configuration rejects the start with its exit code and output', async () => {
    const err = await startEngine({ CHAT_PORT: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerStartError);
    expect((err as ServerStartError).exitCode).toBe(2);
    expect((err as ServerStartError).output).toMatch(/CHAT_PORT/);
  });

  it('stop() with a grace kills an engine that does not stop on SIGTERM', async () => {
    const eng = await startEngine();
    process.kill(eng.proc.pid!, 'SIGSTOP'); // a stopped process handles no SIGTERM
    expect(await eng.stop('SIGTERM', 200)).toBeNull();
    expect(eng.proc.signalCode).toBe('SIGKILL');
  });

  it('an engine still running when the test process exits is killed with it', async () => {
    const script = join(tempDir(), 'start-and-exit.mts');
    writeFileSync(script, `import { startEngine } from ${JSON.stringify(join(ROOT, 'test/support/engine.ts'))};\n` +
      'const eng = await startEngine();\nconsole.log(eng.proc.pid);\nprocess.exit(0);\n');
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const pid = Number(r.stdout.trim());
    expect(pid).toBeGreaterThan(0);
    await until(`engine pid ${pid} to be gone`, () => (alive(pid) ? undefined : true), 10_000);
  });
});

describe('the raw client against the engine', () => {
  let eng: EngineProc;
  beforeAll(async () => { eng = await startEngine({ ...SEND_LIMITS_OFF, CHAT_MAX_PAYLOAD: '1024' }); });
  afterAll(async () => { expect(await eng.stop()).toBe(0); });

  it('a message sent in three fragments is answered as one', async () => {
    const ws = await RawWs.open(eng.port, { query: 'user=frag', protocol: 'chat.v1.json' });
    const text = Buffer.from(JSON.stringify({ op: 'ping', ref: 'in-pieces' }));
    ws.conn.sendFrame(1, text.subarray(0, 5), { fin: false });
    ws.conn.sendFrame(0, text.subarray(5, 12), { fin: false });
    ws.conn.sendFrame(0, text.subarray(12));
    const pong = JSON.parse(await ws.message((t) => t.includes('in-pieces'), 'the pong')) as Record<string, unknown>;
    expect(pong).toMatchObject({ op: 'pong', ref: 'in-pieces' });
    expect(await ws.close()).toBe(1000);
  });

  it("the server's close code: 1009 for fragments adding up to more than twice CHAT_MAX_PAYLOAD", async () => {
    const ws = await RawWs.open(eng.port, { query: 'user=big' });
    const part = Buffer.alloc(1000, 'x');
    ws.conn.sendFrame(1, part, { fin: false });
    ws.conn.sendFrame(0, part, { fin: false });
    ws.conn.sendFrame(0, part);
    expect(await ws.closed).toBe(1009);
  });

  it('an upgrade the engine refuses rejects the open with its status', async () => {
    await expect(RawWs.open(eng.port, { query: 'user=' + 'u'.repeat(300) })).rejects.toThrow(/upgrade refused: http_4\d\d/);
  });
});

/** A one-connection server that does the handshake, then runs `script` over the socket. */
async function scriptedServer(script: (sock: net.Socket, clientOps: number[]) => void): Promise<{ port: number; ops: Promise<number[]>; close(): void }> {
  let done!: (ops: number[]) => void;
  const ops = new Promise<number[]>((r) => { done = r; });
  const srv = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let open = false;
    const seen: number[] = [];
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!open) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const key = /sec-websocket-key:\s*(\S+)/i.exec(buf.subarray(0, end).toString('latin1'))![1];
        const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        buf = buf.subarray(end + 4);
        open = true;
        script(sock, seen);
      }
      // client frames: small, masked; only their opcodes are kept
      while (buf.length >= 2 && buf.length >= 6 + (buf[1] & 127)) {
        const op = buf[0] & 15;
        seen.push(op);
        buf = buf.subarray(6 + (buf[1] & 127));
        if (op === 8) { sock.end(); done(seen); }
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, ops, close: () => srv.close() };
}

const frame = (b0: number, payload: string | Buffer): Buffer => {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([Buffer.from([b0, p.length]), p]);
};

describe('the raw client against a scripted server', () => {
  for (const silent of [false, true]) {
    it(`reassembles a fragmented message, ${silent ? 'never answers' : 'answers'} a ping, and reports the close code the server sent`, async () => {
      const srv = await scriptedServer((sock) => {
        sock.write(Buffer.concat([frame(0x01, 'hel'), frame(0x89, 'are you there'), frame(0x00, 'lo, '), frame(0x80, 'world')]));
      });
      try {
        const ws = await RawWs.open(srv.port, { silent });
        expect(await ws.message(() => true, 'a message')).toBe('hello, world');
        void ws.close(1000); // after the ping: its pong (if any) is ahead of this close on the wire
        expect(await srv.ops).toEqual(silent ? [8] : [10, 8]);
        expect(ws.messages.map(String)).toEqual(['hello, world']);
      } finally { srv.close(); }
    });
  }

  it("reports the server's close code", async () => {
    const code = Buffer.alloc(2);
    code.writeUInt16BE(4001);
    const srv = await scriptedServer((sock) => { sock.write(frame(0x88, code)); });
    try {
      const ws = await RawWs.open(srv.port);
      expect(await ws.closed).toBe(4001);
      expect(await srv.ops).toEqual([8]); // the client answered the close
    } finally { srv.close(); }
  });
});
