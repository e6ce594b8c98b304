import type SqliteDatabase from 'better-sqlite3';
import {
  CompiledQuery,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
} from 'kysely';

/**
 * Group commit for the embedded SQLite store.
 *
 * A commit costs far more than the statement it commits (the WAL append and its bookkeeping: ~100 µs
 * on a virtual disk against ~10 µs for an indexed insert), and a handshake writes about ten times.
 * So statements issued while a group is open share one transaction: the first write of an event-loop
 * turn opens it (`BEGIN IMMEDIATE`), every statement of that turn runs inside it in arrival order, and
 * one `COMMIT` closes it at the end of the turn (or once it holds `maxGroupSize` statements).
 *
 * The guarantees are those of running the statements one by one in that order:
 * - nothing is acknowledged before it is durable: every statement of a group (reads included, since
 *   they may have seen the group's uncommitted rows) settles only after the group commits; if the
 *   commit fails, every statement of the group fails with that error and none of it is applied;
 * - a statement's own error (e.g. a unique violation) undoes only that statement (SQLite's ABORT),
 *   and is reported once the group has committed; an error that ends the transaction fails the group;
 * - a read with no group open runs at once, outside any transaction, and sees committed rows only.
 * Explicit transactions (kysely `transaction()`) first wait for the open group to commit and then run
 * alone, like on kysely's own SQLite driver.
 */
export class GroupCommitSqliteDialect implements Dialect {
  readonly #driver: GroupCommitSqliteDriver;

  constructor(options: GroupCommitOptions) {
    this.#driver = new GroupCommitSqliteDriver(options);
  }

  createAdapter(): DialectAdapter {
    return new SqliteAdapter();
  }

  createDriver(): Driver {
    return this.#driver;
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}

export interface GroupCommitOptions {
  /** The open database (WAL mode for file databases). Closed by the driver's destroy(). */
  database: SqliteDatabase.Database;
  /** Returns a prepared statement for the SQL text (the caller may cache them). */
  prepare: (sql: string) => SqliteDatabase.Statement;
  /** Statements per group before it commits without waiting for the end of the turn. Default 512. */
  maxGroupSize?: number;
  /**
   * Identifies the database file (its absolute path) among the handles this process has open on it;
   * omit for `:memory:`. See `openGroups`.
   */
  fileKey?: string;
}

/**
 * The driver holding an open group, per database file, in this process. A group holds SQLite's write
 * lock until the end of the turn, and another handle of the same process asking for the lock would
 * wait synchronously (busy_timeout) for a commit that cannot come while the thread waits; so a new
 * group first commits the other handle's open group.
 */
const openGroups = new Map<string, GroupCommitSqliteDriver>();

interface Pending {
  resolve: (result: QueryResult<unknown>) => void;
  reject: (error: unknown) => void;
  result?: QueryResult<unknown>;
  error?: unknown;
  failed: boolean;
}

class GroupCommitSqliteDriver implements Driver {
  readonly #db: SqliteDatabase.Database;
  readonly #prepare: (sql: string) => SqliteDatabase.Statement;
  readonly #maxGroupSize: number;
  readonly #fileKey: string | undefined;
  /** Statements of the open group, in execution order; null when no group is open. */
  #group: Pending[] | null = null;
  /** Settles when the open group has committed or failed. */
  #groupDone: Promise<void> | null = null;
  #groupDoneResolve: (() => void) | null = null;
  /** Held by the connection running an explicit transaction; everyone else waits. */
  #exclusive: { owner: GroupConnection; released: Promise<void>; release: () => void } | null = null;

  constructor(options: GroupCommitOptions) {
    this.#db = options.database;
    this.#prepare = options.prepare;
    this.#maxGroupSize = Math.max(1, options.maxGroupSize ?? 512);
    this.#fileKey = options.fileKey;
  }

  async init(): Promise<void> {}

  // Connections are cheap views of the one database handle: queries need no mutex because every
  // statement runs synchronously; only explicit transactions take the handle for themselves.
  acquireConnection(): Promise<DatabaseConnection> {
    return Promise.resolve(new GroupConnection(this));
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    const exclusive = this.#exclusive;
    if (exclusive && exclusive.owner === connection) {
      // kysely always commits or rolls back first; this only guards against a lost handle.
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      this.#exclusive = null;
      exclusive.release();
    }
    return Promise.resolve();
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    const conn = connection as GroupConnection;
    // Checked and claimed with no await in between, so two transactions cannot both claim it.
    while (this.#exclusive) await this.#exclusive.released;
    // Claimed before the open group commits, so no new group can start in between and starve us.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const claim = { owner: conn, released, release };
    this.#exclusive = claim;
    try {
      await this.flush();
      if (this.#fileKey !== undefined) openGroups.get(this.#fileKey)?.commitNow();
      this.#db.exec('BEGIN IMMEDIATE');
    } catch (e) {
      if (this.#exclusive === claim) this.#exclusive = null;
      release();
      throw e;
    }
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('COMMIT'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('ROLLBACK'));
  }

  async destroy(): Promise<void> {
    await this.flush();
    if (this.#db.open) this.#db.close();
  }

  /** Resolves once the open group (if any) has committed or failed. */
  async flush(): Promise<void> {
    if (this.#groupDone) {
      const done = this.#groupDone;
      this.#commitGroup();
      await done;
    }
  }

  async #waitForExclusive(conn: GroupConnection): Promise<void> {
    while (this.#exclusive && this.#exclusive.owner !== conn) await this.#exclusive.released;
  }

  async execute(conn: GroupConnection, query: CompiledQuery): Promise<QueryResult<unknown>> {
    await this.#waitForExclusive(conn);
    const statement = this.#prepare(query.sql);
    if (this.#exclusive?.owner === conn) return runStatement(statement, query.parameters);
    if (TRANSACTION_CONTROL.test(query.sql)) {
      // It would end (or nest in) the open group's transaction behind its back.
      throw new Error('use kysely transaction() for transactions on the SQLite store');
    }
    if (this.#group === null && statement.readonly) return runStatement(statement, query.parameters);
    return this.#runInGroup(statement, query.parameters);
  }

  #runInGroup(
    statement: SqliteDatabase.Statement,
    parameters: readonly unknown[],
  ): Promise<QueryResult<unknown>> {
    if (this.#group === null) {
      if (this.#fileKey !== undefined) {
        openGroups.get(this.#fileKey)?.commitNow();
        openGroups.set(this.#fileKey, this);
      }
      // Fails (SQLITE_BUSY after busy_timeout) when another process holds the write lock.
      try {
        this.#db.exec('BEGIN IMMEDIATE');
      } catch (e) {
        this.#forgetOpenGroup();
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
      this.#group = [];
      this.#groupDone = new Promise<void>((resolve) => (this.#groupDoneResolve = resolve));
      setImmediate(() => this.#commitGroup());
    }
    const group = this.#group;
    return new Promise<QueryResult<unknown>>((resolve, reject) => {
      const pending: Pending = { resolve, reject, failed: false };
      try {
        pending.result = runStatement(statement, parameters);
      } catch (e) {
        pending.failed = true;
        pending.error = e;
      }
      group.push(pending);
      if (pending.failed && !this.#db.inTransaction) {
        // The error ended the transaction (I/O error, disk full, ...): the whole group is undone.
        this.#settleGroup(pending.error);
      } else if (group.length >= this.#maxGroupSize) {
        this.#commitGroup();
      }
    });
  }

  /** Commits the open group now (another handle of this process needs the write lock). */
  commitNow(): void {
    this.#commitGroup();
  }

  #forgetOpenGroup(): void {
    if (this.#fileKey !== undefined && openGroups.get(this.#fileKey) === this)
      openGroups.delete(this.#fileKey);
  }

  #commitGroup(): void {
    if (this.#group === null) return;
    let failure: unknown;
    try {
      this.#db.exec('COMMIT');
    } catch (e) {
      failure = e;
      if (this.#db.inTransaction) {
        try {
          this.#db.exec('ROLLBACK');
        } catch {
          // The handle reports the original failure; nothing more to undo.
        }
      }
    }
    this.#settleGroup(failure);
  }

  /** Settles every statement of the group: with its own outcome, or all with `failure`. */
  #settleGroup(failure: unknown): void {
    const group = this.#group ?? [];
    const done = this.#groupDoneResolve;
    this.#group = null;
    this.#groupDone = null;
    this.#groupDoneResolve = null;
    this.#forgetOpenGroup();
    for (const p of group) {
      if (failure !== undefined) p.reject(failure);
      else if (p.failed) p.reject(p.error);
      else p.resolve(p.result as QueryResult<unknown>);
    }
    done?.();
  }
}

const TRANSACTION_CONTROL = /^\s*(begin|commit|end|rollback|savepoint|release)\b/i;

class GroupConnection implements DatabaseConnection {
  readonly #driver: GroupCommitSqliteDriver;

  constructor(driver: GroupCommitSqliteDriver) {
    this.#driver = driver;
  }

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.#driver.execute(this, query) as Promise<QueryResult<R>>;
  }

  streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    // Streaming would hold a statement open across turns, which group commit cannot allow.
    throw new Error('streaming queries are not supported by the SQLite store');
  }
}

function runStatement(
  statement: SqliteDatabase.Statement,
  parameters: readonly unknown[],
): QueryResult<unknown> {
  if (statement.reader) return { rows: statement.all(parameters) };
  const { changes, lastInsertRowid } = statement.run(parameters);
  return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
}
