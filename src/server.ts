// The uWebSockets.js app: WebSocket upgrade and frame intake, the HTTP API, listen and stop.

import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior, us_listen_socket } from 'uWebSockets.js';
import { uws } from '../native/uws.ts';
import { openReaders, type ReadPool } from './readers.ts';
import { ActorLink } from './actor-link.ts';
import { Bus } from './bus.ts';
import { Authenticator, type Identity } from './auth.ts';
import { Codec, decodeFrame, isFrameError, SUBPROTOCOLS } from './codec.ts';
import type { Config } from './config.ts';
import { Engine, newSession, type Session } from './engine.ts';
import { CLOSE, ChatError, type ErrorCode } from './errors.ts';
import { registerHttp, sendError } from './http.ts';
import type { Logger } from './log.ts';
import { StompGateway, StompState } from './stomp-session.ts';
import { registerTestRoutes, TestHooks } from './test-hooks.ts';

/** A STOMP connection before its CONNECT frame names the user. */
function anonymous(n: number): Identity {
  return { id: `stomp-anon-${n}`, name: 'anonymous', admin: false, exp: 0 };
}

export interface RunningServer {
  engine: Engine;
  host: string;
  port: number;
  /** Stop accepting, commit and ack what is held, close every connection. */
  stop(): Promise<void>;
}

/** Pick the first subprotocol the client offers that the engine speaks; '' = none offered. */
function chooseProtocol(header: string, fallback: Codec): { codec: Codec; echo: string } | null {
  if (header.trim() === '') return { codec: fallback, echo: '' };
  for (const p of header.split(',')) {
    const name = p.trim();
    const codec = SUBPROTOCOLS[name];
    if (codec !== undefined) return { codec, echo: name };
  }
  return null;
}

export async function startServer(cfg: Config, log: Logger): Promise<RunningServer> {
  // Cluster: claim the node id on the bus first (a duplicate id stops start-up before anything else).
  const bus = cfg.redisUrl !== null ? await Bus.start(cfg, log) : null;
  const actor = await ActorLink.start(cfg).catch(async (err: unknown) => {
    await bus?.close(false);
    throw err;
  });
  const hooks = cfg.testHooks ? new TestHooks((on) => actor.send({ t: 'hold', on })) : null;
  const readers = heldReads(openReaders(cfg), hooks);
  const app: TemplatedApp = uws.App();
  const engine = new Engine(cfg, app, actor, readers, log, actor.initialBlocks, bus, hooks);
  engine.stats.readerQueue = () => readers.queueSize;
  const checkpoints = startCheckpoints(readers, cfg, engine, log);
  engine.stats.bus = bus;
  const auth = new Authenticator(cfg);
  const sessions = new Set<Session>();
  let connSeq = 0;
  let listenSocket: us_listen_socket | null = null;

  actor.onFailure((err) => {
    log.fatal({ err: err.message }, 'persistence actor failed; exiting');
    process.exit(1);
  });

  // Over CHAT_MAX_PAYLOAD: up to 2x it the frame is answered `too_large` and the connection stays;
  // up to hardLimit it is answered and the connection closed with 1009; past hardLimit uWS drops
  // the connection without reading further (the peer sees 1006). Nothing of any of them is used.
  const softClose = cfg.maxPayload * 2;
  const hardLimit = Math.min(Math.max(cfg.maxPayload * 32, 2 << 20), 64 << 20);

  const stomp = new StompGateway(engine, auth, cfg);

  /** One behavior for /ws and the STOMP path; only the default subprotocol differs. */
  const behavior = (defaultCodec: Codec): WebSocketBehavior<Session> => ({
    compression: uws.DISABLED,
    maxPayloadLength: hardLimit,
    maxBackpressure: cfg.maxBackpressure,
    closeOnBackpressureLimit: 1,
    idleTimeout: cfg.idleTimeout,
    sendPingsAutomatically: true,

    upgrade: (res: HttpResponse, req: HttpRequest, context) => {
      const refuse = (code: ErrorCode, message: string): void => {
        // Connection errors are logged with their reason, never with the token or query string.
        log.info({ code, reason: message }, 'websocket upgrade refused');
        sendError(res, code, message);
      };
      // Everything from req must be read now: it is invalid after this function returns.
      const key = req.getHeader('sec-websocket-key');
      const protocolHeader = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const origin = req.getHeader('origin');
      const creds = { query: req.getQuery() ?? '', authorization: req.getHeader('authorization') };
      let aborted = false;
      res.onAborted(() => { aborted = true; });
      if (!engine.accepting) return refuse('overloaded', 'the engine is shutting down');
      if (cfg.allowedOrigins.length > 0 && origin !== '' && !cfg.allowedOrigins.includes(origin)) {
        return refuse('forbidden', 'this origin may not open a WebSocket here');
      }
      const proto = chooseProtocol(protocolHeader, defaultCodec);
      if (proto === null) return refuse('invalid', `no supported subprotocol offered; use one of ${Object.keys(SUBPROTOCOLS).join(', ')}`);
      const isStomp = proto.codec === Codec.Stomp;
      // STOMP clients (Spring's) authenticate in CONNECT: without credentials on the upgrade they
      // are let in anonymous, and CONNECT must identify them before any other frame.
      const deferred = isStomp && creds.authorization === '' && !/(^|&)(token|user)=/.test(creds.query);
      const who: Promise<Identity> = deferred ? Promise.resolve(anonymous(++connSeq)) : auth.identify(creds);
      who.then((id: Identity) => {
        if (aborted) return;
        if (!deferred && !engine.mayConnect(id.id)) return refuse('rate_limited', `at most ${cfg.maxConnsPerUser} connections per user`);
        const s = newSession(++connSeq, id, proto.codec, cfg.sendBurst, isStomp ? new StompState(cfg.maxPayload, deferred) : null);
        res.cork(() => res.upgrade(s, key, proto.echo, extensions, context));
      }, (err: unknown) => {
        if (aborted) return;
        if (err instanceof ChatError) return refuse(err.code, err.message);
        log.error({ err: String(err) }, 'upgrade failed');
        sendError(res, 'unauthorized');
      });
    },

    open: (ws: WebSocket<Session>) => {
      const s = ws.getUserData();
      s.ws = ws;
      ws.subscribe(s.replyTopic);
      sessions.add(s);
      if (s.stomp === null || !s.stomp.needsIdentity) engine.onOpen(s);
      if (s.stomp !== null) stomp.onOpen(s);
      engine.stats.connections++;
      engine.stats.connectionsTotal++;
    },

    message: (ws: WebSocket<Session>, data: ArrayBuffer, isBinary: boolean) => {
      const s = ws.getUserData();
      if (data.byteLength > cfg.maxPayload) {
        // Nothing of it is stored or delivered. Up to twice the limit it is still decoded, only so
        // the error can echo its ref and cid (a client can tell which send was refused).
        let ref: string | undefined;
        let cid: string | undefined;
        if (data.byteLength <= softClose && s.stomp === null) {
          const d = decodeFrame(s.codec, data, isBinary);
          ref = d.ref;
          cid = isFrameError(d) ? d.cid : d.op === 'send' ? d.cid : undefined;
        }
        engine.error(s, 'too_large', `frame of ${data.byteLength} bytes exceeds CHAT_MAX_PAYLOAD (${cfg.maxPayload})`, ref, cid);
        if (data.byteLength > softClose) ws.end(CLOSE.tooLarge, 'frame too large');
        return;
      }
      if (s.stomp !== null) return stomp.onData(s, data);
      const d = decodeFrame(s.codec, data, isBinary);
      if (isFrameError(d)) return engine.error(s, d.error, d.message, d.ref, d.cid);
      engine.onFrame(s, d);
    },

    close: (ws: WebSocket<Session>, code: number) => {
      const s = ws.getUserData();
      // uWS closes a socket that passed maxBackpressure with 1006 and no close frame; a socket whose
      // buffer is still over the limit at close is the slow consumer being cut off, and counted.
      if (engine.wasSlow(s, code)) {
        engine.stats.slowConsumerCloses++;
        log.warn({ conn: s.connId, user: s.userId, limit: cfg.maxBackpressure }, 'slow consumer cut off at the backpressure limit');
      }
      sessions.delete(s);
      engine.stats.connections--;
      if (s.stomp !== null) stomp.onClose(s);
      engine.onClose(s);
    },
  });

  // Slow-consumer sampling (engine.sweepSlow): one native call per socket, ~50 us per 1,000 sockets.
  const slowSweep = setInterval(() => engine.sweepSlow(sessions), 10);
  slowSweep.unref();

  app.ws<Session>('/ws', behavior(Codec.Json));
  app.ws<Session>(cfg.stompPath, behavior(Codec.Stomp));

  if (hooks !== null) registerTestRoutes(app, hooks);
  registerHttp(app, engine, auth, cfg, log);

  const port = await new Promise<number>((resolve, reject) => {
    app.listen(cfg.host, cfg.port, (sock) => {
      if (!sock) return reject(new Error(`cannot listen on ${cfg.host}:${cfg.port} (in use, or not an address of this host)`));
      listenSocket = sock;
      resolve(uws.us_socket_local_port(sock));
    });
  });

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (listenSocket) uws.us_listen_socket_close(listenSocket);
      listenSocket = null;
      await engine.drain();
      // Cluster: leave before the connections close, so a survivor posts their QUITs at once.
      await bus?.close(true);
      stomp.stop();
      clearInterval(slowSweep);
      if (checkpoints !== null) clearInterval(checkpoints);
      // The last acks were queued on the connections' topics; uWS writes them at the end of a loop
      // turn, so let a few turns pass before the sockets close.
      await new Promise((r) => setTimeout(r, 20));
      for (const s of [...sessions]) if (!s.closed && s.ws) s.ws.end(CLOSE.goingAway, 'server shutting down');
      await readers.close();
    })();
    return stopping;
  };

  return { engine, host: cfg.host, port, stop };
}

/** Test hook: store reads wait at the `read` point while it is held. */
function heldReads(pool: ReadPool, hooks: TestHooks | null): ReadPool {
  if (hooks === null) return pool;
  return {
    run: (task) => hooks.gate('read')?.then(() => pool.run(task)) ?? pool.run(task),
    get queueSize() { return pool.queueSize; },
    checkpoint: pool.checkpoint,
    close: () => pool.close(),
  };
}

/**
 * SQLite: copy committed WAL frames into the database file every CHAT_SQLITE_CHECKPOINT, on a
 * reader thread, so the actor's commits never wait behind a checkpoint's copy and fsync. Measured
 * at 3,000 msgs/s in `chat` (fourth session): with the actor checkpointing by itself (every ~10,000
 * WAL pages) ack p99 was 61-63 ms; with no checkpoints at all 23-28 ms. The actor's auto-checkpoint
 * stays as the backstop that lets the WAL restart, and finds nearly every frame already copied.
 */
function startCheckpoints(readers: ReadPool, cfg: Config, engine: Engine, log: Logger): NodeJS.Timeout | null {
  const run = readers.checkpoint;
  if (run === null || cfg.checkpointMs === 0) return null; // run is null for MySQL
  let running = false;
  let lastCommits = -1;
  const timer = setInterval(() => {
    // Nothing committed since the last one: nothing to copy.
    if (running || engine.stats.commits === lastCommits) return;
    running = true;
    lastCommits = engine.stats.commits;
    run().then((r) => {
      engine.stats.checkpoints++;
      engine.stats.walFrames = r.log;
    }, (err: unknown) => {
      engine.stats.checkpointFailures++;
      log.warn({ err: String(err) }, 'checkpoint on a reader thread failed (the actor still checkpoints at 10,000 WAL pages)');
    }).finally(() => { running = false; });
  }, cfg.checkpointMs);
  timer.unref();
  return timer;
}
