// Open the configured store (migrating it) for the persistence actor.

import type { Config } from '../../src/config.ts';
import { maxRowBytes } from './mysql/connection.ts';
import { MysqlStore } from './mysql/store.ts';
import { SqliteStore } from './sqlite/store.ts';
import type { EventStore } from './events.ts';
import type { ClusterStore, DirectoryStore, MessageStore } from './store.ts';

/** What the actor writes through; a store several nodes can share has the cluster's commit too. */
export type ActorStore = MessageStore & DirectoryStore & Partial<ClusterStore> & { readonly events: EventStore };

export async function openStore(cfg: Config): Promise<ActorStore> {
  if (cfg.store.kind === 'sqlite') return new SqliteStore(cfg.store.path, cfg.sqliteSync, cfg.dedupeWindowMs);
  // A writer idle inside a transaction for as long as a silent node is declared dead is ended by
  // the server, its row locks released (cluster: another node's commits wait at most that long).
  const store = await MysqlStore.open(cfg.store.url, Math.max(1, Math.ceil(cfg.nodeTimeoutMs / 1000)));
  // A batch is split to fit max_allowed_packet, but one message's row cannot be: a server that
  // could not take the largest message would refuse its commit for ever.
  const need = maxRowBytes(cfg.maxPayload);
  if (store.packetBytes < need) {
    await store.close();
    throw new Error(`the MySQL server's max_allowed_packet is too small for CHAT_MAX_PAYLOAD=${cfg.maxPayload}: ` +
      `a message may need ${need} bytes in one statement; raise max_allowed_packet to at least ${need + 4096} or lower CHAT_MAX_PAYLOAD`);
  }
  return store;
}
