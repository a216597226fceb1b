// Micro-benchmark: nanoseconds per message id (IdGenerator.next(), the id and its integer), the
// median of 7 rounds of 2 million ids.
//   taskset -c 1 node --import tsx scripts/id-cost.ts [path/to/ids.ts]
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { nsPerOpRounds } from './rounds.ts';

const file = path.resolve(process.argv[2] ?? 'workers/ids.ts');
const { IdGenerator } = (await import(pathToFileURL(file).href)) as typeof import('../workers/ids.ts');
const g = new IdGenerator(3);
const N = 2_000_000;
let chars = 0;
const r = nsPerOpRounds(7, N, () => {
  for (let i = 0; i < N; i++) chars += g.next().id.length;
});
if (chars !== 7 * N * 13) throw new Error('an id was not 13 characters');
console.log(`${file}: ${r.median.toFixed(0)} ns per id (median of 7 x ${N}; rounds ${r.rounds})`);
