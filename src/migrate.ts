// `uchat migrate`: open the configured store, which applies its pending schema migrations (the
// code every start runs in the persistence actor, a MySQL database's under its named lock), and
// close it again.

import { MYSQL_SCHEMA_VERSION } from '../workers/stores/mysql/migrations.ts';
import { openStore } from '../workers/stores/open-store.ts';
import { SCHEMA_VERSION } from '../workers/stores/sqlite/migrations.ts';
import type { Config } from './config.ts';

/** Migrate and close; resolves with the schema version the store is now at. */
export async function migrateStore(cfg: Config): Promise<number> {
  const store = await openStore(cfg);
  await store.close();
  return cfg.store.kind === 'sqlite' ? SCHEMA_VERSION : MYSQL_SCHEMA_VERSION;
}
