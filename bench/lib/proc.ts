// Server processes for a run: spawn (pinned with taskset), wait for `listening on host:port`,
// sample CPU and RSS from /proc once per second, stop with SIGTERM.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const REPO_DIR = path.dirname(BENCH_DIR);

export type ServerKind = 'engine' | 'ceiling' | 'ws-sqlite' | 'socketio';
export const SERVER_KINDS: ServerKind[] = ['engine', 'ceiling', 'ws-sqlite', 'socketio'];

export interface ServerOptions { kind: ServerKind; pin: boolean; profileDir?: string; env?: Record<string, string> }

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

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const entry = ENTRY[o.kind];
  if (!existsSync(path.join(REPO_DIR, entry))) throw new Error(`${o.kind}: ${entry} does not exist yet`);
  const dataDir = mkdtempSync(path.join(tmpdir(), `bench-${o.kind}-`));
  const nodeArgs = ['--import', 'tsx'];
  if (o.profileDir) nodeArgs.push('--cpu-prof', '--cpu-prof-dir', o.profileDir);
  nodeArgs.push(entry);
  const pin = o.pin && hasTaskset();
  const cmd = pin ? 'taskset' : process.execPath;
  const args = pin ? ['-c', '0', process.execPath, ...nodeArgs] : nodeArgs; // taskset execs node: same pid
  const child: ChildProcess = spawn(cmd, args, {
    cwd: REPO_DIR,
    // the generator sends far faster than a person: no per-connection send limit unless the caller's env sets one
    env: { CHAT_SEND_RATE: '0', ...process.env, CHAT_PORT: '0', CHAT_HOST: '127.0.0.1', CHAT_STORE: `sqlite:${dataDir}/bench.db`, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const addr = await new Promise<{ host: string; port: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${o.kind}: no "listening on" line within 60 s:\n${lines.join('')}`)), 60_000);
    const onData = (d: Buffer): void => {
      const s = d.toString();
      lines.push(s);
      const m = /listening on (\[[^\]]+\]|[^\s:]+):(\d+)/.exec(lines.join(''));
      if (m) { clearTimeout(timer); resolve({ host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) }); }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`${o.kind} exited (${code}) before listening:\n${lines.join('')}`)); });
  });
  // keep draining its output so a chatty server never blocks on a full pipe; keep the tail for errors
  child.stdout!.removeAllListeners('data');
  const tail: string[] = [];
  const keep = (d: Buffer): void => { tail.push(d.toString()); if (tail.length > 50) tail.shift(); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const host = addr.host === '0.0.0.0' || addr.host === '::' ? '127.0.0.1' : addr.host;
  return {
    kind: o.kind, pid: child.pid!, host, port: addr.port, dataDir,
    url: o.kind === 'socketio' ? `http://${host}:${addr.port}` : `ws://${host}:${addr.port}/ws`,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(t);
      if (code !== 0 && code !== null) process.stderr.write(`[bench] ${o.kind} exited ${code}; last output:\n${tail.join('')}\n`);
      return code;
    },
  };
}

const CLK_TCK = 100;

/** CPU (% of one core) and RSS of a process and of this generator, from /proc and process.cpuUsage. */
export class ProcSampler {
  private lastTicks = -1;
  private lastAt = 0;
  private lastGen = process.cpuUsage();
  private lastGenAt = performance.now();

  constructor(readonly pid: number | undefined) {}

  private ticks(): number {
    const s = readFileSync(`/proc/${this.pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // comm may contain spaces: split after ')'
    return Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  }

  private lastBox: number[] = [];

  /** Busy ticks of the whole box (all cores), from /proc/stat: user+nice+system+irq+softirq+steal. */
  private boxTicks(): number {
    const f = readFileSync('/proc/stat', 'latin1').slice(0, 200).split('\n')[0].trim().split(/\s+/).map(Number);
    return f[1] + f[2] + f[3] + f[6] + f[7] + f[8];
  }

  sample(): { serverCpu: number; serverRssMb: number; genCpu: number; boxCpu: number } {
    let serverCpu = NaN, serverRssMb = NaN, boxCpu = NaN;
    const now = performance.now();
    try {
      const b = this.boxTicks();
      if (this.lastBox.length) boxCpu = ((b - this.lastBox[0]) / CLK_TCK) / ((now - this.lastBox[1]) / 1000) * 100;
      this.lastBox = [b, now];
    } catch { /* no /proc/stat */ }
    if (this.pid !== undefined) {
      try {
        const t = this.ticks();
        if (this.lastTicks >= 0) serverCpu = ((t - this.lastTicks) / CLK_TCK) / ((now - this.lastAt) / 1000) * 100;
        this.lastTicks = t; this.lastAt = now;
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'latin1'));
        if (m) serverRssMb = Number(m[1]) / 1024;
      } catch { /* process gone */ }
    }
    const g = process.cpuUsage(this.lastGen);
    const genCpu = ((g.user + g.system) / 1000) / (now - this.lastGenAt) * 100;
    this.lastGen = process.cpuUsage(); this.lastGenAt = now;
    return { serverCpu, serverRssMb, genCpu, boxCpu };
  }
}

/** Box-wide busy CPU (% of one core) over `ms`, from /proc/stat. */
export async function boxBusy(ms: number): Promise<number> {
  const read = (): number[] => readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  const busy = (f: number[]): number => f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
  return ((busy(b) - busy(a)) / CLK_TCK) / (ms / 1000) * 100;
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
    if (!told) { process.stderr.write(`[bench] the box is busy (${busy.toFixed(0)}% of a core used by other processes); waiting up to ${maxS} s for it to calm down\n`); told = true; }
    busy = await boxBusy(1000);
  }
  if (busy > limit) process.stderr.write(`[bench] still busy (${busy.toFixed(0)}%); running anyway, figures will carry a warning\n`);
  return busy;
}
