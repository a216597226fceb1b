// Open the configured store (migrating it) for the persistence actor.

import type { Config } from '../src/config.ts';
import { MysqlStore } from './mysql-store.ts';
import { SqliteStore } from './sqlite-store.ts';
import type { DirectoryStore, MessageStore } from './store.ts';

export async function openStore(cfg: Config): Promise<MessageStore & DirectoryStore> {
  if (cfg.store.kind === 'sqlite') return new SqliteStore(cfg.store.path, cfg.sqliteSync);
  return MysqlStore.open(cfg.store.url);
}
