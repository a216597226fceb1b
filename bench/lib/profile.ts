// --profile: names the .cpuprofile files a server left (Node writes one per thread, named only by
// pid and thread id) after the thread each one profiled, and lists each thread's top functions by
// self time, in total and per acked message.
import { readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_DIR } from './proc.ts';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame }
export interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

export type ThreadKind = 'front' | 'actor' | 'reader' | 'main' | 'loader';

export interface FunctionCost { name: string; selfMs: number; usPerMsg: number }
export interface ThreadProfile {
  file: string; thread: ThreadKind; threadId: number;
  wallMs: number; busyMs: number; idleMs: number; gcMs: number;
  /** Busy CPU-time per acked message (us); NaN without a message count. */
  busyUsPerMsg: number;
  top: FunctionCost[];
}

/**
 * Which thread a profile is of, by the code it ran: the persistence actor runs workers/persistence/,
 * a reader workers/readers/, the engine's front thread src/; a peer (bench/peers/) is one main
 * thread; anything else is a tsx module-loader hooks thread (idle all along).
 */
export function threadOf(p: CpuProfile): ThreadKind {
  const urls = p.nodes.map((n) => n.callFrame.url);
  if (urls.some((u) => u.includes('/workers/persistence/'))) return 'actor';
  if (urls.some((u) => u.includes('/workers/readers/'))) return 'reader';
  if (urls.some((u) => u.includes('/src/core/') || u.includes('/src/engine.ts'))) return 'front';
  if (urls.some((u) => u.includes('/bench/peers/'))) return 'main';
  return 'loader';
}

const short = (url: string): string => {
  const u = url.replace(/^file:\/\//, '');
  if (u.startsWith(REPO_DIR + '/')) return u.slice(REPO_DIR.length + 1).replace(/^(bench\/)?node_modules\//, '');
  return u.replace(/^.*\/node_modules\//, '').replace(/^node:/, 'node:');
};

/** Where a thread waits for work: counted as idle, not as a function's self time. */
const IDLE = new Set(['(idle)', 'atomicsWaitLoop piscina/dist/worker.js']);

/**
 * Self time per function (`name file`; tsx-compiled TypeScript has no useful line numbers), from
 * the samples and their time deltas (us), counting only samples inside `windows` (CLOCK_MONOTONIC
 * us, the profile's own clock) when given: the load, not the server's start and stop.
 */
export function selfTimes(p: CpuProfile, windows: Array<[number, number]> = []): Map<string, number> {
  const label = new Map<number, string>();
  for (const n of p.nodes) {
    const f = n.callFrame;
    const name = f.url ? `${f.functionName || '(anonymous)'} ${short(f.url)}` : (f.functionName || '(anonymous)');
    label.set(n.id, IDLE.has(name) ? '(idle)' : name);
  }
  const out = new Map<string, number>();
  const inside = (t: number): boolean => windows.length === 0 || windows.some(([a, b]) => t >= a && t <= b);
  // timeDeltas[i] is the time since the previous sample: charge the interval ending at sample i+1 to sample i
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (!inside(t)) continue;
    const dt = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1] : 0;
    const k = label.get(p.samples[i]) ?? '?';
    out.set(k, (out.get(k) ?? 0) + dt);
  }
  return out;
}

export function summarizeProfile(file: string, p: CpuProfile, messages: number, windows: Array<[number, number]> = [], topN = 12): ThreadProfile {
  const self = selfTimes(p, windows);
  const idleUs = self.get('(idle)') ?? 0;
  const gcUs = self.get('(garbage collector)') ?? 0;
  let totalUs = 0;
  for (const v of self.values()) totalUs += v;
  const busyUs = totalUs - idleUs;
  const per = (us: number): number => (messages > 0 ? us / messages : NaN);
  const top = [...self.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, topN)
    .map(([name, us]) => ({ name, selfMs: us / 1000, usPerMsg: per(us) }));
  const m = /\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(file);
  return {
    file, thread: threadOf(p), threadId: m ? Number(m[2]) : -1,
    wallMs: totalUs / 1000, busyMs: busyUs / 1000, idleMs: idleUs / 1000, gcMs: gcUs / 1000,
    busyUsPerMsg: per(busyUs), top,
  };
}

const f1 = (v: number): string => (Number.isNaN(v) ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(1));
const ORDER: Record<ThreadKind, number> = { front: 0, main: 0, actor: 1, reader: 2, loader: 3 };

/**
 * Reads every `CPU.*.<pid>.*.cpuprofile` in `dir`, renames it `<thread>.<pid>.<threadId>.cpuprofile`
 * (front, actor, reader, main, loader), and returns the report (also written to
 * `dir/profile-<pid>.md`). `messages`: acked messages inside `windows` (the runs' load phases).
 */
export function profileReport(dir: string, pid: number, messages: number, label: string, windows: Array<[number, number]> = []): { text: string; threads: ThreadProfile[] } {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.startsWith('CPU.') && f.includes(`.${pid}.`) && f.endsWith('.cpuprofile'));
  } catch {
    files = [];
  }
  const threads: ThreadProfile[] = [];
  for (const f of files) {
    let p: CpuProfile;
    try {
      p = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as CpuProfile;
    } catch {
      continue; // a profile cut short (the server was killed): nothing to read
    }
    const t = summarizeProfile(f, p, messages, windows);
    const named = `${t.thread}.${pid}.${t.threadId}.cpuprofile`;
    renameSync(path.join(dir, f), path.join(dir, named));
    t.file = named;
    threads.push(t);
  }
  threads.sort((a, b) => ORDER[a.thread] - ORDER[b.thread] || a.threadId - b.threadId);
  const span = windows.length ? `${windows.length} load window(s), ${(windows.reduce((n, [a, b]) => n + b - a, 0) / 1e6).toFixed(1)} s (connects, joins and shutdown left out)` : 'the whole life of the server';
  const lines: string[] = [`## CPU profile: ${label} (pid ${pid}), ${messages.toLocaleString('en-US')} messages acked`, '',
    `Samples counted: ${span}. busy = sampled time not idle (a thread descheduled while runnable still counts as busy: pin and compare with /proc). us/msg = self time / messages acked.`, ''];
  if (threads.length === 0) lines.push(`(no profile of pid ${pid} in ${dir}: the server must exit cleanly, on SIGTERM, to write one)`);
  lines.push('| file | thread | wall s | busy s | idle s | GC s | busy us/msg |', '|---|---|---|---|---|---|---|');
  for (const t of threads) lines.push(`| ${t.file} | ${t.thread} | ${(t.wallMs / 1000).toFixed(1)} | ${(t.busyMs / 1000).toFixed(2)} | ${(t.idleMs / 1000).toFixed(1)} | ${(t.gcMs / 1000).toFixed(2)} | ${f1(t.busyUsPerMsg)} |`);
  for (const t of threads) {
    if (t.thread === 'loader' || t.busyMs < 1) continue;
    lines.push('', `### ${t.thread} (${t.file}): top functions by self time`, '', '| self ms | us/msg | function |', '|---|---|---|');
    for (const x of t.top) lines.push(`| ${x.selfMs.toFixed(0)} | ${f1(x.usPerMsg)} | \`${x.name}\` |`);
  }
  const text = lines.join('\n') + '\n';
  if (threads.length > 0 || files.length > 0) writeFileSync(path.join(dir, `profile-${pid}.md`), text);
  return { text, threads };
}
