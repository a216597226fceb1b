// The bench's --profile report (bench/lib/profile.ts): which thread a .cpuprofile is of, self time
// per function inside the load windows only, and the files renamed after their thread.

import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { profileReport, selfTimes, threadOf, type CpuProfile } from '../bench/lib/profile.ts';
import { REPO_DIR } from '../bench/lib/proc.ts';
import { tempDir } from './support/engine.ts';

const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 });

/** root -> (idle), work at `url`, (garbage collector); samples every 1,000 us from startTime 1,000,000. */
function profile(url: string, samples: number[]): CpuProfile {
  return {
    nodes: [
      { id: 1, callFrame: frame('(root)') },
      { id: 2, callFrame: frame('(idle)') },
      { id: 3, callFrame: frame('work', `file://${REPO_DIR}/${url}`) },
      { id: 4, callFrame: frame('(garbage collector)') },
    ],
    startTime: 1_000_000, endTime: 1_000_000 + samples.length * 1000,
    samples, timeDeltas: samples.map(() => 1000),
  };
}

describe('bench: --profile report', () => {
  it('names a thread by the code it ran', () => {
    expect(threadOf(profile('workers/persistence/intake.ts', [3]))).toBe('actor');
    expect(threadOf(profile('workers/readers/reader.ts', [3]))).toBe('reader');
    expect(threadOf(profile('src/core/fanout.ts', [3]))).toBe('front');
    expect(threadOf(profile('bench/peers/ceiling.ts', [3]))).toBe('main');
    expect(threadOf(profile('node_modules/tsx/dist/loader.mjs', [3]))).toBe('loader');
  });

  it('counts self time per function, only inside the load windows', () => {
    // samples at t = 1,001,000 .. 1,010,000: idle, work x5, gc, work, idle, idle
    const p = profile('workers/persistence/group-commit.ts', [2, 3, 3, 3, 3, 3, 4, 3, 2, 2]);
    const all = selfTimes(p);
    expect(all.get('work workers/persistence/group-commit.ts')).toBe(6000);
    expect(all.get('(garbage collector)')).toBe(1000);
    // the window holds the samples at t = 1,003,000 .. 1,006,000: four of work, not the gc after them
    const some = selfTimes(p, [[1_003_000, 1_006_000]]);
    expect(some.get('work workers/persistence/group-commit.ts')).toBe(4000);
    expect(some.get('(garbage collector)')).toBeUndefined();
  });

  it('renames each file of the pid after its thread and reports us per message', () => {
    const dir = join(tempDir(), 'prof');
    mkdirSync(dir);
    writeFileSync(join(dir, 'CPU.20261205.090000.4242.0.001.cpuprofile'), JSON.stringify(profile('src/core/fanout.ts', [3, 3, 2, 2])));
    writeFileSync(join(dir, 'CPU.20261205.090000.4242.2.003.cpuprofile'), JSON.stringify(profile('workers/persistence/intake.ts', [3, 3, 3, 2])));
    writeFileSync(join(dir, 'CPU.20261205.090000.4242.1.002.cpuprofile'), JSON.stringify(profile('x/loader.mjs', [2, 2, 2, 2])));
    writeFileSync(join(dir, 'CPU.20261205.090000.999.0.001.cpuprofile'), JSON.stringify(profile('src/core/fanout.ts', [3])));
    const { threads, text } = profileReport(dir, 4242, 10, 'engine direct');
    expect(readdirSync(dir).sort()).toEqual(['CPU.20261205.090000.999.0.001.cpuprofile', 'actor.4242.2.cpuprofile', 'front.4242.0.cpuprofile', 'loader.4242.1.cpuprofile', 'profile-4242.md']);
    expect(threads.map((t) => t.thread)).toEqual(['front', 'actor', 'loader']);
    const actor = threads.find((t) => t.thread === 'actor')!;
    // a sample is charged the interval up to the next one (the last, idle, none): 3 x 1,000 us of work over 10 messages
    expect(actor.top[0]).toEqual({ name: 'work workers/persistence/intake.ts', selfMs: 3, usPerMsg: 300 });
    expect(text).toContain('| front.4242.0.cpuprofile | front |');
  });
});
