import { ERROR_STATUS, type ATHError, type AthErrorCodeName } from '@athkit/schemas';

export type AthErrorCode = AthErrorCodeName;

/**
 * The one error model of athkit. `status` is never chosen by the thrower: it comes from the
 * code↔status table (checklist C-201 + AMB-04), so a code always travels with the same status.
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

export function isAthError(value: unknown): value is AthError {
  return value instanceof AthError;
}

/** Any failure that is not already an AthError becomes a generic 500 whose body reveals nothing. */
export function toAthError(err: unknown): AthError {
  if (err instanceof AthError) return err;
  return new AthError('INTERNAL_ERROR', 'Internal server error', undefined, { cause: err });
}

/** Extra response headers an error needs (429 Retry-After, 405 Allow). */
export function errorHeaders(err: AthError): Record<string, string> {
  const headers: Record<string, string> = {};
  const retry = err.details?.['retry_after'];
  if (err.code === 'RATE_LIMITED' && typeof retry === 'number') headers['retry-after'] = String(Math.ceil(retry));
  const allow = err.details?.['allow'];
  if (err.code === 'METHOD_NOT_ALLOWED' && Array.isArray(allow)) headers['allow'] = allow.join(', ');
  return headers;
}
