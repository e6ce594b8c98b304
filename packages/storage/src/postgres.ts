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
  /**
   * Extra settings for the pool the store creates (when `pool` is not given). Unless set here,
   * `connectionTimeoutMillis` is {@link DEFAULT_CONNECTION_TIMEOUT_MS} and `statement_timeout`
   * {@link DEFAULT_STATEMENT_TIMEOUT_MS}, so an unreachable server, or one that cannot finish a
   * statement, fails a call (503, threats I3) instead of holding it. Migrations run on their own
   * connection without the statement timeout.
   */
  poolConfig?: Omit<pg.PoolConfig, 'connectionString'>;
  /** Schema holding every table; created if missing. Default: the connection's search_path. */
  schema?: string;
}

/** How long the pools we create wait for a new connection before failing the call (ms). */
export const DEFAULT_CONNECTION_TIMEOUT_MS = 5000;

/** How long a statement may run on the pools we create before the server cancels it (ms; `statement_timeout`). */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 10_000;

/** How long a session of the pools we create may sit inside a transaction doing nothing (ms). */
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;

/** How long the revocation feed waits before listening again after losing its connection (ms). */
const RELISTEN_DELAY_MS = 1000;

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
  const settings: pg.PoolConfig = {
    connectionTimeoutMillis: DEFAULT_CONNECTION_TIMEOUT_MS,
    // A peer that vanished without a reset (a silent network drop) is noticed by TCP keepalive
    // instead of hanging queries and the LISTEN connection indefinitely (threats I3).
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // A statement the server cannot finish in time (a lock held elsewhere, an overloaded server) is
    // cancelled by the server itself, so its transaction rolls back cleanly and the connection is
    // reusable; the call fails with 503. (pg's client-side query_timeout is not used: it gives up
    // without cancelling, and the connection goes back to the pool still inside the transaction.)
    statement_timeout: DEFAULT_STATEMENT_TIMEOUT_MS,
    // A safety net: a session left inside a transaction is ended by the server.
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    ...options.poolConfig,
    ...(options.connectionString !== undefined ? { connectionString: options.connectionString } : {}),
    types: int8AsNumber,
  };
  const pool = options.pool ?? new pg.Pool(settings);
  // An idle connection dropped by the server must not crash the process; the next query reconnects.
  if (ownPool) pool.on('error', () => undefined);
  const base = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const db = schema !== undefined ? base.withSchema(schema) : base;
  const release = async (): Promise<void> => {
    if (ownPool) await base.destroy();
  };
  try {
    if (ownPool) {
      // Migrations get a connection of their own without the statement bound: an index built on a
      // large table may rightly take longer than a call may wait.
      const migrationPool = new pg.Pool({ ...settings, max: 1, statement_timeout: 0 });
      migrationPool.on('error', () => undefined);
      const migrator = new Kysely<Database>({ dialect: new PostgresDialect({ pool: migrationPool }) });
      try {
        await migratePostgres(schema !== undefined ? migrator.withSchema(schema) : migrator, schema);
      } finally {
        await migrator.destroy();
      }
    } else {
      await migratePostgres(db, schema);
    }
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

/**
 * LISTEN/NOTIFY transport. One dedicated connection per store while anyone is listening. When that
 * connection is lost (server restart, network cut), notifications sent meanwhile are gone for
 * good: the bus tells the store's listeners at once (`{ kind: 'feed', live: false }`), listens
 * again every second until it succeeds, and then says so (`{ kind: 'feed', live: true }`), so core
 * can stop trusting its token cache in between (threats I3).
 */
class PgRevocationBus implements RevocationBus {
  private readonly origin = randomUUID();
  private client: pg.PoolClient | undefined;
  /** Removes this bus's handlers from `client` (before it goes back to the pool for reuse). */
  private detach: (() => void) | undefined;
  private onEvent: ((event: RevocationEvent) => void) | undefined;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
  ) {}

  async publish(trx: Transaction<Database>, event: RevocationEvent): Promise<void> {
    if (event.kind === 'feed') return; // the feed's state is local to each instance
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
    const detach = this.detach;
    this.client = undefined;
    this.detach = undefined;
    if (!client) return;
    try {
      await client.query(`UNLISTEN ${REVOCATION_CHANNEL}`);
      client.release();
      detach?.(); // after release: the pool's own 'error' handler is back on it
    } catch (e) {
      client.release(e instanceof Error ? e : true);
    }
  }

  /** Resolves once LISTEN is in place (true), or false when unsubscribed meanwhile. */
  private async connect(): Promise<boolean> {
    const client = await this.pool.connect();
    const onNotification = (msg: pg.Notification): void => this.deliver(msg);
    // pg reports a dead connection as 'error' (and then 'end'); either one means the feed is gone.
    // These stay on a client that failed (it is discarded), so a late 'error' never goes unheard.
    const onError = (err: Error): void => this.lost(client, err);
    const onEnd = (): void => this.lost(client, new Error('Connection terminated'));
    client.on('notification', onNotification);
    client.on('error', onError);
    client.on('end', onEnd);
    try {
      await client.query(`LISTEN ${REVOCATION_CHANNEL}`);
    } catch (e) {
      client.release(e instanceof Error ? e : true);
      throw e;
    }
    if (!this.onEvent || this.client) {
      // Unsubscribed while connecting, or another attempt got there first.
      client.release(true);
      return false;
    }
    this.client = client;
    this.detach = () => {
      client.off('notification', onNotification);
      client.off('error', onError);
      client.off('end', onEnd);
    };
    return true;
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

  /** The listening connection died: say so, drop it, and listen again (once a second) while still subscribed. */
  private lost(client: pg.PoolClient, err: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.detach = undefined;
    client.release(err);
    this.onEvent?.({ kind: 'feed', live: false });
    const again = (): void => {
      this.retry = undefined;
      if (!this.onEvent || this.client) return;
      this.connect().then(
        (listening) => {
          if (listening) this.onEvent?.({ kind: 'feed', live: true });
        },
        () => {
          if (this.onEvent && !this.client) this.retry = setTimeout(again, RELISTEN_DELAY_MS).unref();
        },
      );
    };
    this.retry = setTimeout(again, RELISTEN_DELAY_MS).unref();
  }
}
