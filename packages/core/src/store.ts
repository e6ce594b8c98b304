import type { ProviderApproval, ProviderScopeRequest, DeveloperInfo } from '@athkit/schemas';

/**
 * Persistence contract of the protocol engine. Implementations: the in-memory store in this
 * package, and SQLite / PostgreSQL in @athkit/storage. Every method that decides a race
 * (createAgent, markJtiUsed, updateSession, revokeToken, updateGrant, hitRateLimit) must be atomic
 * across every process sharing the store. Times are milliseconds since the epoch. Secrets are never
 * stored: client secrets, access tokens and completion codes arrive here already hashed, and
 * upstream OAuth tokens arrive encrypted (see vault.ts).
 */
export interface Store {
  // --- agents (registrations) ---
  /** Inserts unless a registration for `record.agentId` exists; then returns the existing one unchanged. */
  createAgent(record: AgentRecord): Promise<{ created: true } | { created: false; existing: AgentRecord }>;
  getAgent(clientId: string): Promise<AgentRecord | null>;
  getAgentByAgentId(agentId: string): Promise<AgentRecord | null>;
  /** Applies the patch; returns the updated record, or null when the client is unknown. */
  updateAgent(clientId: string, patch: AgentPatch): Promise<AgentRecord | null>;
  deleteAgent(clientId: string): Promise<boolean>;
  listAgents(filter?: { state?: AgentState; limit?: number; offset?: number }): Promise<AgentRecord[]>;

  // --- attestation replay cache ---
  /** Records (agentId, jti) until `expiresAt`; true only for the first caller, across all instances. */
  markJtiUsed(agentId: string, jti: string, expiresAt: number): Promise<boolean>;

  // --- authorization sessions ---
  createSession(record: SessionRecord): Promise<void>;
  getSession(id: string): Promise<SessionRecord | null>;
  getSessionByUpstreamState(upstreamStateHash: string): Promise<SessionRecord | null>;
  /**
   * Compare-and-set: applies `patch` only when the session currently matches `expect`
   * (status in the list; bindingHash equal, where given - null meaning "not yet bound").
   * Returns the updated record, or null when nothing matched. Exactly one of any number of
   * concurrent callers with the same expectation wins.
   */
  updateSession(id: string, expect: SessionExpectation, patch: SessionPatch): Promise<SessionRecord | null>;

  // --- access tokens ---
  createToken(record: TokenRecord): Promise<void>;
  getToken(tokenHash: string): Promise<TokenRecord | null>;
  /** Marks the token revoked (durably, before resolving). True when it was not revoked before. */
  revokeToken(tokenHash: string, at: number): Promise<boolean>;
  /** Revokes every unrevoked token of a client; returns how many. */
  revokeAgentTokens(clientId: string, at: number): Promise<number>;
  listTokens(filter?: { clientId?: string; userId?: string; liveAt?: number; limit?: number; offset?: number }): Promise<TokenRecord[]>;

  // --- 9-step handshakes (optional extension, checklist section M) ---
  /** Inserts a new handshake; rejects a duplicate id. */
  createHandshake(record: HandshakeRecord): Promise<void>;
  getHandshake(id: string): Promise<HandshakeRecord | null>;
  /**
   * Compare-and-set on `state`: applies `patch` only when the stored state is one of `expectStates`.
   * Returns the updated record, or null when nothing matched. Exactly one of any number of concurrent
   * callers with the same expectation wins (the one-way state machine of C-259).
   */
  updateHandshake(
    id: string,
    expectStates: HandshakeState[],
    patch: HandshakePatch,
  ): Promise<HandshakeRecord | null>;

  // --- upstream grant vault (ciphertext only) ---
  putGrant(record: GrantRecord): Promise<void>;
  getGrant(id: string): Promise<GrantRecord | null>;
  /** Compare-and-set on `version`: applies the patch and increments version only if it still equals `expectVersion`. */
  updateGrant(id: string, expectVersion: number, patch: GrantPatch): Promise<GrantRecord | null>;
  deleteGrant(id: string): Promise<boolean>;

  // --- audit ---
  appendAudit(event: AuditRecord): Promise<void>;
  queryAudit(filter?: AuditQuery): Promise<AuditRecord[]>;

  // --- rate limits (fixed windows shared by all instances) ---
  /**
   * Counts `units` (default 1) against `key`'s fixed window of `windowMs` at `now`, atomically
   * across instances. `granted` is how many of them fitted under `limit` (0…units); the count
   * grows by `units` either way. Taking several at once lets an instance serve that many calls
   * without a store write each (RateLimiter's `batch`).
   */
  hitRateLimit(key: string, limit: number, windowMs: number, now: number, units?: number): Promise<RateLimitResult>;

  // --- change feed and housekeeping ---
  /**
   * Calls `listener` when a token or a whole agent is revoked by any instance sharing the store
   * (PostgreSQL: LISTEN/NOTIFY; in-process stores: directly). Returns an unsubscribe function.
   * A store whose feed crosses a connection also reports the feed itself (threats I3): `{ kind:
   * 'feed', live: false }` as soon as that connection is lost (revocations made elsewhere may be
   * missed from then on), and `{ kind: 'feed', live: true }` once it listens again, which it does
   * on its own. In-process stores never lose it. A listener added while the feed is down is told
   * `{ kind: 'feed', live: false }` at once.
   */
  watchRevocations(listener: (event: RevocationEvent) => void): Promise<() => Promise<void>>;
  /** Deletes rows whose retention ended before `now` (jti after exp, sessions, expired tokens, old windows). */
  purgeExpired(now: number): Promise<PurgeCounts>;
  close(): Promise<void>;
}

/** Registration state. `suspended` is an admin action; on the wire it reads `denied` (AgentStatus has 3 values). */
export type AgentState = 'approved' | 'pending' | 'denied' | 'suspended';

export interface AgentRecord {
  clientId: string;
  /** sha256 (base64url) of the client secret. */
  clientSecretHash: string;
  /** Canonical agent_id URL. */
  agentId: string;
  state: AgentState;
  /** Name from the agent's identity document at registration time. */
  name: string | null;
  /** Developer as claimed in the registration request (self-asserted, AMB-41). */
  developer: DeveloperInfo;
  purpose: string | null;
  /** Registered redirect URIs; null when none were registered (AMB-14). */
  redirectUris: string[] | null;
  requestedProviders: ProviderScopeRequest[];
  approvals: ProviderApproval[];
  approvalExpiresAt: number;
  createdAt: number;
  updatedAt: number;
}

export type AgentPatch = Partial<Pick<AgentRecord, 'state' | 'approvals' | 'approvalExpiresAt' | 'clientSecretHash'>> & {
  updatedAt: number;
};

export type SessionStatus = 'pending' | 'consented' | 'denied' | 'failed' | 'consumed';

export interface SessionRecord {
  /** ath_session_id (≥ 128 bits of randomness). */
  id: string;
  clientId: string;
  agentId: string;
  providerId: string;
  requestedScopes: string[];
  /** The agent's own `state`, echoed only on the final redirect (AMB-15). */
  agentState: string;
  userRedirectUri: string | null;
  resource: string | null;
  /** PKCE code_verifier; never leaves the server. */
  codeVerifier: string;
  /** sha256 of the state sent upstream (or embedded in the consent form in native mode). */
  upstreamStateHash: string;
  /** sha256 of the browser-binding cookie value; null until the launch page was visited. */
  bindingHash: string | null;
  status: SessionStatus;
  userId: string | null;
  consentedScopes: string[] | null;
  /** Vault entry holding the upstream tokens (gateway mode). */
  grantId: string | null;
  /** sha256 of the single-use completion code given to redirecting agents (AMB-02). */
  completionCodeHash: string | null;
  failure: { code: string; message: string } | null;
  /** Extension data (e.g. the 9-step handshake id). */
  extra: Record<string, unknown> | null;
  createdAt: number;
  expiresAt: number;
  updatedAt: number;
}

export interface SessionExpectation {
  status: SessionStatus[];
  /** When present: the stored bindingHash must equal this (null = not bound yet). */
  bindingHash?: string | null;
}

export type SessionPatch = Partial<
  Pick<
    SessionRecord,
    'status' | 'bindingHash' | 'userId' | 'consentedScopes' | 'grantId' | 'completionCodeHash' | 'failure' | 'extra'
  >
> & { updatedAt: number };

export interface TokenRecord {
  /** sha256 (base64url) of the access token. */
  tokenHash: string;
  clientId: string;
  agentId: string;
  userId: string;
  providerId: string;
  scopes: string[];
  sessionId: string;
  grantId: string | null;
  resource: string | null;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
  /** Restrictions returned by a 9-step handshake (AMB-35), enforced on every use; absent otherwise. */
  restrictions?: TokenRestrictions | null;
}

/** AMB-35: what a handshake's scope_result restricted; whatever is returned is enforced. */
export interface TokenRestrictions {
  /** Client IP addresses or CIDR blocks. */
  ip_whitelist?: string[];
  /** `N/second`, `N/minute` or `N/hour`, per token. */
  rate_limit?: string;
}

/**
 * The one-way state machine of a 9-step handshake (C-259): initiated (steps 1-2) → authenticated
 * (3-4) → awaiting_confirmation (5-7, the user decides on the linked session) → completed (9).
 * Any failure of the proof moves it to terminated, from which nothing continues.
 */
export type HandshakeState =
  'initiated' | 'authenticated' | 'awaiting_confirmation' | 'completed' | 'terminated';

/** What a handshake remembers between its steps (stored as JSON). */
export interface HandshakeData {
  version: string;
  capabilities: string[];
  nonceA: string;
  nonceB: string;
  serverDid: string;
  /** Set at step 5. */
  sessionId?: string;
  requestId?: string;
  userDid?: string;
  requestedScopes?: string[];
  ttlGranted?: number;
  restrictions?: TokenRestrictions;
  channel?: 'push' | 'browser';
  /** When the step-6 confirmation request lapses (ms). */
  confirmationExpiresAt?: number;
  /** Why the handshake was terminated. */
  failure?: string;
}

export interface HandshakeRecord {
  /** handshake_id (≥ 128 bits of randomness). */
  id: string;
  clientId: string;
  agentId: string;
  state: HandshakeState;
  data: HandshakeData;
  createdAt: number;
  /** Steps 1→3 must happen before this (5 min); afterwards the linked session's lifetime applies. */
  expiresAt: number;
  updatedAt: number;
}

export type HandshakePatch = Partial<Pick<HandshakeRecord, 'state' | 'data' | 'expiresAt'>> & {
  updatedAt: number;
};

export interface GrantRecord {
  id: string;
  providerId: string;
  userId: string;
  /** AES-GCM ciphertext (see vault.ts) of the upstream token set. */
  ciphertext: string;
  version: number;
  /** Refresh lease: another instance must not refresh before this time. */
  leaseUntil: number | null;
  createdAt: number;
  updatedAt: number;
}

export type GrantPatch = Partial<Pick<GrantRecord, 'ciphertext' | 'leaseUntil'>> & { updatedAt: number };

export type AuditEventType =
  | 'agent_registered'
  | 'agent_registration_denied'
  | 'attestation_failed'
  | 'authorization_started'
  | 'access_granted'
  | 'access_denied'
  | 'token_revoked'
  | 'proxy_request'
  | 'scope_violation'
  | 'agent_status_changed';

/** One audit event (checklist C-216 / C-143): the fields are the spec's snake_case names. */
export interface AuditRecord {
  timestamp: string;
  event: AuditEventType;
  agent_id?: string;
  client_id?: string;
  user_id?: string;
  provider_id?: string;
  requested_scopes?: string[];
  effective_scopes?: string[];
  denied_scopes?: string[];
  denial_reason?: string;
  [field: string]: unknown;
}

export interface AuditQuery {
  event?: AuditEventType;
  agentId?: string;
  since?: string;
  until?: string;
  limit?: number;
}

export interface RateLimitResult {
  /** At least one unit was granted. */
  allowed: boolean;
  /** Units granted by this call, 0…units. */
  granted: number;
  /** The window's count after this call. */
  count: number;
  /** Milliseconds until the window resets. */
  resetInMs: number;
}

/**
 * The result of a hit that left the window's count at `countAfter`: of the `units` just counted,
 * those that fitted under `limit` are granted. Every store computes it the same way from the one
 * number its atomic increment returns.
 */
export function rateLimitResult(countAfter: number, units: number, limit: number, resetInMs: number): RateLimitResult {
  const granted = Math.max(0, Math.min(units, limit - (countAfter - units)));
  return { allowed: granted > 0, granted, count: countAfter, resetInMs };
}

export type RevocationEvent =
  | { kind: 'token'; tokenHash: string }
  | { kind: 'agent'; clientId: string }
  | RevocationFeedEvent;

/**
 * The revocation feed's own state (see {@link Store.watchRevocations}). While it is not live, a
 * listener must not trust anything it cached on the strength of the feed (threats I3).
 */
export type RevocationFeedEvent = { kind: 'feed'; live: boolean };

export interface PurgeCounts {
  jti: number;
  /** Authorization sessions and 9-step handshakes. */
  sessions: number;
  tokens: number;
  rateLimits: number;
}
