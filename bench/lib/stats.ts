// What a run measures: histograms, counters, the per-second timeline and the live progress line.
import { newHist, record, summarize, percentileCurve, type Histogram, type LatencySummary } from './hist.ts';
import type { ProcSampler } from './proc.ts';

/** Monotonic clock in integer microseconds (the unit of every cid timestamp and histogram). */
export const nowUs = (): number => Math.floor(performance.now() * 1000);

/**
 * The open-loop schedule (wrk2-style): item k of `total` is due at t0 + k / rate. Every 1 ms tick
 * calls `due(k, intended, now)` for each item whose intended time has come, whether or not the
 * earlier ones were answered, then `tick(now)`; resolves once all `total` were handed out.
 * Latency is measured from `intended`, so a stalled server cannot hide behind a late send.
 */
export function openLoop(rate: number, total: number, t0: number, due: (k: number, intended: number, now: number) => void, tick?: (now: number) => void): Promise<void> {
  const perUs = rate / 1e6;
  let k = 0;
  return new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = nowUs();
      let n = now < t0 ? 0 : Math.floor((now - t0) * perUs) + 1; // every item whose intended time has come (k / perUs <= now - t0)
      if (n > total) n = total;
      for (; k < n; k++) due(k, Math.floor(t0 + k / perUs), now);
      tick?.(now);
      if (k >= total) { clearInterval(timer); resolve(); }
    }, 1);
  });
}

export interface TimelinePoint {
  t: number; sent: number; acks: number; deliveries: number; ackP99: number; deliveryP99: number;
  /** serverCpu and serverRssMb: summed over the server's processes (every node of a cluster). */
  pending: number; serverCpu: number; serverRssMb: number; genCpu: number;
  /** The database and Redis the nodes use (NaN unless the bench spawned the nodes). */
  backendCpu: number;
  /** CPU used on the box by other processes (% of one core): processes' busy time - server - backend - generator. */
  otherCpu: number;
  /** Interrupt and softirq time (on loopback mostly this run's own TCP input, charged to no process). */
  irqCpu: number;
  /** Steal: time the hypervisor gave our vCPUs to someone else (a virtual machine's noisy neighbours). */
  stealCpu: number;
}

export interface Correctness {
  gaps: number; duplicates: number; missing: number; unacked: number; dupAcks: number;
  earlyMsgs: number; disconnects: number; failedConnects: number; otherFailures: number;
  ok: boolean; notes: string[];
  /** The first few failures, each naming the member, its node, the room and the seqs (empty when ok). */
  examples: string[];
}

export interface RunResult {
  scenario: string; server: string; url: string; transport: string; startedAt: string;
  params: Record<string, number | string | boolean>;
  offeredRate: number; sentRate: number; achievedRate: number; acksPerS: number; deliveriesPerS: number;
  latency: { ack: LatencySummary; delivery: LatencySummary; connect: LatencySummary };
  curves: { ack: Array<[number, number]>; delivery: Array<[number, number]> };
  errors: Record<string, number>;
  resources: {
    /** How many processes serverCpu and serverRssMb are summed over (the nodes of a cluster; 0 = not sampled). */
    serverProcesses: number;
    serverCpuAvg: number; serverCpuMax: number; serverRssMaxMb: number; genCpuAvg: number; genCpuMax: number; maxSchedLagMs: number;
    /** The database and Redis processes the spawned nodes use (NaN when not sampled). */
    backendCpuAvg: number; backendCpuMax: number;
    otherCpuAvg: number; otherCpuMax: number;
    irqCpuAvg: number; irqCpuMax: number;
    stealCpuAvg: number; stealCpuMax: number;
  };
  correctness: Correctness;
  timeline: TimelinePoint[];
  sustainable: boolean; verdict: string;
  extra?: Record<string, unknown>;
}

export class Meter {
  readonly ack: Histogram = newHist();
  readonly delivery: Histogram = newHist();
  readonly connect: Histogram = newHist();
  private readonly ackIv: Histogram = newHist();
  private readonly delivIv: Histogram = newHist();
  readonly errors = new Map<string, number>();
  readonly timeline: TimelinePoint[] = [];
  /** The measured window [from, to) in us, for both intended send times and receive times. */
  from = Infinity;
  to = Infinity;
  sent = 0; acks = 0; deliveries = 0;
  wSent = 0; wAcks = 0; wDeliveries = 0;
  maxLagUs = 0;
  private last = { sent: 0, acks: 0, deliveries: 0 };
  private timer: NodeJS.Timeout | undefined;
  private t0 = 0;

  constructor(private readonly sampler: ProcSampler, private readonly label: string, private readonly pending: () => number) {}

  error(code: string): void { this.errors.set(code, (this.errors.get(code) ?? 0) + 1); }

  /** An ack for a send intended at tUs, received now. */
  onAck(now: number, tUs: number): void {
    this.acks++;
    if (now >= this.from && now < this.to) this.wAcks++;
    record(this.ackIv, now - tUs); // the live p99 also covers warm-up
    if (tUs >= this.from && tUs < this.to) record(this.ack, now - tUs);
  }

  onDelivery(now: number, tUs: number): void {
    this.deliveries++;
    if (now >= this.from && now < this.to) this.wDeliveries++;
    if ((this.deliveries & 7) === 0) record(this.delivIv, now - tUs); // live p99 from every 8th delivery: one histogram write per delivery, not two
    if (tUs >= this.from && tUs < this.to) record(this.delivery, now - tUs);
  }

  onSent(now: number, tUs: number): void {
    this.sent++;
    if (tUs >= this.from && tUs < this.to) this.wSent++;
    if (now - tUs > this.maxLagUs) this.maxLagUs = now - tUs;
  }

  /** Starts the once-per-second sampling and progress line. */
  start(): void {
    this.t0 = nowUs();
    this.sampler.sample();
    this.timer = setInterval(() => this.tick(), 1000);
  }

  stop(): void { if (this.timer) clearInterval(this.timer); this.timer = undefined; }

  private tick(): void {
    const r = this.sampler.sample();
    const p: TimelinePoint = {
      t: Math.round((nowUs() - this.t0) / 1e6),
      sent: this.sent - this.last.sent, acks: this.acks - this.last.acks, deliveries: this.deliveries - this.last.deliveries,
      ackP99: this.ackIv.totalCount ? this.ackIv.getValueAtPercentile(99) / 1000 : 0,
      deliveryP99: this.delivIv.totalCount ? this.delivIv.getValueAtPercentile(99) / 1000 : 0,
      pending: this.pending(), serverCpu: r.serverCpu, serverRssMb: r.serverRssMb, genCpu: r.genCpu, backendCpu: r.backendCpu,
      otherCpu: Math.max(0, r.boxCpu - (Number.isNaN(r.serverCpu) ? 0 : r.serverCpu) - (Number.isNaN(r.backendCpu) ? 0 : r.backendCpu) - r.genCpu),
      irqCpu: r.irqCpu, stealCpu: r.stealCpu,
    };
    this.last = { sent: this.sent, acks: this.acks, deliveries: this.deliveries };
    this.ackIv.reset(); this.delivIv.reset();
    this.timeline.push(p);
    const cpu = (v: number): string => (Number.isNaN(v) ? '-' : v.toFixed(0) + '%');
    process.stderr.write(
      `[${this.label}] t=${p.t}s sent/s=${p.sent} acks/s=${p.acks} deliv/s=${p.deliveries} ack.p99=${p.ackP99.toFixed(1)}ms ` +
      `deliv.p99=${p.deliveryP99.toFixed(1)}ms pending=${p.pending} ${this.sampler.serverPids.length > 1 ? `servers(${this.sampler.serverPids.length})` : 'server'}=${cpu(p.serverCpu)} ` +
      `${Number.isNaN(p.serverRssMb) ? '' : p.serverRssMb.toFixed(0) + 'MB '}${Number.isNaN(p.backendCpu) ? '' : `db+redis=${cpu(p.backendCpu)} `}gen=${cpu(p.genCpu)} other=${cpu(p.otherCpu)} softirq=${cpu(p.irqCpu)} steal=${cpu(p.stealCpu)}\n`);
  }

  /** Resource summary over the measured window's timeline points. */
  resources(): RunResult['resources'] {
    const pts = this.timeline.length > 2 ? this.timeline.slice(1) : this.timeline;
    const vals = (f: (p: TimelinePoint) => number): number[] => pts.map(f).filter((v) => !Number.isNaN(v));
    const avg = (a: number[]): number => (a.length ? Math.round(a.reduce((x, y) => x + y, 0) / a.length) : NaN);
    const max = (a: number[]): number => (a.length ? Math.round(Math.max(...a)) : NaN);
    return {
      serverProcesses: this.sampler.serverPids.length,
      serverCpuAvg: avg(vals((p) => p.serverCpu)), serverCpuMax: max(vals((p) => p.serverCpu)),
      serverRssMaxMb: max(vals((p) => p.serverRssMb)),
      genCpuAvg: avg(vals((p) => p.genCpu)), genCpuMax: max(vals((p) => p.genCpu)),
      maxSchedLagMs: Math.round(this.maxLagUs / 100) / 10,
      backendCpuAvg: avg(vals((p) => p.backendCpu)), backendCpuMax: max(vals((p) => p.backendCpu)),
      otherCpuAvg: avg(vals((p) => p.otherCpu)), otherCpuMax: max(vals((p) => p.otherCpu)),
      irqCpuAvg: avg(vals((p) => p.irqCpu)), irqCpuMax: max(vals((p) => p.irqCpu)),
      stealCpuAvg: avg(vals((p) => p.stealCpu)), stealCpuMax: max(vals((p) => p.stealCpu)),
    };
  }

  latency(): RunResult['latency'] {
    return { ack: summarize(this.ack), delivery: summarize(this.delivery), connect: summarize(this.connect) };
  }

  curves(): RunResult['curves'] {
    return { ack: percentileCurve(this.ack), delivery: percentileCurve(this.delivery) };
  }

  errorsObject(): Record<string, number> { return Object.fromEntries([...this.errors].sort((a, b) => b[1] - a[1])); }
}

/** The find-max criteria, applied to one run. */
export function verdict(r: Pick<RunResult, 'offeredRate' | 'achievedRate' | 'latency' | 'correctness'>, p99LimitMs = 100): { sustainable: boolean; verdict: string } {
  if (!r.correctness.ok) return { sustainable: false, verdict: 'correctness errors' };
  if (r.achievedRate < 0.95 * r.offeredRate) return { sustainable: false, verdict: `achieved ${r.achievedRate.toFixed(0)}/s < 95% of offered ${r.offeredRate}/s` };
  if (r.latency.ack.p99 > p99LimitMs) return { sustainable: false, verdict: `ack p99 ${r.latency.ack.p99} ms > ${p99LimitMs} ms` };
  return { sustainable: true, verdict: 'sustained' };
}
