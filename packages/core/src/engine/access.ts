import { sha256 } from '../digest.js';
import { AthError } from '../errors.js';
import { enforceTokenRestrictions } from '../handshake/restrictions.js';
import type { RevocationEvent, TokenRecord, TokenRestrictions } from '../store.js';
import type { EngineContext } from './context.js';

/** What a validated call may do: the token's binding (C-215). */
export interface AccessGrant {
  agentId: string;
  clientId: string;
  userId: string;
  providerId: string;
  scopes: readonly string[];
  grantId: string | null;
  resource: string | null;
  expiresAt: number;
  tokenHash: string;
  /** Restrictions of a 9-step handshake token (AMB-35); absent for other tokens. */
  restrictions?: TokenRestrictions;
  /**
   * The token's IP allow-list when the request gave no `clientIp`: the adapter must check the
   * caller's address against it (403 SCOPE_NOT_APPROVED, details.reason ip_restricted).
   */
  ipAllowList?: readonly string[];
}

export interface AccessRequest {
  /** The raw `Authorization` header value. */
  authorization: string | undefined;
  /** The raw `X-ATH-Agent-ID` header value(s). */
  agentIdHeader: string | readonly string[] | undefined;
  /** The provider the call targets (the proxy path's provider_id, or the native app_id). */
  providerId: string;
  /** The scope the operation needs; null when the operation is not mapped to any scope (deny by default, C-158). */
  requiredScope: string | null;
  /** The caller's IP address, for tokens restricted by a handshake's ip_whitelist (C-270). */
  clientIp?: string;
  /**
   * The request's header lines as received (Node's `rawHeaders`: name, value, name, value, …).
   * When given, a request with two Authorization or two X-ATH-Agent-ID lines is refused: which
   * one counts is ambiguous, not a mismatch (threats F9) — 400 INVALID_REQUEST before anything else.
   */
  rawHeaders?: readonly string[];
}

/** True when `rawHeaders` carries Authorization or X-ATH-Agent-ID more than once (threats F9). */
export function hasDuplicateAccessHeader(rawHeaders: readonly string[]): boolean {
  let authorizations = 0;
  let agentIds = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    // Length first: most header names are neither, and lower-casing them is the cost.
    if (name.length === 13 && name.toLowerCase() === 'authorization') authorizations++;
    else if (name.length === 14 && name.toLowerCase() === 'x-ath-agent-id') agentIds++;
  }
  return authorizations > 1 || agentIds > 1;
}

/**
 * Token → binding cache for the hot path, so a proxied call does not hash and query per request.
 * Entries are dropped on revocation (locally at once; from other instances through the store's
 * revocation feed) and re-read from the store after `ttlMs` anyway, which bounds staleness where no
 * feed crosses processes. Keyed by the raw token (it never leaves process memory).
 *
 * Threats I3: the cache is only as good as the feed. When the store reports the feed lost
 * (`{ kind: 'feed', live: false }`), every entry is dropped and nothing is cached or served from
 * the cache until the feed is live again, so each call is validated against the store (and fails
 * closed, 503, when the store is unreachable). A record read from the store before an
 * invalidation is never cached after it (see {@link TokenCache.generation}).
 */
export class TokenCache {
  private readonly byToken = new Map<string, { record: TokenRecord; cachedAt: number }>();
  private readonly tokenByHash = new Map<string, string>();
  private live = true;
  private gen = 0;

  constructor(
    private readonly maxEntries = 100_000,
    private readonly ttlMs = 1000,
  ) {}

  /** False while the store's revocation feed is down: the cache then neither answers nor fills. */
  get feedLive(): boolean {
    return this.live;
  }

  /**
   * Changes on every invalidation. Read it before a store read and pass it to {@link set}: a
   * record read before a revocation (or a feed change) was heard is then not cached.
   */
  get generation(): number {
    return this.gen;
  }

  get(token: string, now: number): TokenRecord | undefined {
    if (!this.live) return undefined;
    const entry = this.byToken.get(token);
    if (!entry) return undefined;
    if (now - entry.cachedAt > this.ttlMs) {
      this.delete(token);
      return undefined;
    }
    return entry.record;
  }

  set(token: string, record: TokenRecord, now: number, generation = this.gen): void {
    if (!this.live || generation !== this.gen) return;
    if (this.byToken.size >= this.maxEntries) {
      const oldest = this.byToken.keys().next().value;
      if (oldest !== undefined) this.delete(oldest);
    }
    this.byToken.set(token, { record, cachedAt: now });
    this.tokenByHash.set(record.tokenHash, token);
  }

  invalidate(event: RevocationEvent): void {
    this.gen++;
    if (event.kind === 'feed') {
      // Lost: revocations made elsewhere may be missed from now on. Live again: the ones made while
      // it was down were missed. Either way nothing cached so far can be trusted.
      this.live = event.live;
      this.clear();
      return;
    }
    if (event.kind === 'token') {
      const token = this.tokenByHash.get(event.tokenHash);
      if (token !== undefined) this.delete(token);
      return;
    }
    for (const [token, entry] of this.byToken) if (entry.record.clientId === event.clientId) this.delete(token);
  }

  clear(): void {
    this.byToken.clear();
    this.tokenByHash.clear();
  }

  /** Empty, and back to the state without any feed (entries trusted for `ttlMs`). */
  reset(): void {
    this.gen++;
    this.live = true;
    this.clear();
  }

  get size(): number {
    return this.byToken.size;
  }

  private delete(token: string): void {
    const entry = this.byToken.get(token);
    if (entry) this.tokenByHash.delete(entry.record.tokenHash);
    this.byToken.delete(token);
  }
}

const BEARER = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)$/i;

/**
 * Checks one API call (proxy or native API, C-151…C-158, C-166/C-167) in the order the spec lists:
 * token (revoked, then expired, then invalid) → X-ATH-Agent-ID (required, AMB-05) → provider → scope.
 */
export async function validateAccess(ctx: EngineContext, cache: TokenCache, req: AccessRequest): Promise<AccessGrant> {
  if (req.rawHeaders && hasDuplicateAccessHeader(req.rawHeaders)) {
    throw new AthError('INVALID_REQUEST', 'Authorization and X-ATH-Agent-ID must each be sent once', { reason: 'duplicate_header' });
  }
  const match = req.authorization ? BEARER.exec(req.authorization) : null;
  if (!match) throw new AthError('TOKEN_INVALID', 'A Bearer ATH access token is required');
  const token = match[1]!;
  const now = ctx.clock.now();

  let record = cache.get(token, now);
  if (!record) {
    const generation = cache.generation;
    record = (await ctx.store.getToken(await sha256(token))) ?? undefined;
    if (!record) throw new AthError('TOKEN_INVALID', 'Unknown access token');
    if (record.revokedAt === null) cache.set(token, record, now, generation);
  }
  if (record.revokedAt !== null) throw new AthError('TOKEN_REVOKED', 'The access token was revoked');
  if (record.expiresAt <= now) throw new AthError('TOKEN_EXPIRED', 'The access token has expired');

  const header = req.agentIdHeader;
  if (typeof header !== 'string' || header !== record.agentId) {
    throw new AthError('AGENT_IDENTITY_MISMATCH', 'X-ATH-Agent-ID must name the agent the token was issued to');
  }
  if (req.providerId !== record.providerId) {
    throw new AthError('PROVIDER_MISMATCH', 'The token was issued for another provider');
  }
  if (req.requiredScope === null || !record.scopes.includes(req.requiredScope)) {
    await ctx.auditor.emit('scope_violation', {
      agent_id: record.agentId,
      client_id: record.clientId,
      user_id: record.userId,
      provider_id: record.providerId,
      effective_scopes: record.scopes,
      denial_reason: req.requiredScope === null ? 'unmapped_operation' : `missing_scope:${req.requiredScope}`,
    });
    throw new AthError(
      'SCOPE_NOT_APPROVED',
      req.requiredScope === null ? 'This operation is not mapped to any scope' : 'The token lacks the scope this operation needs',
      req.requiredScope === null ? { reason: 'unmapped' } : { required_scope: req.requiredScope },
    );
  }
  // C-270 / AMB-35: a handshake token's restrictions, checked after the scope like any other rule.
  const ipAllowList = record.restrictions
    ? await enforceTokenRestrictions(ctx.store, record, req.clientIp, now)
    : null;
  return grantOf(record, ipAllowList);
}

/**
 * The hot path's synchronous check: the call's grant when the token cache alone decides the call
 * and it is allowed (cached token, not revoked or expired, matching agent and provider, scope
 * granted, no handshake restrictions). Null in every other case (not cached, any error, any rule
 * that needs the store or an audit event): then {@link validateAccess} decides and reports.
 * No store access, no audit event, no promise.
 */
export function peekAccess(ctx: EngineContext, cache: TokenCache, req: AccessRequest): AccessGrant | null {
  if (req.rawHeaders && hasDuplicateAccessHeader(req.rawHeaders)) return null;
  const authorization = req.authorization;
  const match = authorization ? BEARER.exec(authorization) : null;
  if (!match) return null;
  const now = ctx.clock.now();
  const record = cache.get(match[1]!, now);
  if (
    !record ||
    record.revokedAt !== null ||
    record.expiresAt <= now ||
    record.restrictions ||
    typeof req.agentIdHeader !== 'string' ||
    req.agentIdHeader !== record.agentId ||
    req.providerId !== record.providerId ||
    req.requiredScope === null ||
    !record.scopes.includes(req.requiredScope)
  ) {
    return null;
  }
  return grantOf(record, null);
}

function grantOf(record: TokenRecord, ipAllowList: readonly string[] | null): AccessGrant {
  const grant: AccessGrant = {
    agentId: record.agentId,
    clientId: record.clientId,
    userId: record.userId,
    providerId: record.providerId,
    scopes: record.scopes,
    grantId: record.grantId,
    resource: record.resource,
    expiresAt: record.expiresAt,
    tokenHash: record.tokenHash,
  };
  if (record.restrictions) grant.restrictions = record.restrictions;
  if (ipAllowList) grant.ipAllowList = ipAllowList;
  return grant;
}
