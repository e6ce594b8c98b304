import { StoreUnavailableError } from '@athkit/core';

/**
 * Driver errors carry SQL text, constraint names and sometimes values; none of that may reach a
 * caller of core (and from there an HTTP response). Everything unexpected becomes a plain
 * `Error('storage failure')` whose `cause` keeps the original for server-side logs.
 */
export function storageFailure(cause: unknown): Error {
  return new Error('storage failure', { cause });
}

/** Errors this package throws on purpose (already safe to show); anything else gets wrapped. */
const SAFE = new WeakSet<Error>();

export function safeError(message: string, cause?: unknown): Error {
  const e = cause === undefined ? new Error(message) : new Error(message, { cause });
  SAFE.add(e);
  return e;
}

/**
 * The one place driver errors are translated: an unreachable database becomes core's
 * {@link StoreUnavailableError} (answered 503 + Retry-After, threats I3), anything else
 * `storage failure` (500). Both keep the original only as `cause`.
 */
export function wrapError(error: unknown): Error {
  if (error instanceof Error && SAFE.has(error)) return error;
  if (error instanceof StoreUnavailableError) return error;
  if (isUnavailable(error)) return new StoreUnavailableError({ cause: error });
  return storageFailure(error);
}

/** Socket and DNS failures (Node), and the SQLSTATEs of a server going away or full. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENETRESET',
  'EAI_AGAIN',
  'ENOTFOUND',
  '57P01', // admin_shutdown (server stopping, or the backend was terminated)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovering)
  '53300', // too_many_connections
  '57P05', // idle_session_timeout (the server closed an idle session)
  '57014', // query_canceled: statement_timeout (a lock held elsewhere, an overloaded server)
  '25P03', // idle_in_transaction_session_timeout
  'SQLITE_BUSY', // still locked by another process after busy_timeout
  'SQLITE_BUSY_RECOVERY',
  'SQLITE_BUSY_SNAPSHOT',
  'SQLITE_BUSY_TIMEOUT',
  'SQLITE_LOCKED',
]);

/** node-postgres / pg-pool errors that carry no code. */
const UNAVAILABLE_MESSAGES = [
  /^Connection terminated (unexpectedly|due to connection timeout)$/, // not our own end()
  /^timeout exceeded when trying to connect$/, // pg-pool connectionTimeoutMillis
  /^Client has encountered a connection error and is not queryable$/,
  /^Query read timeout$/, // query_timeout
];

/** True when `error` (or its cause, or one of an AggregateError's errors) says the database cannot be reached. */
export function isUnavailable(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 4) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true; // class 08: connection exception
  if (error instanceof Error && UNAVAILABLE_MESSAGES.some((m) => m.test(error.message))) return true;
  if (error instanceof AggregateError && error.errors.some((e) => isUnavailable(e, depth + 1))) return true;
  return isUnavailable((error as { cause?: unknown }).cause, depth + 1);
}

/** A unique/primary-key violation, from better-sqlite3 or pg. */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}
