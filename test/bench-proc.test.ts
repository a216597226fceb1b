// The bench's readers of the box's state (bench/lib/proc.ts): /proc/net TCP counters and the split
// of the box's busy time into other processes, softirq and steal; and how it starts a pinned server.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hasTaskset, parseNetCounters, ProcSampler, startServer, tcpCounters } from '../bench/lib/proc.ts';
import { Teardown } from '../bench/lib/teardown.ts';

describe('bench: what else the box did', () => {
  it('parses /proc/net name/value line pairs, several pairs per prefix, other prefixes ignored', () => {
    const text = [
      'TcpExt: SyncookiesSent TCPLossProbes TCPDSACKRecv',
      'TcpExt: 0 28598 31',
      'IpExt: InNoRoutes InTruncatedPkts',
      'IpExt: 0 7',
      'TcpExt: TCPLossProbeRecovery',
      'TcpExt: 4',
      '',
    ].join('\n');
    const m = parseNetCounters(text, 'TcpExt');
    expect(Object.fromEntries(m)).toEqual({ SyncookiesSent: 0, TCPLossProbes: 28598, TCPDSACKRecv: 31, TCPLossProbeRecovery: 4 });
    expect(parseNetCounters(text, 'Tcp').size).toBe(0); // "Tcp:" is not "TcpExt:"
  });

  it('reads this box\'s TCP counters (monotonic) and samples softirq and steal beside the processes', async () => {
    const a = tcpCounters();
    expect(a).not.toBeNull();
    for (const v of Object.values(a!)) expect(Number.isInteger(v) && v >= 0).toBe(true);
    const s = new ProcSampler([process.pid]);
    s.sample();
    const t0 = Date.now();
    while (Date.now() - t0 < 300) Math.sqrt(Math.random()); // some CPU of our own
    const r = s.sample();
    for (const k of ['boxCpu', 'irqCpu', 'stealCpu', 'serverCpu'] as const) expect(Number.isFinite(r[k]) && r[k] >= 0, k).toBe(true);
    expect(r.serverCpu).toBeGreaterThan(30);
    const b = tcpCounters()!;
    expect(b.retransSegs).toBeGreaterThanOrEqual(a!.retransSegs);
    expect(b.lossProbes).toBeGreaterThanOrEqual(a!.lossProbes);
  });
});

describe.runIf(hasTaskset())('bench: a pinned server', () => {
  /** The node flags of a started ceiling (a Node server like the engine), from /proc/<pid>/cmdline, and its CPU affinity. */
  async function started(parallelGc: boolean | undefined): Promise<{ argv: string[]; cpus: string }> {
    const teardown = new Teardown();
    try {
      const srv = await startServer({ kind: 'ceiling', pin: true, parallelGc, teardown });
      const argv = readFileSync(`/proc/${srv.pid}/cmdline`, 'utf8').split('\0');
      const cpus = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`/proc/${srv.pid}/status`, 'utf8'))![1];
      await srv.stop();
      return { argv, cpus };
    } finally {
      await teardown.runAll();
    }
  }

  it('runs on core 0 as node --single-threaded-gc, or with V8\'s default on --parallel-gc', async () => {
    const single = await started(undefined);
    expect(single.cpus).toBe('0');
    expect(single.argv).toContain('--single-threaded-gc');
    const parallel = await started(true);
    expect(parallel.cpus).toBe('0');
    expect(parallel.argv).not.toContain('--single-threaded-gc');
  });
});
