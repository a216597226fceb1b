// Run reports: the console summary, and --out <dir>: result.json, report.md and hand-written SVG
// charts (latency percentile curves; throughput and p99 over time).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RunResult } from './lib/stats.ts';

const f0 = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-');
const ms = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

export function hardErrors(r: RunResult): number {
  const c = r.correctness;
  return c.gaps + c.duplicates + c.dupAcks + c.earlyMsgs + c.otherFailures;
}

export function correctnessLine(r: RunResult): string {
  const c = r.correctness;
  return `gaps=${c.gaps} duplicates=${c.duplicates} missing=${c.missing} unacked=${c.unacked} dupAcks=${c.dupAcks} ` +
    `earlyMsgs=${c.earlyMsgs} disconnects=${c.disconnects} failedConnects=${c.failedConnects} other=${c.otherFailures}` +
    (c.notes.length ? ` (${c.notes.join('; ')})` : '');
}

/** Whether the run sampled the database/Redis processes (spawned --nodes); NaN becomes null in result.json. */
const hasBackend = (r: RunResult): boolean => Number.isFinite(r.resources.backendCpuAvg);

/** The console summary of one run. */
export function textReport(r: RunResult): string {
  const L = r.latency, x = r.resources;
  const lat = (n: string, s: typeof L.ack): string =>
    `  ${n.padEnd(9)} p50 ${ms(s.p50)}  p90 ${ms(s.p90)}  p99 ${ms(s.p99)}  p99.9 ${ms(s.p999)}  max ${ms(s.max)} ms  (n=${f0(s.count)})`;
  const lines = [
    `== ${r.scenario} on ${r.server} (${r.url}, ${r.transport} client) ${Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `  rate      offered ${f0(r.offeredRate)}/s  sent ${f0(r.sentRate)}/s  achieved ${f0(r.achievedRate)}/s  acks ${f0(r.acksPerS)}/s  deliveries ${f0(r.deliveriesPerS)}/s`,
    lat('ack', L.ack), lat('delivery', L.delivery),
    `  connect   p50 ${ms(L.connect.p50)}  p99 ${ms(L.connect.p99)} ms  (n=${f0(L.connect.count)})`,
    `  server    ${x.serverProcesses > 1 ? `(sum of ${x.serverProcesses} processes) ` : ''}cpu avg ${f0(x.serverCpuAvg)}% max ${f0(x.serverCpuMax)}%  rss max ${f0(x.serverRssMaxMb)} MB    ` +
      `${hasBackend(r) ? `db+redis cpu avg ${f0(x.backendCpuAvg)}% max ${f0(x.backendCpuMax)}%    ` : ''}generator cpu avg ${f0(x.genCpuAvg)}% max ${f0(x.genCpuMax)}%  sched lag max ${x.maxSchedLagMs} ms`,
    `  box       other processes avg ${f0(x.otherCpuAvg)}% max ${f0(x.otherCpuMax)}%  softirq avg ${f0(x.irqCpuAvg)}% (loopback TCP input, charged to no process)  steal avg ${f0(x.stealCpuAvg)}% max ${f0(x.stealCpuMax)}% (the hypervisor)${tcpLine(r)}`,
    `  errors    ${Object.keys(r.errors).length ? Object.entries(r.errors).map(([k, v]) => `${k}=${v}`).join(' ') : 'none'}`,
    `  correct   ${r.correctness.ok ? 'OK' : 'FAILED'}: ${correctnessLine(r)}`,
    ...(r.correctness.examples ?? []).map((e) => `            ${e}`),
  ];
  const extra = Object.entries(r.extra ?? {}).filter(([k]) => k !== 'tcp' && k !== 'loadWindowUs'); // tcp: its own line above; loadWindowUs: for --profile only
  if (extra.length) lines.push(`  extra     ${extra.map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' ')}`);
  lines.push(`  verdict   ${r.sustainable ? 'SUSTAINED' : 'NOT SUSTAINED'}: ${r.verdict}${x.genCpuAvg >= 90 ? '  [generator core saturated: the client, not the server, may be the limit]' : ''}${x.otherCpuMax >= 25 ? `  [WARNING: other processes used up to ${f0(x.otherCpuMax)}% of a core during this run: figures are unreliable]` : ''}${x.stealCpuMax >= 25 ? `  [WARNING: the hypervisor took up to ${f0(x.stealCpuMax)}% of a core (steal) during this run: figures are unreliable]` : ''}`);
  return lines.join('\n');
}

/** Loopback TCP retransmissions during the run (box-wide): on loopback each one is spurious. */
function tcpLine(r: RunResult): string {
  const t = r.extra?.tcp as { retransSegs: number; lossProbes: number } | undefined;
  if (t === undefined) return '';
  return `\n  tcp       ${f0(t.retransSegs)} retransmitted segments, ${f0(t.lossProbes)} of them tail-loss probes${t.retransSegs > 0 ? ' (spurious on loopback: see bench/README, "Limits of this box")' : ''}`;
}

export function markdownReport(title: string, runs: RunResult[], summary: string[]): string {
  const out = [`# ${title}`, '', ...summary, ''];
  const backend = runs.some(hasBackend);
  out.push(`| server | scenario | offered/s | achieved/s | deliveries/s | ack p50 | ack p99 | ack p99.9 | deliv p99 | connect p99 | server CPU | server RSS | ${backend ? 'db+redis CPU | ' : ''}gen CPU | other CPU | correctness | verdict |`);
  out.push(`|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|${backend ? '--:|' : ''}--:|--:|---|---|`);
  for (const r of runs) {
    const procs = r.resources.serverProcesses > 1 ? ` (${r.resources.serverProcesses} procs)` : '';
    out.push(`| ${r.server} | ${r.scenario} | ${f0(r.offeredRate)} | ${f0(r.achievedRate)} | ${f0(r.deliveriesPerS)} | ${ms(r.latency.ack.p50)} | ${ms(r.latency.ack.p99)} | ` +
      `${ms(r.latency.ack.p999)} | ${ms(r.latency.delivery.p99)} | ${ms(r.latency.connect.p99)} | ${f0(r.resources.serverCpuAvg)}%${procs} | ${f0(r.resources.serverRssMaxMb)} MB${procs} | ` +
      `${backend ? (hasBackend(r) ? f0(r.resources.backendCpuAvg) + '%' : '-') + ' | ' : ''}` +
      `${f0(r.resources.genCpuAvg)}% | ${f0(r.resources.otherCpuAvg)}% | ${r.correctness.ok ? 'ok' : 'FAILED: ' + correctnessLine(r)} | ${r.verdict} |`);
  }
  out.push('', 'Latencies in ms, measured from the intended send time (coordinated omission corrected). CPU in % of one core; ' +
    'with several server processes (the nodes of a cluster) server CPU and RSS are their sum' + (backend ? '; db+redis = the MariaDB and Redis processes the nodes use, not counted as other load' : '') + '.', '');
  out.push('![latency percentiles](latency.svg)', '', '![throughput and p99 over time](timeline.svg)', '');
  return out.join('\n');
}

// ---- SVG ----
interface Series { name: string; points: Array<[number, number]> }
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf', '#7f7f7f'];
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function panel(o: { x: number; y: number; w: number; h: number; title: string; yLabel: string; series: Series[];
  xTicks: Array<[number, string]>; xMin: number; xMax: number; xMap?: (v: number) => number }): string {
  const xMap = o.xMap ?? ((v: number) => v);
  const yMax = niceMax(Math.max(0, ...o.series.flatMap((s) => s.points.map((p) => p[1]))));
  const X = (v: number): number => o.x + ((xMap(v) - xMap(o.xMin)) / ((xMap(o.xMax) - xMap(o.xMin)) || 1)) * o.w;
  const Y = (v: number): number => o.y + o.h - (v / yMax) * o.h;
  const parts: string[] = [`<text x="${o.x}" y="${o.y - 8}" font-size="13" font-weight="bold">${esc(o.title)}</text>`];
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4, yy = Y(v).toFixed(1);
    parts.push(`<line x1="${o.x}" x2="${o.x + o.w}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${o.x - 6}" y="${yy}" font-size="10" text-anchor="end" dominant-baseline="middle">${+v.toPrecision(3)}</text>`);
  }
  for (const [v, label] of o.xTicks) {
    const xx = X(v).toFixed(1);
    parts.push(`<line x1="${xx}" x2="${xx}" y1="${o.y}" y2="${o.y + o.h}" stroke="#eee"/>`,
      `<text x="${xx}" y="${o.y + o.h + 14}" font-size="10" text-anchor="middle">${esc(label)}</text>`);
  }
  parts.push(`<text x="${o.x - 40}" y="${o.y + o.h / 2}" font-size="11" transform="rotate(-90 ${o.x - 40} ${o.y + o.h / 2})" text-anchor="middle">${esc(o.yLabel)}</text>`);
  parts.push(`<rect x="${o.x}" y="${o.y}" width="${o.w}" height="${o.h}" fill="none" stroke="#888"/>`);
  const legendW = 8 + 6.5 * Math.max(0, ...o.series.map((s) => s.name.length)) + 20;
  if (o.series.length) parts.push(`<rect x="${o.x + 5}" y="${o.y + 4}" width="${legendW.toFixed(0)}" height="${o.series.length * 15 + 6}" fill="white" fill-opacity="0.8" stroke="#ccc"/>`);
  o.series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('');
    parts.splice(1, 0, `<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.8"/>`); // under grid labels and legend
    parts.push(`<rect x="${o.x + 10}" y="${o.y + 8 + i * 15}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="${o.x + 25}" y="${o.y + 17 + i * 15}" font-size="11">${esc(s.name)}</text>`);
  });
  return parts.join('\n');
}

const svg = (w: number, h: number, body: string): string =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`;

/** Percentile curves on an HdrHistogram-style axis: x = log10(1 / (1 - p)). */
export function latencySvg(runs: RunResult[]): string {
  const xMap = (p: number): number => Math.log10(1 / Math.max(1e-6, 1 - p / 100));
  const ticks: Array<[number, string]> = [[0, '0%'], [90, '90%'], [99, '99%'], [99.9, '99.9%'], [99.99, '99.99%'], [99.999, '99.999%']];
  const series = (k: 'ack' | 'delivery'): Series[] => runs.map((r) => ({
    name: `${r.server} ${r.scenario} @${f0(r.offeredRate)}/s`, points: r.curves[k].filter((p) => p[0] < 100),
  }));
  return svg(760, 600,
    panel({ x: 70, y: 30, w: 660, h: 220, title: 'ack latency by percentile (ms)', yLabel: 'ms', series: series('ack'), xTicks: ticks, xMin: 0, xMax: 99.999, xMap }) + '\n' +
    panel({ x: 70, y: 330, w: 660, h: 220, title: 'delivery latency by percentile (ms)', yLabel: 'ms', series: series('delivery'), xTicks: ticks, xMin: 0, xMax: 99.999, xMap }));
}

export function timelineSvg(runs: RunResult[]): string {
  const tMax = Math.max(1, ...runs.flatMap((r) => r.timeline.map((p) => p.t)));
  const step = tMax > 60 ? Math.ceil(tMax / 60) * 10 : 5;
  const ticks: Array<[number, string]> = [];
  for (let t = 0; t <= tMax; t += step) ticks.push([t, `${t}s`]);
  const many = runs.length > 1;
  const thr: Series[] = runs.flatMap((r) => [
    { name: `${many ? r.server + ' ' : ''}acks/s`, points: r.timeline.map((p) => [p.t, p.acks] as [number, number]) },
    ...(many ? [] : [{ name: 'sent/s', points: r.timeline.map((p) => [p.t, p.sent] as [number, number]) }]),
  ]);
  const p99: Series[] = runs.flatMap((r) => [
    { name: `${many ? r.server + ' ' : ''}ack p99 (1 s windows)`, points: r.timeline.map((p) => [p.t, p.ackP99] as [number, number]) },
  ]);
  const cpu: Series[] = runs.flatMap((r) => [
    { name: `${many ? r.server + ' ' : ''}server CPU %`, points: r.timeline.filter((p) => !Number.isNaN(p.serverCpu)).map((p) => [p.t, p.serverCpu] as [number, number]) },
    { name: `${many ? r.server + ' ' : ''}generator CPU %`, points: r.timeline.map((p) => [p.t, p.genCpu] as [number, number]) },
    ...(hasBackend(r) ? [{ name: `${many ? r.server + ' ' : ''}db+redis CPU %`, points: r.timeline.filter((p) => Number.isFinite(p.backendCpu)).map((p) => [p.t, p.backendCpu] as [number, number]) }] : []),
    ...(many ? [] : [{ name: 'other processes CPU %', points: r.timeline.filter((p) => !Number.isNaN(p.otherCpu)).map((p) => [p.t, p.otherCpu] as [number, number]) }]),
  ]);
  return svg(760, 820,
    panel({ x: 80, y: 30, w: 650, h: 200, title: 'throughput per second', yLabel: 'per s', series: thr, xTicks: ticks, xMin: 0, xMax: tMax }) + '\n' +
    panel({ x: 80, y: 300, w: 650, h: 200, title: 'ack p99 per second (ms, from intended send time)', yLabel: 'ms', series: p99, xTicks: ticks, xMin: 0, xMax: tMax }) + '\n' +
    panel({ x: 80, y: 570, w: 650, h: 200, title: 'CPU (% of one core)', yLabel: '%', series: cpu, xTicks: ticks, xMin: 0, xMax: tMax }));
}

/** Writes result.json (runs = the reported runs; extraJson may add every step), report.md, latency.svg and timeline.svg into dir. */
export function writeReports(dir: string, title: string, runs: RunResult[], summary: string[], extraJson: Record<string, unknown> = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'result.json'), JSON.stringify({ title, summary, ...extraJson, runs }, null, 2) + '\n');
  writeFileSync(path.join(dir, 'report.md'), markdownReport(title, runs, summary));
  writeFileSync(path.join(dir, 'latency.svg'), latencySvg(runs));
  writeFileSync(path.join(dir, 'timeline.svg'), timelineSvg(runs));
}
