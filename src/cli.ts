// The `uchat` command (bin/uchat.js; `npm start` runs `uchat start`). Commands:
// - start (the default): check the native binary, migrate the store, serve, print the
//   `listening on` line, and stop cleanly on SIGTERM/SIGINT (a second signal forces);
// - migrate: migrate the store and exit;
// - version: print the versions and exit;
// - help (--help, -h), and --print-config with any command: print the effective settings.

import { cpuBudget, gcAdvice } from './cpu-budget.ts';
import { ConfigError, describeConfig, helpText, loadConfig, printConfig, redactUrl, type Config } from './config.ts';
import { createLogger } from './log.ts';
import { engineVersion } from './version.ts';

type Command = 'start' | 'migrate' | 'version' | 'help';
const COMMANDS: Command[] = ['start', 'migrate', 'version', 'help'];

function usage(): string {
  return [
    'Usage: uchat [command] [--env-file FILE] [--<setting> <value> ...]',
    '',
    'Commands:',
    '  start            migrate the store, then serve until SIGTERM or SIGINT (the default)',
    '  migrate          migrate the store (the SQLite file or the MySQL database) and exit',
    '  version          print the versions of uchat, Node and uWebSockets.js and exit',
    '  help             print this and exit (also --help, -h)',
    '',
    'With any command:',
    '  --print-config   print the effective settings (secrets redacted) and exit',
    '',
    helpText(),
  ].join('\n');
}

/** The command and the rest of argv (the settings); exits 2 on an unknown command. */
function parseCommand(argv: string[]): { command: Command; printConfig: boolean; rest: string[] } {
  let command: Command = 'start';
  let rest = argv;
  const first = argv[0];
  if (first !== undefined && !first.startsWith('-')) {
    if (!COMMANDS.includes(first as Command)) fail(2, `unknown command "${first}" (commands: ${COMMANDS.join(', ')}; see --help)`);
    command = first as Command;
    rest = argv.slice(1);
  }
  if (rest.includes('--help') || rest.includes('-h')) command = 'help';
  else if (rest.includes('--version')) command = 'version';
  return { command, printConfig: rest.includes('--print-config'), rest: rest.filter((a) => a !== '--print-config') };
}

function fail(code: number, message: string): never {
  console.error(`uchat: ${message}`);
  process.exit(code);
}

/** A settings step; a ConfigError exits 2 with its message. */
function checked<T>(step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof ConfigError) fail(2, err.message);
    throw err;
  }
}

/** The native binary (exit 3 when it is missing or refused); imported late so --help, config errors and migrate do not need it. */
async function loadNative(): Promise<typeof import('../native/uws.ts')> {
  try {
    return await import('../native/uws.ts');
  } catch (err) {
    return fail(3, (err as Error).message);
  }
}

async function version(): Promise<void> {
  console.log(`uchat ${engineVersion()}`);
  console.log(`node ${process.version} (ABI ${process.versions.modules}, ${process.platform}/${process.arch})`);
  const native = await loadNative();
  console.log(`uWebSockets.js ${native.nativeInfo.version} (native: ${native.nativeInfo.binary})`);
}

async function migrate(cfg: Config): Promise<void> {
  const { migrateStore } = await import('./migrate.ts');
  const where = cfg.store.kind === 'sqlite' ? `sqlite:${cfg.store.path}` : redactUrl(cfg.store.url);
  try {
    const schema = await migrateStore(cfg);
    console.log(`migrated ${where}: schema version ${schema}`);
  } catch (err) {
    fail(1, `cannot migrate ${where}: ${(err as Error).message}`);
  }
}

async function start(cfg: Config): Promise<void> {
  const native = await loadNative();
  const log = createLogger(cfg.logLevel);
  log.info({ config: describeConfig(cfg), uws: native.nativeInfo, version: engineVersion() }, 'starting');
  const budget = cpuBudget();
  const gc = gcAdvice(budget);
  if (gc !== null) log.warn({ cpus: budget.cpus, bound: budget.from }, gc);
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
    // A node id held by another live node is a configuration error, like any bad setting.
    fail((err as Error).name === 'NodeIdTakenError' ? 2 : 1, `cannot start: ${(err as Error).message}`);
  }
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) fail(130, `second ${sig}, exiting without draining`);
    log.info({ signal: sig, buffered: server.engine.health().buffered }, 'stopping: committing and acking what is held');
    server.stop().then(() => {
      log.info({}, 'stopped');
      log.flush();
      process.exit(0);
    }, (err: unknown) => fail(1, `shutdown failed: ${String(err)}`));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Only now: whoever waits for this line may signal at once, and the handlers are in place.
  console.log(`uWebSockets.js ${native.nativeInfo.version} (native: ${native.nativeInfo.binary})`);
  console.log(`listening on ${cfg.host}:${server.port}${cfg.tlsCert !== null ? ' (TLS: https://, wss://)' : ''}`);
}

async function main(): Promise<void> {
  const { command, printConfig: print, rest } = parseCommand(process.argv.slice(2));
  if (command === 'help') return void console.log(usage());
  if (print) return void console.log(checked(() => printConfig(process.env, rest)));
  if (command === 'version') return version();
  const cfg = checked(() => loadConfig(process.env, rest));
  if (command === 'migrate') return migrate(cfg);
  return start(cfg);
}

main().catch((err: unknown) => {
  console.error('uchat: fatal:', err);
  process.exit(1);
});
