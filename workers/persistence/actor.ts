// The persistence actor: a dedicated worker thread that alone owns the write buffer and the
// database write connection. This entry opens the store, composes the actor's parts and wires
// them to the front thread's MessagePort:
// - intake.ts: the inbox, strictly in order (dedupe on (sender, cid), acceptance);
// - assign.ts with local-sequencing.ts or cluster-sequencing.ts, chosen once here: where and
//   when a message gets its id and seq;
// - group-commit.ts: where it is written; room-cache.ts and room-state.ts: the rooms it knows;
// - admin.ts: host-app operations; retention.ts: deleting expired messages.

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { decodeBatch, encodeBatch, type ActorInit, type ToActor } from '../contract.ts';
import { IdGenerator } from '../ids.ts';
import { openStore, type ActorStore } from '../stores/open-store.ts';
import type { ClusterStore } from '../stores/store.ts';
import { Admin } from './admin.ts';
import { Assigner } from './assign.ts';
import { Backoff } from './backoff.ts';
import { ClusterSequencing } from './cluster-sequencing.ts';
import { GroupCommit } from './group-commit.ts';
import { Intake } from './intake.ts';
import { LocalSequencing } from './local-sequencing.ts';
import { Outbox } from './outbox.ts';
import { Quotas } from './quotas.ts';
import { purgeInterval, Retention } from './retention.ts';
import { Retraction } from './retraction.ts';
import { RoomCache } from './room-cache.ts';
import { RoomStates } from './room-state.ts';
import type { Sequencing } from './sequencing.ts';
import { Webhooks } from './webhooks.ts';

/** One node assigns at acceptance; a cluster (CHAT_REDIS_URL) in the commit, on a shared store. */
function sequencingFor(cfg: ActorInit['config'], store: ActorStore, assigner: Assigner): Sequencing {
  if (cfg.redisUrl === null) return new LocalSequencing(assigner, store);
  if (!shareable(store)) throw new Error('this store cannot be shared by a cluster');
  return new ClusterSequencing(assigner, store);
}

function shareable(store: ActorStore): store is ActorStore & ClusterStore {
  return store.commitAssign !== undefined;
}

async function main(): Promise<void> {
  const init = workerData as ActorInit;
  const port = parentPort!;
  const cfg = init.config;
  const store = await openStore(cfg);
  const ids = new IdGenerator(cfg.nodeId);
  const seq = sequencingFor(cfg, store, new Assigner(ids));
  const out = new Outbox((buf) => port.postMessage(buf, [buf.buffer as ArrayBuffer]));
  const backoff = new Backoff();
  // Webhooks on: events are written with their causes and delivered from here (webhooks.ts).
  const hooks = cfg.webhookUrl === null ? null : new Webhooks(store.events, cfg, cfg.redisUrl !== null);
  const quotas = new Quotas(store, cfg);
  const rooms = new RoomCache(store, ids, (id, err) => seq.createFailed(id, err), quotas, hooks);
  const commits = new GroupCommit(seq, store, rooms, out, backoff, cfg, hooks);
  const states = new RoomStates(rooms, seq, commits, store, cfg);
  const admin = new Admin(store, ids, commits, rooms, quotas, hooks);
  const retention = new Retention(store, cfg.retentionMs);
  const intake = new Intake(store, rooms, seq, commits, out, backoff, cfg.delivery === 'immediate', {
    load: (c) => states.load(c),
    request: (reqId, op) => admin.request(reqId, op),
    hooks: (c) => (hooks === null ? Promise.resolve({ t: 'hooksReply', reqId: c.reqId, events: null, count: -1 }) : hooks.request(c.reqId, c.body)),
    eventFull: hooks === null ? null : () => hooks.full(),
    shutdown: async () => {
      retention.stop();
      hooks?.stop();
      await commits.drain();
      out.flush();
      await store.close();
      setImmediate(() => port.close());
    },
  }, new Retraction(store));
  port.on('message', (buf: Uint8Array) => intake.receive(decodeBatch<ToActor>(buf)));
  // Report the actor's event-loop delay once a second (the front thread exposes it in /metrics).
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const statsTimer = setInterval(() => {
    // The monitor's own 10 ms sampling period is part of every reading: subtract it.
    port.postMessage(encodeBatch([{ t: 'stats', loopLagMs: Math.max(0, lag.percentile(99) / 1e6 - 10), hooks: hooks?.stats() ?? null }]));
    lag.reset();
  }, 1000);
  statsTimer.unref();
  port.once('close', () => clearInterval(statsTimer));
  if (cfg.retentionMs > 0) {
    setInterval(() => void retention.purge(), purgeInterval(cfg.retentionMs)).unref();
    void retention.purge();
  }
  // The version first: a change committed while the blocks are read is also after it.
  const dirVersion = await store.dirVersion();
  port.postMessage(encodeBatch([{ t: 'ready', blocks: await store.allBlocks(), dirVersion }]));
  await hooks?.start();
}

void main();
