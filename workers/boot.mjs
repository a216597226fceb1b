// Running from sources only (the compiled tree starts each worker at its .js entry; see
// workerStart in contract.ts). Worker threads do not inherit tsx's loader from the parent's
// `--import tsx` (Node 20), so a worker starts here: register tsx in this thread, then load the
// real entry named in workerData.__entry and re-export its default (piscina's task).
import { workerData } from 'node:worker_threads';

if (workerData.__entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
const mod = await import(workerData.__entry);
export default mod.default;
