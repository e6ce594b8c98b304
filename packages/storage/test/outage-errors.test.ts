/**
 * Threats I3: which driver errors mean "the database cannot be reached" (→ StoreUnavailableError,
 * answered 503 by core) and which stay a plain "storage failure" (→ 500). No database needed.
 */
import { createServer, type AddressInfo } from 'node:net';
import { StoreUnavailableError } from '@athkit/core';
import { describe, expect, it } from 'vitest';
import { createPostgresStore } from '../src/index.js';
import { isUnavailable, wrapError } from '../src/errors.js';

const withCode = (message: string, code: string): Error => Object.assign(new Error(message), { code });

describe('storage outage errors (threats I3)', () => {
  it.each([
    ['connection refused', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['connection reset', withCode('read ECONNRESET', 'ECONNRESET')],
    ['timeout', withCode('connect ETIMEDOUT 10.0.0.1:5432', 'ETIMEDOUT')],
    ['DNS', withCode('getaddrinfo EAI_AGAIN db', 'EAI_AGAIN')],
    [
      'server shutting down (57P01)',
      withCode('terminating connection due to administrator command', '57P01'),
    ],
    ['server starting up (57P03)', withCode('the database system is starting up', '57P03')],
    ['connection exception class 08', withCode('connection failure', '08006')],
    ['too many connections', withCode('sorry, too many clients already', '53300')],
    ['idle session closed (57P05)', withCode('terminating connection due to idle-session timeout', '57P05')],
    ['statement cancelled by statement_timeout (57014)', withCode('canceling statement due to statement timeout', '57014')],
    ['SQLite locked by another process', withCode('database is locked', 'SQLITE_BUSY')],
    ['SQLite busy with a snapshot', withCode('database is locked', 'SQLITE_BUSY_SNAPSHOT')],
    ['SQLite table locked', withCode('database table is locked', 'SQLITE_LOCKED')],
    ['pg: terminated', new Error('Connection terminated unexpectedly')],
    ['pg: connect timeout', new Error('Connection terminated due to connection timeout')],
    ['pg-pool: connect timeout', new Error('timeout exceeded when trying to connect')],
    ['pg: dead client', new Error('Client has encountered a connection error and is not queryable')],
    ['happy eyeballs', new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')])],
    ['wrapped', new Error('outer', { cause: withCode('read ECONNRESET', 'ECONNRESET') })],
  ])('%s → StoreUnavailableError, message fixed, driver error kept as cause only', (_name, driverError) => {
    const e = wrapError(driverError);
    expect(e).toBeInstanceOf(StoreUnavailableError);
    expect(e.message).toBe('storage unavailable');
    expect(e.cause).toBe(driverError);
  });

  it.each([
    ['syntax error', withCode('syntax error at or near "x"', '42601')],
    ['unique violation', withCode('duplicate key value violates unique constraint "agents_pkey"', '23505')],
    ['pool already ended', new Error('Cannot use a pool after calling end on the pool')],
    ['closed client', new Error('Client was closed and is not queryable')],
    ['no code at all', new Error('something odd')],
    ['not an error', 'a string'],
  ])('%s → a plain "storage failure" (500)', (_name, driverError) => {
    expect(isUnavailable(driverError)).toBe(false);
    const e = wrapError(driverError);
    expect(e).not.toBeInstanceOf(StoreUnavailableError);
    expect(e.message).toBe('storage failure');
  });

  it('a PostgreSQL server that cannot be reached fails createPostgresStore with StoreUnavailableError', async () => {
    // A port that was just free on 127.0.0.1 (nothing listens on it).
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const err = await createPostgresStore({
      connectionString: `postgres://nobody@127.0.0.1:${port}/none`,
    }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(err!.message).toBe('storage unavailable');
    expect(err!.message).not.toContain(String(port));
  });
});
