// The bench's readers of the box's state (bench/lib/proc.ts): /proc/net TCP counters and the split
// of the box's busy time into other processes, softirq and steal.

import { describe, expect, it } from 'vitest';
import { parseNetCounters, ProcSampler, tcpCounters } from '../bench/lib/proc.ts';

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
