import { mkdirSync, realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely } from 'kysely';
import type { Database } from './database.js';
import { wrapError } from './errors.js';
import { migrateSqlite } from './migrations.js';
import { GroupCommitSqliteDialect } from './sqlite-group-commit.js';
import { SqlStore } from './sql-store.js';

export interface SqliteStoreOptions {
  /** Path of the database file (its directory is created if missing), or `:memory:`. */
  filename: string;
  /** How long a writer waits for another process's write lock before failing. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * `NORMAL` (default) in WAL mode: a committed transaction survives a crash or SIGKILL of the
   * process (the WAL is written before the call returns); only an OS crash or power loss can lose
   * the last commits. `FULL` also fsyncs the WAL on every commit, for power-loss durability.
   */
  synchronous?: 'NORMAL' | 'FULL';
  /**
   * WAL pages written before a commit checkpoints them into the database file (SQLite's
   * `wal_autocheckpoint`). Default 10,000 (~40 MB of WAL at 4 KiB pages) instead of SQLite's 1,000:
   * a write-heavy handshake load then checkpoints a tenth as often, and pages written again and
   * again (index tails, the audit log) are copied once per checkpoint. Durability is the same.
   */
  walAutocheckpointPages?: number;
}

/**
 * The embedded default store: SQLite through better-sqlite3, WAL mode, with group commit (the
 * statements of one event-loop turn share a transaction and are acknowledged after its commit; see
 * sqlite-group-commit.ts). Several stores (and several processes on one machine) may share the file:
 * every race-deciding method is one statement and SQLite serialises writers. Revocation events reach
 * only listeners of the same store instance.
 */
export async function createSqliteStore(options: SqliteStoreOptions): Promise<SqlStore> {
  const filename = options.filename;
  const inMemory = filename === ':memory:' || filename === '';
  let raw: SqliteDatabase.Database;
  try {
    if (!inMemory) mkdirSync(dirname(filename), { recursive: true });
    raw = new SqliteDatabase(filename);
  } catch (e) {
    throw wrapError(e);
  }
  const db = new Kysely<Database>({
    dialect: new GroupCommitSqliteDialect({
      database: raw,
      prepare: cachedStatements(raw),
      // The real path: two spellings of one file (symlinks, ..) must share one key.
      fileKey: inMemory ? undefined : realpathSync(filename),
    }),
  });
  try {
    raw.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
    if (!inMemory) raw.pragma('journal_mode = WAL');
    // WAL + NORMAL: durable against a process crash (each commit is in the WAL file before the
    // statement returns); see SqliteStoreOptions.synchronous for the power-loss trade-off.
    raw.pragma(`synchronous = ${options.synchronous === 'FULL' ? 'FULL' : 'NORMAL'}`);
    if (!inMemory)
      raw.pragma(`wal_autocheckpoint = ${Math.max(0, Math.trunc(options.walAutocheckpointPages ?? 10_000))}`);
    raw.pragma('foreign_keys = OFF');
    migrateSqlite(db, raw);
  } catch (e) {
    await db.destroy().catch(() => undefined);
    if (raw.open) raw.close();
    throw wrapError(e);
  }
  return new SqlStore(db, {
    dialect: 'sqlite',
    release: async () => {
      await db.destroy();
      if (raw.open) raw.close();
    },
  });
}

/** How many distinct SQL texts keep a prepared statement (the store issues a few dozen). */
const MAX_CACHED_STATEMENTS = 256;

/**
 * Prepared statements reused by SQL text: preparing costs as much as running a short query. Reuse
 * is safe because the store never streams; `all`/`run` finish before the next statement.
 */
function cachedStatements(raw: SqliteDatabase.Database): (sql: string) => SqliteDatabase.Statement {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return (sql) => {
    let statement = statements.get(sql);
    if (!statement) {
      if (statements.size >= MAX_CACHED_STATEMENTS) statements.clear();
      statement = raw.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
}
