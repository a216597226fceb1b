// A real engine process for a test (node --import tsx src/cli.ts, or a compiled tree) on a random
// port with a real SQLite file, started by the bench's spawner (bench/lib/proc.ts): killed when
// the test process exits, even after a failed test; everything it printed kept for the test.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnListening } from '../../bench/lib/proc.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');

export interface EngineProc {
  port: number;
  url: string;
  http: string;
  dir: string;
  proc: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Send a signal (SIGTERM by default; SIGKILL after graceMs, if given) and resolve with the exit code. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'chat-test-'));
}

/** How the engine is launched: node's argv before the engine's flags, and its working directory. */
export interface Launch {
  node: string[];
  cwd: string;
  /** Pinned to core 0 (taskset, where there is one). */
  pin?: boolean;
}

/** From sources, through tsx. */
export const FROM_SOURCES: Launch = { node: ['--import', 'tsx', 'src/cli.ts'], cwd: ROOT };

/**
 * Every send limit off: the message rate and both byte budgets (per connection, per address). For
 * tests that send fast; a test of one limit sets that one and leaves this out.
 */
export const SEND_LIMITS_OFF = { CHAT_SEND_RATE: '0', CHAT_SEND_BYTES_RATE: '0', CHAT_ADDRESS_BYTES_RATE: '0' } as const;

/** Start the engine; resolves once it printed `listening on`. */
export async function startEngine(env: Record<string, string> = {}, dir = tempDir(), args: string[] = [], launch: Launch = FROM_SOURCES): Promise<EngineProc> {
  const eng = spawnListening({
    label: 'engine',
    nodeArgs: [...launch.node, ...args],
    cwd: launch.cwd,
    pin: launch.pin,
    env: {
      ...process.env,
      CHAT_PORT: '0',
      CHAT_HOST: '127.0.0.1',
      CHAT_STORE: `sqlite:${join(dir, 'chat.db')}`,
      CHAT_LOG_LEVEL: 'warn',
      ...env,
    },
  });
  const { port } = await eng.listening;
  return {
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    http: `http://127.0.0.1:${port}`,
    dir,
    proc: eng.proc,
    stdout: eng.stdout,
    stderr: eng.stderr,
    exited: eng.exited,
    stop: eng.stop,
  };
}

export interface CliRun { code: number | null; stdout: string; stderr: string; ms: number; timedOut: boolean }

/** Run the CLI from sources to completion with this environment on top of the test's; SIGKILL after timeoutMs, if given. */
function runToExit(args: string[], env: Record<string, string>, timeoutMs?: number): Promise<CliRun> {
  const t0 = Date.now();
  const proc = spawn(process.execPath, [...FROM_SOURCES.node, ...args], { cwd: FROM_SOURCES.cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  proc.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => { timedOut = true; proc.kill('SIGKILL'); }, timeoutMs);
  process.once('exit', () => proc.kill('SIGKILL'));
  return new Promise((res) => proc.once('exit', (code) => { clearTimeout(timer); res({ code, stdout, stderr, ms: Date.now() - t0, timedOut }); }));
}

/** Run the CLI to completion (for config errors and --help). */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runToExit(args, { CHAT_PORT: '0', CHAT_STORE: `sqlite:${join(tempDir(), 'c.db')}`, ...env });
}

/**
 * Run the CLI with this environment (no sqlite default) and wait for it to exit, killing it after
 * `timeoutMs` (an engine that should have refused to start would otherwise serve forever).
 */
export function runBounded(env: Record<string, string>, timeoutMs: number): Promise<CliRun> {
  return runToExit([], { CHAT_PORT: '0', CHAT_HOST: '127.0.0.1', CHAT_LOG_LEVEL: 'warn', ...env }, timeoutMs);
}
