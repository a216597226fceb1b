// Entry point: parse and validate settings, check the native binary, start, print the
// `listening on` line, and stop cleanly on SIGTERM/SIGINT (a second signal forces).

import { ConfigError, describeConfig, helpText, loadConfig, type Config } from './config.ts';
import { createLogger } from './log.ts';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(helpText());
    return;
  }
  let cfg: Config;
  try {
    cfg = loadConfig(process.env, argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`chat engine: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  // Imported after config so --help and config errors do not need the native binary.
  let native: typeof import('../native/uws.ts');
  try {
    native = await import('../native/uws.ts');
  } catch (err) {
    console.error(`chat engine: ${(err as Error).message}`);
    process.exit(3);
  }
  const log = createLogger(cfg.logLevel);
  log.info({ config: describeConfig(cfg), uws: native.nativeInfo }, 'starting');
  if (cfg.auth === 'none') {
    // Said loudly at start (a warning in the log, on stderr): nothing in this mode tells users apart.
    const scope = cfg.guestRooms === 'public' ? 'group and direct rooms and /api/me/* are refused to guests (CHAT_GUEST_ROOMS=public)' : 'group and direct rooms and /api/me/* protect nothing (set CHAT_GUEST_ROOMS=public to refuse them)';
    const warning = `CHAT_AUTH=none: every client names itself (?user=), so anyone can be anyone; ${scope}. Use CHAT_AUTH=jwt on a public network.`;
    log.warn({ auth: 'none', guestRooms: cfg.guestRooms }, warning);
  }
  const { startServer } = await import('./server.ts');
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(cfg, log);
  } catch (err) {
    console.error(`chat engine: cannot start: ${(err as Error).message}`);
    // A node id held by another live node is a configuration error, like any bad setting.
    process.exit((err as Error).name === 'NodeIdTakenError' ? 2 : 1);
  }
  console.log(`uWebSockets.js ${native.nativeInfo.version} (native: ${native.nativeInfo.binary})`);
  console.log(`listening on ${cfg.host}:${server.port}`);

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      console.error(`chat engine: second ${sig}, exiting without draining`);
      process.exit(130);
    }
    log.info({ signal: sig, buffered: server.engine.health().buffered }, 'stopping: committing and acking what is held');
    server.stop().then(() => {
      log.info({}, 'stopped');
      log.flush();
      process.exit(0);
    }, (err: unknown) => {
      console.error(`chat engine: shutdown failed: ${String(err)}`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main().catch((err: unknown) => {
  console.error('chat engine: fatal:', err);
  process.exit(1);
});
