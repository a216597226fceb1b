// The CPUs the engine may use (affinity, cgroup v1 and v2 quotas) and the start-up warning when it
// has fewer than two and node runs without --single-threaded-gc: read from fixtures, and from real
// engines pinned to one core with taskset.

import { describe, expect, it } from 'vitest';
import { hasTaskset } from '../bench/lib/proc.ts';
import { cfsCpus, cgroupCpus, cgroupPath, cpuBudget, cpuMaxCpus, gcAdvice, singleThreadedGc } from '../src/cpu-budget.ts';
import { FROM_SOURCES, startEngine, tempDir } from './support/engine.ts';

/** A reader over a fake file system: path -> content. */
const files = (entries: Record<string, string>) => (file: string): string | null => entries[file] ?? null;

describe('the CPU budget', () => {
  it('reads cgroup v2 cpu.max and v1 CFS quotas as CPUs', () => {
    expect(cpuMaxCpus('max 100000\n')).toBe(Infinity);
    expect(cpuMaxCpus('150000 100000\n')).toBe(1.5);
    expect(cpuMaxCpus('50000 100000')).toBe(0.5);
    expect(cpuMaxCpus('')).toBeNull();
    expect(cpuMaxCpus('junk 1')).toBeNull();
    expect(cfsCpus('-1\n', '100000\n')).toBe(Infinity);
    expect(cfsCpus('100000\n', '100000\n')).toBe(1);
    expect(cfsCpus('x', '100000')).toBeNull();
  });

  it("finds the quota's cgroup: v1's cpu controller first (hybrid hosts), else the v2 path", () => {
    expect(cgroupPath('0::/system.slice/uchat.service\n')).toEqual({ v: 2, path: '/system.slice/uchat.service' });
    const hybrid = '12:memory:/x\n4:cpu,cpuacct:/docker/abc\n0::/docker/abc\n';
    expect(cgroupPath(hybrid)).toEqual({ v: 1, path: '/docker/abc' });
    expect(cgroupPath('1:name=systemd:/\n')).toBeNull();
    expect(cgroupPath('')).toBeNull();
  });

  it('takes the smallest quota of the cgroup and its parents, skipping files that are not there', () => {
    const v2 = files({
      '/proc/self/cgroup': '0::/system.slice/uchat.service\n',
      '/sys/fs/cgroup/cpu.max': 'max 100000\n',
      '/sys/fs/cgroup/system.slice/cpu.max': '300000 100000\n',
      '/sys/fs/cgroup/system.slice/uchat.service/cpu.max': '100000 100000\n',
    });
    expect(cgroupCpus(v2)).toBe(1);
    // A container whose /proc/self/cgroup names the host's path: only its own root is mounted.
    const v1 = files({
      '/proc/self/cgroup': '3:cpu,cpuacct:/docker/abc\n',
      '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '50000\n',
      '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n',
    });
    expect(cgroupCpus(v1)).toBe(0.5);
    expect(cgroupCpus(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBe(Infinity);
    expect(cgroupCpus(files({}))).toBe(Infinity);
  });

  it('is the affinity unless a quota is smaller', () => {
    expect(cpuBudget(4, Infinity)).toEqual({ cpus: 4, from: 'affinity' });
    expect(cpuBudget(4, 1.5)).toEqual({ cpus: 1.5, from: 'cgroup quota' });
    expect(cpuBudget(1, 2)).toEqual({ cpus: 1, from: 'affinity' });
  });

  it('advises --single-threaded-gc below two CPUs, unless node already runs with it', () => {
    expect(gcAdvice({ cpus: 2, from: 'affinity' }, [])).toBeNull();
    expect(gcAdvice({ cpus: 1, from: 'affinity' }, [])).toContain('start node with --single-threaded-gc');
    expect(gcAdvice({ cpus: 1.5, from: 'cgroup quota' }, ['--import', 'tsx'])).toContain('1.50 CPU (its cgroup quota)');
    expect(gcAdvice({ cpus: 1, from: 'affinity' }, ['--single-threaded-gc'])).toBeNull();
    expect(singleThreadedGc(['--single_threaded_gc'])).toBe(true);
    expect(singleThreadedGc(['--single-threaded-gc-in-background'])).toBe(false);
  });
});

describe.runIf(hasTaskset())('an engine pinned to one core', () => {
  /** Start the engine from sources, pinned to core 0, with these node flags; its stderr once it listens. */
  async function startPinned(nodeFlags: string[]): Promise<string> {
    const e = await startEngine({}, tempDir(), [], { ...FROM_SOURCES, node: [...nodeFlags, ...FROM_SOURCES.node], pin: true });
    try {
      return e.stderr.join('');
    } finally {
      await e.stop('SIGTERM', 10_000);
    }
  }

  it('warns at start that V8 should collect on its own threads', async () => {
    const stderr = await startPinned([]);
    expect(stderr).toContain('this process may use 1 CPU (its affinity)');
    expect(stderr).toContain('start node with --single-threaded-gc');
  });

  it('says nothing when node runs with --single-threaded-gc', async () => {
    const stderr = await startPinned(['--single-threaded-gc']);
    expect(stderr).not.toContain('--single-threaded-gc');
  });
});
