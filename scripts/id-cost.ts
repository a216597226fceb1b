// Micro-benchmark: nanoseconds per message id (IdGenerator.next(), the id and its integer), the
// median of 7 rounds of 2 million ids.
//   taskset -c 1 node --import tsx scripts/id-cost.ts [path/to/ids.ts]
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const file = path.resolve(process.argv[2] ?? 'workers/ids.ts');
const { IdGenerator } = (await import(pathToFileURL(file).href)) as typeof import('../workers/ids.ts');
const g = new IdGenerator(3);
const N = 2_000_000;
const rounds: number[] = [];
let chars = 0;
for (let r = 0; r < 7; r++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) chars += g.next().id.length;
  rounds.push(Number(process.hrtime.bigint() - t0) / N);
}
if (chars !== 7 * N * 13) throw new Error('an id was not 13 characters');
rounds.sort((a, b) => a - b);
console.log(`${file}: ${rounds[3].toFixed(0)} ns per id (median of 7 x ${N}; rounds ${rounds.map((n) => n.toFixed(0)).join(' ')})`);
