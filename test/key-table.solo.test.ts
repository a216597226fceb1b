// The persistence actor's sends in flight (group-commit.ts, kept in key-table.ts) are not promoted
// by V8's scavenger, where the same churn through a Map promotes nearly every entry: an entry added
// per message and taken out when its commit returns, a few alive at a time, the table long-lived.
// Bytes per entry that V8's own trace counts (a bound, so this runs in the solo project).

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CHURN = fileURLToPath(new URL('./support/churn.ts', import.meta.url));
const ENTRIES = 1_000_000;

/** Bytes per entry that survived a scavenge, and that were promoted. */
function churn(kind: 'map' | 'actor'): { survived: number; promoted: number } {
  const out = execFileSync(process.execPath, ['--expose-gc', '--trace-gc-nvp', '--import', 'tsx', CHURN, kind, String(ENTRIES)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  expect(out).toContain(`entries ${ENTRIES} committed ${ENTRIES}`);
  let survived = 0;
  let promoted = 0;
  for (const line of out.split('\n')) {
    if (!line.includes(' gc=s ')) continue;
    survived += Number(/ new_space_survived=(\d+)/.exec(line)![1]);
    promoted += Number(/ promoted=(\d+)/.exec(line)![1]);
  }
  const r = { survived: Math.round(survived / ENTRIES), promoted: Math.round(promoted / ENTRIES) };
  console.log(`${kind}: bytes per entry ${JSON.stringify(r)}`);
  return r;
}

describe("the actor's sends in flight", () => {
  it('are not promoted when they come and go (through a Map: nearly every entry is)', () => {
    // Each entry is about 300 bytes of heap: through a Map, most of it is promoted (the setup).
    expect(churn('map').promoted).toBeGreaterThan(150);
    const actor = churn('actor');
    expect(actor.promoted).toBeLessThan(60);
    expect(actor.survived).toBeLessThan(90);
  });
});
