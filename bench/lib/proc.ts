// Server processes: spawn (pinned with taskset), wait for `listening on host:port`, sample CPU
// and RSS from /proc once per second, stop with SIGTERM (SIGKILL after a grace). spawnListening
// is also how the tests start engines (test/support/engine.ts).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync, existsSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Teardown } from './teardown.ts';

export const BENCH_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const REPO_DIR = path.dirname(BENCH_DIR);

export type ServerKind = 'engine' | 'ceiling' | 'ws-sqlite' | 'socketio';
export const SERVER_KINDS: ServerKind[] = ['engine', 'ceiling', 'ws-sqlite', 'socketio'];

export interface ServerOptions {
  kind: ServerKind; pin: boolean; profileDir?: string;
  /**
   * A pinned server runs with `node --single-threaded-gc`: on one core V8's GC helper threads only
   * take turns with the server's own threads (docs/operations.md, "Fewer than two CPUs"). True keeps
   * them (`--parallel-gc`).
   */
  parallelGc?: boolean;
  /** Overrides of the server's environment; undefined removes a variable (e.g. a CHAT_REDIS_URL of the caller's shell). */
  env?: Record<string, string | undefined>;
  /** Where the server's stop is registered, so an interrupted bench still stops it. */
  teardown: Teardown;
  /** Names the process in messages (default: kind). */
  label?: string;
  /** A SQLite file copied in as the engine's store before it starts (--prefill). */
  prefillFrom?: string;
}

/** A server that exited before printing its `listening on` line (exitCode null: it hung, or died by a signal). */
export class ServerStartError extends Error {
  constructor(readonly label: string, readonly exitCode: number | null, readonly output: string) {
    super(`${label} ${exitCode === null ? 'did not start' : `exited with code ${exitCode}`} before listening; its output:\n${output.trimEnd().split('\n').slice(-25).map((l) => '  | ' + l).join('\n')}`);
  }
}

export interface RunningServer {
  kind: ServerKind;
  pid: number;
  host: string;
  port: number;
  /** ws://host:port/ws for PROTOCOL.md servers; http://host:port for socketio. */
  url: string;
  dataDir: string;
  stop(): Promise<number | null>;
}

const ENTRY: Record<ServerKind, string> = {
  engine: 'src/cli.ts',
  ceiling: 'bench/peers/ceiling.ts',
  'ws-sqlite': 'bench/peers/ws-sqlite.ts',
  socketio: 'bench/peers/socketio.ts',
};

let tasksetOk: boolean | undefined;
export function hasTaskset(): boolean {
  if (tasksetOk === undefined) tasksetOk = spawnSync('taskset', ['-V']).status === 0;
  return tasksetOk;
}

/** Pins every thread of this process (-a) to `cpu`; returns false if taskset is missing. */
export function pinSelf(cpu: number): boolean {
  if (!hasTaskset()) return false;
  return spawnSync('taskset', ['-a', '-cp', String(cpu), String(process.pid)]).status === 0;
}

/** A spawned engine (or peer) and what it printed. */
export interface SpawnedProcess {
  proc: ChildProcess;
  pid: number;
  /** Where it listens, once it printed `listening on host:port` (0.0.0.0 and :: as 127.0.0.1); rejects with a ServerStartError if it exits or stays silent first. */
  listening: Promise<{ host: string; port: number }>;
  /** What it printed, chunk by chunk: everything, or the last `keep` chunks of each stream. */
  stdout: string[];
  stderr: string[];
  /** The last 50 chunks of both streams, in order (for error messages). */
  tail: string[];
  exited: Promise<number | null>;
  /** Sends `signal` (SIGKILL after graceMs, if given) unless it already exited; resolves with the exit code. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
}

export interface SpawnOptions {
  /** node's arguments: flags, then the entry script and its own arguments. */
  nodeArgs: string[];
  cwd: string;
  /** The whole environment; an undefined value removes the variable. */
  env: Record<string, string | undefined>;
  /** Names the process in messages. */
  label: string;
  /** Pinned to CPU 0 with taskset (when taskset exists). */
  pin?: boolean;
  /** Chunks of each stream kept in stdout/stderr (default: all). */
  keep?: number;
  /** Gives up (and kills it) when no `listening on` line came within this time (default 60 s). */
  startTimeoutMs?: number;
}

/** Every process spawnListening started: killed when this process exits, even after a failure. */
const spawned = new Set<ChildProcess>();
process.once('exit', () => { for (const p of spawned) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });

const LISTENING = /listening on (\[[^\]]+\]|[^\s:]+):(\d+)/;

/**
 * Spawns node with these arguments; `listening` says where it listens once it printed so. Its
 * output is drained for as long as it runs, so a chatty process never blocks on a full pipe.
 */
export function spawnListening(o: SpawnOptions): SpawnedProcess {
  const pin = o.pin === true && hasTaskset();
  const cmd = pin ? 'taskset' : process.execPath;
  const args = pin ? ['-c', '0', process.execPath, ...o.nodeArgs] : o.nodeArgs; // taskset execs node: same pid
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.env)) if (v !== undefined) env[k] = v;
  const proc = spawn(cmd, args, { cwd: o.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.add(proc);
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => { spawned.delete(proc); res(code); }));
  const stdout: string[] = [];
  const stderr: string[] = [];
  const tail: string[] = [];
  const keep = o.keep ?? Infinity;
  const capture = (into: string[]) => (d: Buffer): void => {
    const s = d.toString();
    into.push(s);
    if (into.length > keep) into.shift();
    tail.push(s);
    if (tail.length > 50) tail.shift();
  };
  proc.stdout!.on('data', capture(stdout));
  proc.stderr!.on('data', capture(stderr));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs?: number): Promise<number | null> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
    proc.kill(signal);
    const t = graceMs === undefined ? undefined : setTimeout(() => proc.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(t);
    return code;
  };
  const startTimeoutMs = o.startTimeoutMs ?? 60_000;
  const listening = new Promise<{ host: string; port: number }>((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer): void => {
      seen += d.toString();
      const m = LISTENING.exec(seen);
      if (m === null) return;
      clearTimeout(timer);
      proc.stdout!.off('data', onData);
      const host = m[1].replace(/^\[|\]$/g, '');
      resolve({ host: host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host, port: Number(m[2]) });
    };
    const timer = setTimeout(() => {
      reject(new ServerStartError(o.label, null, `(no "listening on" line within ${startTimeoutMs / 1000} s)\n${tail.join('')}`));
      void stop('SIGKILL');
    }, startTimeoutMs);
    proc.stdout!.on('data', onData);
    void exited.then((code) => { clearTimeout(timer); reject(new ServerStartError(o.label, code, tail.join(''))); });
  });
  return { proc, pid: proc.pid!, listening, stdout, stderr, tail, exited, stop };
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const entry = ENTRY[o.kind];
  if (!existsSync(path.join(REPO_DIR, entry))) throw new Error(`${o.kind}: ${entry} does not exist yet`);
  const dataDir = mkdtempSync(path.join(tmpdir(), `bench-${o.kind}-`));
  if (o.prefillFrom) copyFileSync(o.prefillFrom, path.join(dataDir, 'bench.db'));
  const nodeArgs = ['--import', 'tsx'];
  if (o.pin && hasTaskset() && o.parallelGc !== true) nodeArgs.unshift('--single-threaded-gc');
  if (o.profileDir) nodeArgs.push('--cpu-prof', '--cpu-prof-dir', o.profileDir);
  nodeArgs.push(entry);
  const label = o.label ?? o.kind;
  // the generator sends far faster than a person: no per-connection send limit unless the caller's env sets one
  const env: Record<string, string | undefined> = { CHAT_SEND_RATE: '0', CHAT_SEND_BYTES_RATE: '0', CHAT_ADDRESS_BYTES_RATE: '0', ...process.env, CHAT_PORT: '0', CHAT_HOST: '127.0.0.1', CHAT_STORE: `sqlite:${dataDir}/bench.db`, ...o.env };
  const server = spawnListening({ nodeArgs, cwd: REPO_DIR, env, label, pin: o.pin, keep: 50 });
  const stop = o.teardown.add(`stop ${label} (pid ${server.pid})`, async () => {
    const code = await server.stop('SIGTERM', 10_000);
    if (code !== 0 && code !== null) process.stderr.write(`[bench] ${label} exited ${code}; last output:\n${server.tail.join('')}\n`);
    return code;
  });
  const { host, port } = await server.listening.catch(async (e: unknown) => { await stop(); throw e; });
  return {
    kind: o.kind, pid: server.pid, host, port, dataDir,
    url: o.kind === 'socketio' ? `http://${host}:${port}` : `ws://${host}:${port}/ws`,
    // the store goes with the server: a find-max run starts one per step
    async stop() { await stop(); rmSync(dataDir, { recursive: true, force: true }); return server.proc.exitCode; },
  };
}

const CLK_TCK = 100;

/**
 * CPU (% of one core) and RSS of the server, summed over its processes (one engine, or every node of
 * a cluster), CPU of the backend processes it uses (database, Redis: not "other load"), and the
 * generator's own CPU, from /proc and process.cpuUsage.
 */
export class ProcSampler {
  private readonly lastTicks = new Map<number, number>();
  private lastAt = 0;
  private readonly lastBackendTicks = new Map<number, number>();
  private lastGen = process.cpuUsage();
  private lastGenAt = performance.now();

  readonly serverPids: number[];
  readonly backendPids: number[];

  /** serverPids: summed as "server" (a pid given twice counts once); backendPids: the database and Redis servers the nodes use. */
  constructor(serverPids: number[], backendPids: number[] = []) {
    this.serverPids = [...new Set(serverPids)];
    this.backendPids = [...new Set(backendPids)].filter((p) => !this.serverPids.includes(p));
  }

  private static ticks(pid: number): number {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // comm may contain spaces: split after ')'
    return Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15), all threads
  }

  /** Summed CPU of pids since the last call (NaN if none could be read twice); updates last. */
  private static cpu(pids: number[], last: Map<number, number>, dtS: number): number {
    let sum = 0, n = 0;
    for (const pid of pids) {
      try {
        const t = ProcSampler.ticks(pid);
        const prev = last.get(pid);
        last.set(pid, t);
        if (prev !== undefined && dtS > 0) { sum += ((t - prev) / CLK_TCK) / dtS * 100; n++; }
      } catch { last.delete(pid); } // process gone
    }
    return n ? sum : NaN;
  }

  private lastBox: { t: BoxTicks; at: number } | null = null;

  /**
   * Busy CPU of the whole box (% of one core) since the last call, from /proc/stat, in three parts:
   * processes (user+nice+system), interrupts (irq+softirq: on loopback mostly the TCP input of
   * this very run, which the kernel charges to no process) and steal (the hypervisor ran something
   * else on our vCPUs).
   */
  sample(): { serverCpu: number; serverRssMb: number; backendCpu: number; genCpu: number; boxCpu: number; irqCpu: number; stealCpu: number } {
    let serverRssMb = NaN, boxCpu = NaN, irqCpu = NaN, stealCpu = NaN;
    const now = performance.now();
    try {
      const b = boxTicks();
      if (this.lastBox !== null) {
        const pct = (d: number): number => (d / CLK_TCK) / ((now - this.lastBox!.at) / 1000) * 100;
        boxCpu = pct(b.proc - this.lastBox.t.proc);
        irqCpu = pct(b.irq - this.lastBox.t.irq);
        stealCpu = pct(b.steal - this.lastBox.t.steal);
      }
      this.lastBox = { t: b, at: now };
    } catch { /* no /proc/stat */ }
    const dtS = this.lastAt ? (now - this.lastAt) / 1000 : 0;
    this.lastAt = now;
    const serverCpu = ProcSampler.cpu(this.serverPids, this.lastTicks, dtS);
    const backendCpu = ProcSampler.cpu(this.backendPids, this.lastBackendTicks, dtS);
    for (const pid of this.serverPids) {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
        if (m) serverRssMb = (Number.isNaN(serverRssMb) ? 0 : serverRssMb) + Number(m[1]) / 1024;
      } catch { /* process gone */ }
    }
    const g = process.cpuUsage(this.lastGen);
    const genCpu = ((g.user + g.system) / 1000) / (now - this.lastGenAt) * 100;
    this.lastGen = process.cpuUsage(); this.lastGenAt = now;
    return { serverCpu, serverRssMb, backendCpu, genCpu, boxCpu, irqCpu, stealCpu };
  }
}

interface BoxTicks { proc: number; irq: number; steal: number }

function boxTicks(): BoxTicks {
  // cpu  user nice system idle iowait irq softirq steal ...
  const f = readFileSync('/proc/stat', 'latin1').slice(0, 200).split('\n')[0].trim().split(/\s+/).map(Number);
  return { proc: f[1] + f[2] + f[3], irq: f[6] + f[7], steal: f[8] };
}

/** Box-wide TCP counters (this network namespace): retransmitted segments, tail-loss probes, DSACKs received. */
export interface TcpCounters { retransSegs: number; lossProbes: number; dsackRecv: number }

/** The `prefix:` name/value line pairs of /proc/net/snmp or /proc/net/netstat, as a map. */
export function parseNetCounters(text: string, prefix: string): Map<string, number> {
  const out = new Map<string, number>();
  const lines = text.split('\n').filter((l) => l.startsWith(prefix + ':'));
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i].split(/\s+/).slice(1);
    const vals = lines[i + 1].split(/\s+/).slice(1).map(Number);
    names.forEach((n, k) => out.set(n, vals[k]));
  }
  return out;
}

/** Null where /proc/net is not readable. */
export function tcpCounters(): TcpCounters | null {
  try {
    const tcp = parseNetCounters(readFileSync('/proc/net/snmp', 'latin1'), 'Tcp');
    const ext = parseNetCounters(readFileSync('/proc/net/netstat', 'latin1'), 'TcpExt');
    return { retransSegs: tcp.get('RetransSegs') ?? 0, lossProbes: ext.get('TCPLossProbes') ?? 0, dsackRecv: ext.get('TCPDSACKRecv') ?? 0 };
  } catch {
    return null;
  }
}

/** Pids of running processes whose name (/proc/<pid>/comm) is one of names, e.g. mariadbd. */
export function pidsNamed(names: string[]): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try { if (names.includes(readFileSync(`/proc/${d}/comm`, 'latin1').trim())) out.push(Number(d)); } catch { /* gone */ }
  }
  return out;
}

/** Box-wide busy CPU (% of one core) over `ms`, from /proc/stat. */
export async function boxBusy(ms: number): Promise<number> {
  const busy = (t: BoxTicks): number => t.proc + t.irq + t.steal;
  const a = busy(boxTicks());
  await new Promise((r) => setTimeout(r, ms));
  return ((busy(boxTicks()) - a) / CLK_TCK) / (ms / 1000) * 100;
}

/**
 * On a shared box, wait (at most maxS seconds) until nothing else is using more than `limit`% of a
 * core, so a run does not measure someone else's test suite. Returns the last reading.
 */
export async function waitQuiet(limit = 20, maxS = 60): Promise<number> {
  const end = performance.now() + maxS * 1000;
  let busy = await boxBusy(1000);
  let told = false;
  while (busy > limit && performance.now() < end) {
    if (!told) { process.stderr.write(`[bench] the box is busy (${busy.toFixed(0)}% of a core used by other processes or the hypervisor); waiting up to ${maxS} s for it to calm down\n`); told = true; }
    busy = await boxBusy(1000);
  }
  if (busy > limit) process.stderr.write(`[bench] still busy (${busy.toFixed(0)}%); running anyway, figures will carry a warning\n`);
  return busy;
}
