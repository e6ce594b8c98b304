import { ERROR_STATUS, type ATHError, type AthErrorCodeName } from '@athkit/schemas';

export type AthErrorCode = AthErrorCodeName;

/**
 * The one error model of athkit. `status` is never chosen by the thrower: it comes from the
 * code↔status table (checklist C-201 + AMB-04), so a code always travels with the same status.
 * The one exception is {@link AthUnavailableError} (503, threats I3/I7).
 */
export class AthError extends Error {
  override readonly name = 'AthError';
  readonly status: number;

  constructor(
    readonly code: AthErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = ERROR_STATUS[code];
  }

  /** The wire body (schema `ATHError`): never a stack, a cause or anything not set on purpose. */
  toJSON(): ATHError {
    return this.details && Object.keys(this.details).length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

/** Seconds a caller is told to wait (Retry-After) before retrying a 503. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 1;

/**
 * 503 `INTERNAL_ERROR` with `Retry-After`: the request was refused, unserved, because this
 * instance cannot decide it right now — its store is unreachable (threats I3: fail closed, never
 * accept a call without its replay check or token validation) or it is draining (threats I7).
 * The single, documented exception to the code↔status table (C-201 says 500 for INTERNAL_ERROR;
 * threats I3 asks for "503 INTERNAL_ERROR", which tells clients and load balancers that a retry,
 * possibly elsewhere, can succeed). The body stays a plain ATHError with a generic message.
 */
export class AthUnavailableError extends AthError {
  override readonly status: number = 503;

  constructor(
    message = 'The service is temporarily unavailable; retry later',
    readonly retryAfterSeconds: number = UNAVAILABLE_RETRY_AFTER_SECONDS,
    options?: { cause?: unknown },
  ) {
    super('INTERNAL_ERROR', message, undefined, options);
  }
}

/**
 * Thrown by a {@link Store} when its backend cannot be reached right now (connection refused,
 * reset or timed out, the database shutting down or starting up, no connection available).
 * The message is fixed and safe; `cause` keeps the driver's error for server-side logs only.
 * {@link toAthError} turns it into a 503 {@link AthUnavailableError} (threats I3).
 */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';

  constructor(options?: { cause?: unknown }) {
    super('storage unavailable', options);
  }
}

export function isAthError(value: unknown): value is AthError {
  return value instanceof AthError;
}

/**
 * Any failure that is not already an AthError becomes a generic 500 whose body reveals nothing
 * (C-204) — except an unreachable store, which becomes 503 with Retry-After (threats I3). This is
 * the one place that decides that mapping; adapters only render the result.
 */
export function toAthError(err: unknown): AthError {
  if (err instanceof AthError) return err;
  if (err instanceof StoreUnavailableError) return new AthUnavailableError(undefined, undefined, { cause: err });
  return new AthError('INTERNAL_ERROR', 'Internal server error', undefined, { cause: err });
}

/** Extra response headers an error needs (429 and 503 Retry-After, 405 Allow). */
export function errorHeaders(err: AthError): Record<string, string> {
  const headers: Record<string, string> = {};
  const retry = err.details?.['retry_after'];
  if (err.code === 'RATE_LIMITED' && typeof retry === 'number') headers['retry-after'] = String(Math.ceil(retry));
  if (err instanceof AthUnavailableError) headers['retry-after'] = String(Math.max(0, Math.ceil(err.retryAfterSeconds)));
  const allow = err.details?.['allow'];
  if (err.code === 'METHOD_NOT_ALLOWED' && Array.isArray(allow)) headers['allow'] = allow.join(', ');
  return headers;
}

/** An error as a log line may show it: its type, code and message, and its causes the same way. */
export interface LoggedError {
  type: string;
  message: string;
  code?: string;
  /** An AthError's details: the same object its wire body carries, so nothing the caller did not get. */
  details?: Record<string, unknown>;
  cause?: LoggedError;
}

/**
 * What of an error goes into a log: name, code, message and an AthError's (wire-visible) details, never a stack (a stack shows code paths
 * and file layout to whoever reads the logs; the brief's rule is that no log carries one). Causes
 * are followed a few levels, since the driver's error under a StoreUnavailableError is what an
 * operator needs. Redaction of secrets in messages is the logger's job (its redact paths).
 */
export function loggableError(err: unknown, depth = 0): LoggedError {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err) };
  const out: LoggedError = { type: err.name || err.constructor.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = String(code);
  if (err instanceof AthError && err.details && Object.keys(err.details).length > 0) out.details = err.details;
  if (err.cause !== undefined && depth < 3) out.cause = loggableError(err.cause, depth + 1);
  return out;
}
