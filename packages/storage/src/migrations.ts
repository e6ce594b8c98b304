import { sql, type Compilable, type CompiledQuery, type Kysely } from 'kysely';
import type BetterSqlite3 from 'better-sqlite3';
import type { SqlDialect } from './database.js';

/**
 * One schema change. `statements` builds the DDL with kysely (so one definition serves both
 * dialects); the runner executes it inside one transaction together with the version row.
 */
export interface Migration {
  version: number;
  name: string;
  statements(db: AnyKysely, dialect: SqlDialect): Compilable[];
}

/** DDL and the version table run before (and outside) the typed `Database` schema. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyKysely = Kysely<any>;

/** The applied-versions table (one row per migration). */
export const MIGRATIONS_TABLE = 'schema_migrations';

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    statements(db, dialect) {
      const ms = 'bigint';
      return [
        db.schema
          .createTable('agents')
          .addColumn('client_id', 'text', (c) => c.primaryKey())
          .addColumn('client_secret_hash', 'text', (c) => c.notNull())
          .addColumn('agent_id', 'text', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('name', 'text')
          .addColumn('developer', 'text', (c) => c.notNull())
          .addColumn('purpose', 'text')
          .addColumn('redirect_uris', 'text')
          .addColumn('requested_providers', 'text', (c) => c.notNull())
          .addColumn('approvals', 'text', (c) => c.notNull())
          .addColumn('approval_expires_at', ms, (c) => c.notNull())
          .addColumn('created_at', ms, (c) => c.notNull())
          .addColumn('updated_at', ms, (c) => c.notNull()),
        db.schema.createIndex('agents_agent_id_key').unique().on('agents').column('agent_id'),
        db.schema.createIndex('agents_created_at_idx').on('agents').columns(['created_at', 'client_id']),

        db.schema
          .createTable('jti')
          .addColumn('agent_id', 'text', (c) => c.notNull())
          .addColumn('jti', 'text', (c) => c.notNull())
          .addColumn('expires_at', ms, (c) => c.notNull())
          .addPrimaryKeyConstraint('jti_pkey', ['agent_id', 'jti']),
        db.schema.createIndex('jti_expires_at_idx').on('jti').column('expires_at'),

        db.schema
          .createTable('sessions')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('client_id', 'text', (c) => c.notNull())
          .addColumn('agent_id', 'text', (c) => c.notNull())
          .addColumn('provider_id', 'text', (c) => c.notNull())
          .addColumn('requested_scopes', 'text', (c) => c.notNull())
          .addColumn('agent_state', 'text', (c) => c.notNull())
          .addColumn('user_redirect_uri', 'text')
          .addColumn('resource', 'text')
          .addColumn('code_verifier', 'text', (c) => c.notNull())
          .addColumn('upstream_state_hash', 'text', (c) => c.notNull())
          .addColumn('binding_hash', 'text')
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('user_id', 'text')
          .addColumn('consented_scopes', 'text')
          .addColumn('grant_id', 'text')
          .addColumn('completion_code_hash', 'text')
          .addColumn('failure', 'text')
          .addColumn('extra', 'text')
          .addColumn('created_at', ms, (c) => c.notNull())
          .addColumn('expires_at', ms, (c) => c.notNull())
          .addColumn('updated_at', ms, (c) => c.notNull()),
        db.schema
          .createIndex('sessions_upstream_state_hash_idx')
          .on('sessions')
          .column('upstream_state_hash'),
        db.schema.createIndex('sessions_expires_at_idx').on('sessions').column('expires_at'),

        db.schema
          .createTable('tokens')
          .addColumn('token_hash', 'text', (c) => c.primaryKey())
          .addColumn('client_id', 'text', (c) => c.notNull())
          .addColumn('agent_id', 'text', (c) => c.notNull())
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('provider_id', 'text', (c) => c.notNull())
          .addColumn('scopes', 'text', (c) => c.notNull())
          .addColumn('session_id', 'text', (c) => c.notNull())
          .addColumn('grant_id', 'text')
          .addColumn('resource', 'text')
          .addColumn('created_at', ms, (c) => c.notNull())
          .addColumn('expires_at', ms, (c) => c.notNull())
          .addColumn('revoked_at', ms),
        db.schema.createIndex('tokens_client_id_idx').on('tokens').column('client_id'),
        db.schema.createIndex('tokens_user_id_idx').on('tokens').column('user_id'),
        db.schema.createIndex('tokens_expires_at_idx').on('tokens').column('expires_at'),

        db.schema
          .createTable('grants')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('provider_id', 'text', (c) => c.notNull())
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('ciphertext', 'text', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('lease_until', ms)
          .addColumn('created_at', ms, (c) => c.notNull())
          .addColumn('updated_at', ms, (c) => c.notNull()),

        db.schema
          .createTable('audit')
          .addColumn('seq', dialect === 'postgres' ? 'bigint' : 'integer', (c) =>
            dialect === 'postgres'
              ? c.primaryKey().generatedAlwaysAsIdentity()
              : c.primaryKey().autoIncrement(),
          )
          .addColumn('timestamp', 'text', (c) => c.notNull())
          .addColumn('event', 'text', (c) => c.notNull())
          .addColumn('agent_id', 'text')
          .addColumn('data', 'text', (c) => c.notNull()),
        db.schema.createIndex('audit_timestamp_idx').on('audit').column('timestamp'),
        db.schema.createIndex('audit_event_idx').on('audit').column('event'),
        db.schema.createIndex('audit_agent_id_idx').on('audit').column('agent_id'),

        db.schema
          .createTable('rate_limits')
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('window_start', ms, (c) => c.notNull())
          .addColumn('count', 'integer', (c) => c.notNull())
          .addPrimaryKeyConstraint('rate_limits_pkey', ['key', 'window_start']),
        db.schema.createIndex('rate_limits_window_start_idx').on('rate_limits').column('window_start'),
      ];
    },
  },
  {
    version: 2,
    name: 'handshakes',
    statements(db) {
      const ms = 'bigint';
      return [
        db.schema
          .createTable('handshakes')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('client_id', 'text', (c) => c.notNull())
          .addColumn('agent_id', 'text', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('created_at', ms, (c) => c.notNull())
          .addColumn('expires_at', ms, (c) => c.notNull())
          .addColumn('updated_at', ms, (c) => c.notNull()),
        db.schema.createIndex('handshakes_expires_at_idx').on('handshakes').column('expires_at'),
        db.schema.alterTable('tokens').addColumn('restrictions', 'text'),
      ];
    },
  },
  {
    version: 3,
    name: 'sessions-by-state-index',
    statements(db) {
      // The callback's lookup (state hash, newest first) is answered from the index alone, without
      // sorting the matches in a temporary b-tree.
      return [
        db.schema
          .createIndex('sessions_upstream_state_created_idx')
          .on('sessions')
          .columns(['upstream_state_hash', 'created_at']),
        db.schema.dropIndex('sessions_upstream_state_hash_idx'),
      ];
    },
  },
];

function versionTable(db: AnyKysely): Compilable {
  return db.schema
    .createTable(MIGRATIONS_TABLE)
    .ifNotExists()
    .addColumn('version', 'integer', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('applied_at', 'bigint', (c) => c.notNull());
}

/** Arbitrary constant: first key of the advisory lock that serialises migrations per schema. */
const PG_MIGRATION_LOCK = 0x41544801;

/**
 * Applies the missing migrations on PostgreSQL in one transaction, serialised across processes by
 * an advisory lock (so several gateway instances may start at once). Creates `schema` if needed.
 * Returns the versions applied by this call.
 */
export async function migratePostgres(
  db: AnyKysely,
  schema: string | undefined,
  now: number = Date.now(),
): Promise<number[]> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${PG_MIGRATION_LOCK}::int4, hashtext(${schema ?? ''}))`.execute(
      trx,
    );
    if (schema !== undefined) await trx.schema.createSchema(schema).ifNotExists().execute();
    await trx.executeQuery(versionTable(trx).compile());
    const rows = await trx.selectFrom(MIGRATIONS_TABLE).select('version').execute();
    const applied = new Set(rows.map((r: { version: unknown }) => Number(r.version)));
    const done: number[] = [];
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      for (const st of m.statements(trx, 'postgres')) await trx.executeQuery(st.compile());
      await trx
        .insertInto(MIGRATIONS_TABLE)
        .values({ version: m.version, name: m.name, applied_at: now })
        .execute();
      done.push(m.version);
    }
    return done;
  });
}

/**
 * Applies the missing migrations on SQLite. The DDL is compiled by kysely but executed
 * synchronously on the raw handle inside `BEGIN IMMEDIATE`, so two processes (or two stores in one
 * process) opening the same file at once cannot both migrate, and nothing can interleave.
 * Opening an up-to-date database performs no write.
 */
export function migrateSqlite(
  db: AnyKysely,
  raw: BetterSqlite3.Database,
  now: number = Date.now(),
): number[] {
  const run = (q: CompiledQuery): void => void raw.prepare(q.sql).run(...(q.parameters as unknown[]));
  const all = (q: CompiledQuery): unknown[] => raw.prepare(q.sql).all(...(q.parameters as unknown[]));
  const pending = (): Migration[] => {
    const exists = raw
      .prepare(`select 1 from sqlite_master where type = 'table' and name = ?`)
      .get(MIGRATIONS_TABLE);
    if (exists === undefined) return [...MIGRATIONS];
    const rows = all(db.selectFrom(MIGRATIONS_TABLE).select('version').compile()) as { version: number }[];
    const applied = new Set(rows.map((r) => Number(r.version)));
    return MIGRATIONS.filter((m) => !applied.has(m.version));
  };
  if (pending().length === 0) return [];
  const apply = raw.transaction((): number[] => {
    run(versionTable(db).compile());
    const done: number[] = [];
    for (const m of pending()) {
      for (const st of m.statements(db, 'sqlite')) run(st.compile());
      run(
        db
          .insertInto(MIGRATIONS_TABLE)
          .values({ version: m.version, name: m.name, applied_at: now })
          .compile(),
      );
      done.push(m.version);
    }
    return done;
  });
  return apply.immediate();
}
