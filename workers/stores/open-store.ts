// Open the configured store (migrating it) for the persistence actor.

import type { Config } from '../../src/config.ts';
import { MysqlStore } from './mysql/store.ts';
import { SqliteStore } from './sqlite/store.ts';
import type { ClusterStore, DirectoryStore, MessageStore } from './store.ts';

/** What the actor writes through; a store several nodes can share has the cluster's commit too. */
export type ActorStore = MessageStore & DirectoryStore & Partial<ClusterStore>;

export async function openStore(cfg: Config): Promise<ActorStore> {
  if (cfg.store.kind === 'sqlite') return new SqliteStore(cfg.store.path, cfg.sqliteSync);
  // A writer idle inside a transaction for as long as a silent node is declared dead is ended by
  // the server, its row locks released (cluster: another node's commits wait at most that long).
  return MysqlStore.open(cfg.store.url, Math.max(1, Math.ceil(cfg.nodeTimeoutMs / 1000)));
}
