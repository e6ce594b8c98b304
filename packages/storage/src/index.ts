export { SqlStore, type SqlStoreOptions, type RevocationBus } from './sql-store.js';
export { createSqliteStore, type SqliteStoreOptions } from './sqlite.js';
export { createPostgresStore, DEFAULT_CONNECTION_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, REVOCATION_CHANNEL, type PostgresStoreOptions } from './postgres.js';
export { openStore, createMemoryStore } from './open.js';
export { MemoryStore } from '@athkit/core';
export {
  MIGRATIONS,
  MIGRATIONS_TABLE,
  migratePostgres,
  migrateSqlite,
  type Migration,
} from './migrations.js';
export type { Database, SqlDialect } from './database.js';
