import { AthClientError } from '@athkit/client';

/**
 * Exit codes of `ath` (documented in the README). Scripts can branch on them without parsing text.
 */
export const EXIT = {
  OK: 0,
  /** Unexpected failure (a bug, or an unreadable file). */
  INTERNAL: 1,
  /** Bad command line: unknown command or option, missing argument. */
  USAGE: 2,
  /** Not configured yet: no key, agent_id, server, registration, or an unusable local file. */
  CONFIG: 3,
  /** The ATH server refused the request with an ATH error (code printed), or scopes outside the approval. */
  REFUSED: 4,
  /** The server could not be reached or answered nonsense: network, timeout, invalid response, 5xx. */
  TRANSPORT: 5,
  /** Authorization did not complete: user denied, agent pending or denied, waiting timed out, state mismatch. */
  NOT_AUTHORIZED: 6,
  /** No usable token: expired, revoked or never obtained — run `ath authorize` again. */
  REAUTHORIZE: 7,
  /** `ath call`: the API answered with a non-2xx status (body printed). */
  API_ERROR: 8,
} as const;

/** A command-line mistake (exit 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Missing or unusable local configuration (exit 3). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

const NOT_AUTHORIZED = new Set(['USER_DENIED', 'agent_denied', 'wait_timeout', 'AGENT_UNAPPROVED', 'state_mismatch', 'invalid_redirect']);
const TRANSPORT = new Set(['timeout', 'network', 'aborted', 'invalid_response', 'server_error', 'unsupported_version', 'invalid_token_response', 'insecure_url']);

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EXIT.USAGE;
  if (err instanceof ConfigError) return EXIT.CONFIG;
  if (err instanceof AthClientError) {
    if (err.needsReauthorization) return EXIT.REAUTHORIZE;
    if (NOT_AUTHORIZED.has(err.code)) return EXIT.NOT_AUTHORIZED;
    if (err.code === 'not_registered' || err.code === 'invalid_argument' || err.code === 'credentials_locked') return EXIT.CONFIG;
    if (err.code === 'api_error') return EXIT.API_ERROR;
    if (err.code === 'scope_not_approved') return EXIT.REFUSED;
    if (TRANSPORT.has(err.code)) return EXIT.TRANSPORT;
    if (err.fromServer) return err.status !== undefined && err.status >= 500 ? EXIT.TRANSPORT : EXIT.REFUSED;
  }
  return EXIT.INTERNAL;
}

const CREDENTIALS_HINT = 'set ATH_CREDENTIALS_KEY to the key the credentials were written with, or restore credentials.key in ATH_HOME';

/** The error as the user sees it: one line, plus a hint line when there is one. */
export function describeError(err: unknown): { message: string; hint?: string; json: Record<string, unknown> } {
  if (err instanceof AthClientError) {
    const where = [err.code, err.status !== undefined ? `HTTP ${err.status}` : null].filter(Boolean).join(', ');
    const hint = err.code === 'credentials_locked' ? CREDENTIALS_HINT : err.hint;
    return { message: `${err.message} (${where})`, ...(hint ? { hint } : {}), json: { ...err.toJSON(), ...(hint ? { hint } : {}) } };
  }
  if (err instanceof ConfigError) {
    return { message: err.message, ...(err.hint ? { hint: err.hint } : {}), json: { code: 'not_configured', message: err.message, ...(err.hint ? { hint: err.hint } : {}) } };
  }
  if (err instanceof UsageError) return { message: err.message, hint: 'see `ath --help`', json: { code: 'usage', message: err.message } };
  const message = err instanceof Error ? err.message : String(err);
  return { message, json: { code: 'internal', message } };
}
