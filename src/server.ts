// The engine process: the store's actor and readers, the cluster bus when there is one, the uWS
// app (SSLApp with CHAT_TLS_CERT/CHAT_TLS_KEY) with its WebSocket and HTTP routes, listening, and
// the ordered stop.

import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { uws } from '../native/uws.ts';
import { ActorLink } from './actor-link.ts';
import { Authenticator } from './auth.ts';
import { Bus } from './cluster/bus.ts';
import type { Config } from './config.ts';
import type { Session } from './core/session.ts';
import { Engine } from './engine.ts';
import { KeyedLimits, RateLimits } from './core/limits.ts';
import { registerApi } from './http/api.ts';
import { registerFallbacks, registerOps } from './http/ops.ts';
import { registerPages } from './http/pages.ts';
import type { Logger } from './log.ts';
import { ClientAddress } from './net/address.ts';
import { Metrics } from './metrics/prometheus.ts';
import { CLOSE } from './protocol/errors.ts';
import { Codec } from './protocol/frames.ts';
import { StompGateway } from './protocol/stomp/gateway.ts';
import { openReaders, type ReadPool } from './readers.ts';
import { registerTestRoutes, TestHooks } from './test-hooks.ts';
import { websocketIntake } from './websocket.ts';

export interface RunningServer {
  engine: Engine;
  host: string;
  port: number;
  /** Stop accepting, commit and ack what is held, close every connection. */
  stop(): Promise<void>;
}

export async function startServer(cfg: Config, log: Logger): Promise<RunningServer> {
  // Cluster: claim the node id on the bus first (a duplicate id stops start-up before anything else).
  const bus = cfg.redisUrl !== null ? await Bus.start(cfg, log) : null;
  const actor = await ActorLink.start(cfg).catch(async (err: unknown) => {
    await bus?.close(false);
    throw err;
  });
  const pool = openReaders(cfg);
  const hooks = cfg.testHooks ? new TestHooks((on) => actor.send({ t: 'hold', on }), () => actor.send({ t: 'gc' }), () => pool.collect()) : null;
  const readers = heldReads(pool, hooks);
  const app: TemplatedApp = cfg.tlsCert !== null && cfg.tlsKey !== null
    ? uws.SSLApp({ cert_file_name: cfg.tlsCert, key_file_name: cfg.tlsKey, passphrase: cfg.tlsKeyPassphrase ?? undefined })
    : uws.App();
  const engine = new Engine(cfg, app, actor, readers, log, actor.initialBlocks, bus, hooks);
  engine.stats.readerQueue = () => readers.queueSize;
  const checkpoints = startCheckpoints(readers, cfg, engine, log);
  const auth = new Authenticator(cfg, (msg, fields) => log.warn(fields, msg));
  let listenSocket: us_listen_socket | null = null;

  actor.onFailure((err) => {
    log.fatal({ err: err.message }, 'persistence actor failed; exiting');
    process.exit(1);
  });

  const stomp = new StompGateway<Session>(engine, auth, cfg);
  const addresses = new ClientAddress(cfg.trustProxy);
  const intake = websocketIntake(cfg, engine, auth, stomp, addresses, log);

  // Slow-consumer sampling: one native call per socket, ~50 us per 1,000 sockets.
  const slowSweep = setInterval(() => engine.slow.sweep(intake.sessions), 10);
  slowSweep.unref();

  app.ws('/ws', intake.behavior(Codec.Json));
  app.ws(cfg.stompPath, intake.behavior(Codec.Stomp));

  if (hooks !== null) registerTestRoutes(app, hooks);
  registerOps(app, () => engine.health(), () => engine.stats.connections, new Metrics(engine.metricsSource, cfg), cfg, log);
  const apiLimits = { addresses, perAddress: new KeyedLimits(RateLimits.forConnections(cfg), 'from this address'), perUser: engine.userLimits };
  registerApi(app, engine.history, engine.admin, auth, apiLimits, cfg, log);
  registerPages(app, log);
  registerFallbacks(app);

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
      apiLimits.perAddress.stop();
      clearInterval(slowSweep);
      if (checkpoints !== null) clearInterval(checkpoints);
      // The last acks were queued on the connections' topics; uWS writes them at the end of a loop
      // turn, so let a few turns pass before the sockets close.
      await new Promise((r) => setTimeout(r, 20));
      for (const s of [...intake.sessions]) s.end(CLOSE.goingAway, 'server shutting down');
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
    collect: () => pool.collect(),
    close: () => pool.close(),
  };
}

/**
 * SQLite: copy committed WAL frames into the database file every CHAT_SQLITE_CHECKPOINT, on a
 * reader thread, so the actor's commits never wait behind a checkpoint's copy and fsync (ack p99
 * at 3,000 msgs/s in `chat` was 61-63 ms with the actor checkpointing by itself every ~10,000 WAL
 * pages, 23-28 ms with no checkpoints at all). The actor's auto-checkpoint stays as the backstop
 * that lets the WAL restart, and finds nearly every frame already copied.
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
