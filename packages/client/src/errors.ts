import { ERROR_STATUS, type AthErrorCodeName, type Violation } from '@athkit/schemas';

/**
 * Codes for failures the client detects itself (never sent by a server). Server-side failures keep
 * the server's ATH code (`INVALID_ATTESTATION`, `TOKEN_REVOKED`, …), so `err.code` is one flat,
 * stable namespace: upper case = the server said so, lower case = the client found it.
 */
export type ClientErrorCode =
  /** The response is not JSON, is malformed, or fails its schema. */
  | 'invalid_response'
  /** A 5xx (or other non-success status) without an ATHError body. */
  | 'server_error'
  /** The request did not complete within the timeout. */
  | 'timeout'
  /** The request was aborted by the caller's AbortSignal. */
  | 'aborted'
  /** DNS, connect, TLS or reset: the server could not be reached. */
  | 'network'
  /** A URL the client was asked to use is not https (plain http is only allowed on loopback). */
  | 'insecure_url'
  /** The server speaks another ATH version than this client (CL-18). */
  | 'unsupported_version'
  /** The `state` on the redirect is missing or not the one this client generated (CL-09). */
  | 'state_mismatch'
  /** The redirect carries no completion code, or an OAuth error other than access_denied. */
  | 'invalid_redirect'
  /** The token response does not fit the request: other agent, provider or extra scopes (CL-12). */
  | 'invalid_token_response'
  /** The token expired locally (`expires_in` passed); run authorize again (CL-12, CL-20). */
  | 'token_expired'
  /** No token for this provider; authorize first. */
  | 'no_token'
  /** No registration (client credentials) for this server; register first. */
  | 'not_registered'
  /** The agent's registration was denied (CL-08). */
  | 'agent_denied'
  /** Scopes outside what the implementer approved for this agent (CL-08). */
  | 'scope_not_approved'
  /** Waiting for approval or user consent took longer than allowed. */
  | 'wait_timeout'
  /** An API call through the token answered with a non-success status (not an ATH error). */
  | 'api_error'
  /** A caller-supplied argument is invalid. */
  | 'invalid_argument'
  /** Stored credentials are encrypted and no key, or another key, was given (FileCredentialStore). */
  | 'credentials_locked'
  /** The service does not advertise the 9-step handshake (ath-app.json `ath_endpoints.handshake`, `server_jwks`). */
  | 'handshake_unsupported'
  /** The service failed a 9-step check the client makes (server key, transcript, scope result; CL-23, CL-27). */
  | 'handshake_failed';

export type AthClientErrorCode = AthErrorCodeName | ClientErrorCode;

/** What the agent should do next (checklist CL-20). */
export type RecoveryAction =
  /** Token expired, revoked or unknown: run authorize (and consent) again. */
  | 'reauthorize'
  /** Session expired, unknown or consumed: start a new authorize. */
  | 'restart_authorization'
  /** Agent not (yet) approved: poll the agent status. */
  | 'poll_status'
  /** Attestation refused: re-sign, check the clock and the published key. */
  | 'check_identity'
  /** The user refused: tell the user, do not retry silently. */
  | 'tell_user'
  /** Rate limited or transient: retry later (after `retryAfter` seconds when known). */
  | 'retry_later'
  /** Credentials unknown: register (again). */
  | 'register'
  | 'none';

export interface AthClientErrorOptions {
  status?: number;
  details?: Record<string, unknown>;
  retryAfter?: number;
  violations?: readonly Violation[];
  cause?: unknown;
}

const RECOVERY: Partial<Record<AthClientErrorCode, RecoveryAction>> = {
  TOKEN_EXPIRED: 'reauthorize',
  TOKEN_REVOKED: 'reauthorize',
  TOKEN_INVALID: 'reauthorize',
  token_expired: 'reauthorize',
  no_token: 'reauthorize',
  SESSION_EXPIRED: 'restart_authorization',
  SESSION_NOT_FOUND: 'restart_authorization',
  STATE_MISMATCH: 'restart_authorization',
  state_mismatch: 'restart_authorization',
  AGENT_UNAPPROVED: 'poll_status',
  INVALID_ATTESTATION: 'check_identity',
  USER_DENIED: 'tell_user',
  agent_denied: 'tell_user',
  RATE_LIMITED: 'retry_later',
  timeout: 'retry_later',
  network: 'retry_later',
  server_error: 'retry_later',
  INTERNAL_ERROR: 'retry_later',
  AGENT_NOT_REGISTERED: 'register',
  not_registered: 'register',
};

const HINTS: Record<RecoveryAction, string> = {
  reauthorize: 'the access token can no longer be used: run authorize again to get a new one',
  restart_authorization: 'start a new authorization (authorize, consent, token)',
  poll_status: 'the agent is not approved yet: poll the agent status until an administrator decides',
  check_identity:
    'check that the identity document is reachable at the agent_id URL, publishes this key and kid, and that the clock is correct',
  tell_user: 'the user or the service refused; tell the user instead of retrying',
  retry_later: 'retry later',
  register: 'register the agent (again) with this server',
  none: '',
};

/**
 * Every failure of @athkit/client. `code` is the server's ATH error code when the server answered
 * with an ATHError body, or a lower-case {@link ClientErrorCode} when the client detected the
 * problem. `status` is the HTTP status when there was a response.
 */
export class AthClientError extends Error {
  override readonly name = 'AthClientError';
  readonly code: AthClientErrorCode;
  readonly status: number | undefined;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds to wait before retrying (from `Retry-After` on a 429 or a 503). */
  readonly retryAfter: number | undefined;
  /** Schema violations when a response failed validation. */
  readonly violations: readonly Violation[] | undefined;

  constructor(code: AthClientErrorCode, message: string, options: AthClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.details = options.details;
    this.retryAfter = options.retryAfter;
    this.violations = options.violations;
  }

  /** True when the code came from the server's ATHError body. */
  get fromServer(): boolean {
    return Object.hasOwn(ERROR_STATUS, this.code);
  }

  /** What to do next (CL-20). */
  get recovery(): RecoveryAction {
    return RECOVERY[this.code] ?? 'none';
  }

  /** True when the token is unusable and the agent must run authorize again (CL-20). */
  get needsReauthorization(): boolean {
    return this.recovery === 'reauthorize';
  }

  /** A sentence for people saying what to do next, or '' when there is nothing specific. */
  get hint(): string {
    if (this.recovery === 'retry_later' && this.retryAfter !== undefined) return `retry in ${this.retryAfter} s`;
    return HINTS[this.recovery];
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.status !== undefined ? { status: this.status } : {}),
      ...(this.details !== undefined ? { details: this.details } : {}),
      ...(this.retryAfter !== undefined ? { retry_after: this.retryAfter } : {}),
      ...(this.violations !== undefined ? { violations: this.violations } : {}),
      ...(this.hint ? { hint: this.hint } : {}),
    };
  }
}

export function isAthClientError(value: unknown): value is AthClientError {
  return value instanceof AthClientError;
}
