// The actor's table of sends in flight (workers/persistence/key-table.ts) does not get what it held
// promoted by V8's scavenger, where a Map with the same churn does: an entry set and deleted per
// message, a few alive at a time, the table itself long-lived. Bytes per entry that V8's own trace
// counts as promoted to the old generation (a bound, so this runs in the solo project).

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CHURN = fileURLToPath(new URL('./support/churn.ts', import.meta.url));
const ENTRIES = 1_000_000;

/** Bytes per entry that survived a scavenge, and that were promoted. */
function churn(kind: 'map' | 'table'): { survived: number; promoted: number } {
  const out = execFileSync(process.execPath, ['--expose-gc', '--trace-gc-nvp', '--import', 'tsx', CHURN, kind, String(ENTRIES)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  expect(out).toContain(`entries ${ENTRIES} true`);
  let survived = 0;
  let promoted = 0;
  for (const line of out.split('\n')) {
    if (!line.includes(' gc=s ')) continue;
    survived += Number(/ new_space_survived=(\d+)/.exec(line)![1]);
    promoted += Number(/ promoted=(\d+)/.exec(line)![1]);
  }
  return { survived: survived / ENTRIES, promoted: promoted / ENTRIES };
}

describe('the sends in flight, by key', () => {
  it('are not promoted when they come and go (a Map with the same churn: every entry is)', () => {
    const map = churn('map');
    const table = churn('table');
    // Each entry is about 300 bytes of heap: with a Map, nearly all of it is promoted.
    expect(map.promoted).toBeGreaterThan(150);
    expect(table.promoted).toBeLessThan(40);
    expect(table.survived).toBeLessThan(60);
  });
});
