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

export function wrapError(error: unknown): Error {
  if (error instanceof Error && SAFE.has(error)) return error;
  return storageFailure(error);
}

/** A unique/primary-key violation, from better-sqlite3 or pg. */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}
