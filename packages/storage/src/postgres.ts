import { randomUUID } from 'node:crypto';
import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import type { RevocationEvent } from '@athkit/core';
import type { Database } from './database.js';
import { safeError, wrapError } from './errors.js';
import { migratePostgres } from './migrations.js';
import { SqlStore, type RevocationBus } from './sql-store.js';

export interface PostgresStoreOptions {
  /** `postgres://…`; ignored when `pool` is given. Without either, pg's PG* environment variables apply. */
  connectionString?: string;
  /**
   * Your own pool. The store uses it as is (its type parsers are not changed: bigint columns are
   * converted per value), holds one of its connections while revocations are watched, and does
   * NOT end it on close().
   */
  pool?: pg.Pool;
  /** Extra settings for the pool the store creates (when `pool` is not given). */
  poolConfig?: Omit<pg.PoolConfig, 'connectionString'>;
  /** Schema holding every table; created if missing. Default: the connection's search_path. */
  schema?: string;
}

/** NOTIFY channel shared by all athkit stores of a database; payloads carry the schema. */
export const REVOCATION_CHANNEL = 'athkit_revocations';

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** OID of PostgreSQL's int8 (bigint). */
const INT8_OID = 20;

/** int8 → JS number for the pools we create (times in ms and counts are far below 2^53). */
const int8AsNumber = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): ((value: string) => unknown) =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : (pg.types.getTypeParser(oid, format) as (value: string) => unknown)) as typeof pg.types.getTypeParser,
};

/**
 * PostgreSQL store, for several gateway instances sharing one database. Revocations are
 * broadcast with NOTIFY in the revoking transaction and received with LISTEN on a dedicated
 * connection, so every instance's watchRevocations listeners learn of them right after commit.
 */
export async function createPostgresStore(options: PostgresStoreOptions = {}): Promise<SqlStore> {
  const schema = options.schema;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) throw safeError('invalid PostgreSQL schema name');
  const ownPool = options.pool === undefined;
  const pool =
    options.pool ??
    new pg.Pool({
      ...options.poolConfig,
      ...(options.connectionString !== undefined ? { connectionString: options.connectionString } : {}),
      types: int8AsNumber,
    });
  // An idle connection dropped by the server must not crash the process; the next query reconnects.
  if (ownPool) pool.on('error', () => undefined);
  const base = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const db = schema !== undefined ? base.withSchema(schema) : base;
  const release = async (): Promise<void> => {
    if (ownPool) await base.destroy();
  };
  try {
    await migratePostgres(db, schema);
  } catch (e) {
    await release().catch(() => undefined);
    throw wrapError(e);
  }
  return new SqlStore(db, { dialect: 'postgres', bus: new PgRevocationBus(pool, schema ?? ''), release });
}

interface Payload {
  s: string;
  o: string;
  e: RevocationEvent;
}

/** LISTEN/NOTIFY transport. One dedicated connection per store while anyone is listening. */
class PgRevocationBus implements RevocationBus {
  private readonly origin = randomUUID();
  private client: pg.PoolClient | undefined;
  private onEvent: ((event: RevocationEvent) => void) | undefined;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
  ) {}

  async publish(trx: Transaction<Database>, event: RevocationEvent): Promise<void> {
    const payload: Payload = { s: this.schema, o: this.origin, e: event };
    await sql`select pg_notify(${REVOCATION_CHANNEL}, ${JSON.stringify(payload)})`.execute(trx);
  }

  async subscribe(onEvent: (event: RevocationEvent) => void): Promise<void> {
    this.onEvent = onEvent;
    if (!this.client) await this.connect();
  }

  async unsubscribe(): Promise<void> {
    this.onEvent = undefined;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    try {
      await client.query(`UNLISTEN ${REVOCATION_CHANNEL}`);
      client.release();
    } catch (e) {
      client.release(e instanceof Error ? e : true);
    }
  }

  private async connect(): Promise<void> {
    const client = await this.pool.connect();
    client.on('notification', (msg) => this.deliver(msg));
    client.on('error', (err) => this.lost(client, err));
    try {
      await client.query(`LISTEN ${REVOCATION_CHANNEL}`);
    } catch (e) {
      client.release(e instanceof Error ? e : true);
      throw e;
    }
    if (!this.onEvent) {
      // Unsubscribed while connecting.
      client.release(true);
      return;
    }
    this.client = client;
  }

  private deliver(msg: pg.Notification): void {
    if (msg.channel !== REVOCATION_CHANNEL || msg.payload === undefined) return;
    let payload: Payload;
    try {
      payload = JSON.parse(msg.payload) as Payload;
    } catch {
      return;
    }
    if (payload.s !== this.schema || payload.o === this.origin) return;
    const e = payload.e;
    if (e?.kind === 'token' && typeof e.tokenHash === 'string')
      this.onEvent?.({ kind: 'token', tokenHash: e.tokenHash });
    else if (e?.kind === 'agent' && typeof e.clientId === 'string')
      this.onEvent?.({ kind: 'agent', clientId: e.clientId });
  }

  /** The listening connection died: drop it and reconnect (once a second) while still subscribed. */
  private lost(client: pg.PoolClient, err: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.release(err);
    const again = (): void => {
      this.retry = undefined;
      if (!this.onEvent || this.client) return;
      this.connect().catch(() => {
        if (this.onEvent) this.retry = setTimeout(again, 1000).unref();
      });
    };
    this.retry = setTimeout(again, 1000).unref();
  }
}
