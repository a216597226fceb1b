// How many CPUs this process may use, and whether V8's garbage collector fits in them. V8 runs part
// of every collection on helper threads (parallel scavenges, concurrent marking and sweeping). With
// two or more CPUs they run beside the front thread and the persistence actor; with fewer, the
// kernel shares the CPUs among all of them, and while a major collection marks, the engine's two
// threads get a fraction of their time: that shows up as ack latency. `node --single-threaded-gc`
// runs each collection on the thread that allocates, in small steps, and nothing else competes.
// At start the engine warns when it has fewer than two CPUs and runs without that flag.

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export interface CpuBudget {
  /** CPUs this process may use (a CPU quota can make it a fraction). */
  cpus: number;
  /** What sets the bound: the CPU affinity (taskset, systemd CPUAffinity=, docker --cpuset-cpus) or a cgroup CPU quota (systemd CPUQuota=, docker --cpus). */
  from: 'affinity' | 'cgroup quota';
}

/** A cgroup v2 `cpu.max` ("max 100000" or "<quota> <period>") in CPUs: Infinity when unlimited, null when unreadable. */
export function cpuMaxCpus(text: string): number | null {
  const [quota, period] = text.trim().split(/\s+/);
  return quota === 'max' ? Infinity : cfsCpus(quota, period ?? '100000');
}

/** cgroup v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us` in CPUs: Infinity when unlimited (-1), null when unreadable. */
export function cfsCpus(quota: string, period: string): number | null {
  const q = Number(quota.trim());
  const p = Number(period.trim());
  if (q === -1) return Infinity;
  return Number.isFinite(q) && q > 0 && Number.isFinite(p) && p > 0 ? q / p : null;
}

/**
 * Where this process's CPU quota lives, from /proc/self/cgroup: the path of cgroup v1's `cpu`
 * controller when it has one (a v1 or hybrid host: the quota is there), else the cgroup v2 path
 * (the `0::/path` line); null when neither is there.
 */
export function cgroupPath(text: string): { v: 1 | 2; path: string } | null {
  let v2: string | null = null;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(\/.*)$/.exec(line.trim());
    if (m === null) continue;
    if (m[2].split(',').includes('cpu')) return { v: 1, path: m[3] };
    if (m[1] === '0' && m[2] === '') v2 = m[3];
  }
  return v2 === null ? null : { v: 2, path: v2 };
}

type ReadText = (file: string) => string | null;

const readText: ReadText = (file) => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
};

/**
 * The smallest CPU quota of this process's cgroup and its parents, in CPUs (Infinity: none). In a
 * container the path can name the host's hierarchy while /sys/fs/cgroup is the container's own:
 * paths that do not exist are skipped, and the walk ends at the root, which is the container's.
 */
export function cgroupCpus(read: ReadText = readText, root = '/sys/fs/cgroup'): number {
  const self = read('/proc/self/cgroup');
  const where = self === null ? null : cgroupPath(self);
  if (where === null) return Infinity;
  const parts = where.path.split('/').filter((p) => p !== '');
  let cpus = Infinity;
  for (let n = parts.length; n >= 0; n--) {
    const dir = [where.v === 2 ? root : `${root}/cpu`, ...parts.slice(0, n)].join('/');
    let c: number | null = null;
    if (where.v === 2) {
      const max = read(`${dir}/cpu.max`);
      c = max === null ? null : cpuMaxCpus(max);
    } else {
      const quota = read(`${dir}/cpu.cfs_quota_us`);
      const period = read(`${dir}/cpu.cfs_period_us`);
      c = quota === null || period === null ? null : cfsCpus(quota, period);
    }
    if (c !== null && c < cpus) cpus = c;
  }
  return cpus;
}

/** The CPUs this process may use: its affinity, or its cgroup's quota when that is smaller. */
export function cpuBudget(affinity = availableParallelism(), quota = cgroupCpus()): CpuBudget {
  return quota < affinity ? { cpus: quota, from: 'cgroup quota' } : { cpus: affinity, from: 'affinity' };
}

/** Whether node was started with --single-threaded-gc (V8 accepts its flags with - or _). */
export function singleThreadedGc(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some((a) => a.replace(/_/g, '-') === '--single-threaded-gc');
}

/** The start-up warning for this budget and these node flags, or null when the collector fits. */
export function gcAdvice(budget: CpuBudget, execArgv: readonly string[] = process.execArgv): string | null {
  if (budget.cpus >= 2 || singleThreadedGc(execArgv)) return null;
  const cpus = Number.isInteger(budget.cpus) ? String(budget.cpus) : budget.cpus.toFixed(2);
  return `this process may use ${cpus} CPU (its ${budget.from}): V8's garbage collector helper threads compete with the engine's two threads for it, ` +
    'which adds to ack latency under load; start node with --single-threaded-gc (docs/operations.md, "Fewer than two CPUs")';
}
