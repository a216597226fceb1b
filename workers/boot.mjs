// Worker threads do not inherit tsx's loader from the parent's `--import tsx` (Node 20), so every
// worker (the persistence actor, the piscina readers) starts here: register tsx in this thread,
// then load the real entry named in workerData.__entry and re-export its default (piscina's task).
import { workerData } from 'node:worker_threads';

if (workerData.__entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
const mod = await import(workerData.__entry);
export default mod.default;
