import type { AgentStatusResponse, AgentRegistrationResponse, AuthorizationResponse, TokenResponse } from '@athkit/schemas';
import { AttestationVerifier } from '../attestation/index.js';
import { IdentityResolver, createSafeFetcher, type DocumentFetcher } from '../identity/index.js';
import { Auditor, type AuditSink } from '../audit.js';
import { systemClock, type Clock } from '../clock.js';
import { keyedDigest } from '../digest.js';
import { defaultApprovalPolicy, type ApprovalPolicy } from '../policy.js';
import { staticCatalog, type ProviderCatalog, type ProviderConfig } from '../providers.js';
import { cryptoRandom, type RandomSource } from '../random.js';
import type { SessionRecord, Store } from '../store.js';
import { peekAccess, TokenCache, validateAccess, type AccessGrant, type AccessRequest } from './access.js';
import { AgentAdmin } from './admin.js';
import {
  authorize,
  completeConsent,
  launch,
  openCallback,
  type CallbackResult,
  type ConsentOutcome,
  type LaunchResult,
} from './authorization.js';
import { MAX_SESSION_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS, type EngineContext } from './context.js';
import { agentStatus, register, type AgentStatusAuth } from './registration.js';
import { revokeToken, type RevocationCaller } from './revocation.js';
import { exchangeToken } from './token.js';
import { RateLimiter, type RateLimitBucket, type RateLimitRule, type RateLimitRules } from './rate-limit.js';
import { HandshakeService, type HandshakeOptions } from '../handshake/service.js';

export interface AthEngineOptions {
  store: Store;
  /** The implementer's origin, e.g. `https://gw.example.com`; ATH endpoints live at fixed paths below it. */
  baseUrl: string;
  providers: ProviderCatalog | readonly ProviderConfig[];
  policy?: ApprovalPolicy;
  /** How identity documents are fetched. Default: the SSRF-safe undici fetcher (https only). */
  identity?: {
    fetcher?: DocumentFetcher;
    /** `host:port` entries that may be fetched over plain http and may resolve to loopback/private addresses (tests, dev). */
    allowInsecure?: readonly string[];
    cacheTtlMs?: number;
  };
  clock?: Clock;
  random?: RandomSource;
  auditSink?: AuditSink;
  /** Store `proxy_request` audit events too (default: sink only, so the hot path never writes). */
  persistProxyAudit?: boolean;
  /** Access token lifetime, ≤ 3600 (default 3600). */
  tokenTtlSeconds?: number;
  /** Authorization session lifetime, ≤ 600 (default 600). */
  sessionTtlSeconds?: number;
  /**
   * Secret key (≥ 32 bytes) for the browser-binding cookie: sessions store HMAC-SHA256(key, value)
   * instead of SHA-256(value), so a store writer without the key cannot bind a consent session to a
   * browser of their choosing. Every instance sharing a store needs the same key; changing it
   * invalidates the consent sessions in flight (they last minutes).
   */
  bindingKey?: Uint8Array;
  /** How long a registration's approval lasts (default 365 days). */
  approvalTtlSeconds?: number;
  tokenCache?: { maxEntries?: number; ttlMs?: number };
  /** Per-bucket fixed-window limits shared through the store (none by default). */
  rateLimits?: RateLimitRules;
}

function boundedSeconds(name: string, value: number | undefined, fallback: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`${name} must be an integer between 1 and ${max}`);
  return v;
}

function normaliseBaseUrl(baseUrl: string): string {
  const url = new URL(baseUrl);
  if (url.search || url.hash) throw new RangeError('baseUrl must not have a query or fragment');
  return url.toString().replace(/\/+$/, '');
}

/**
 * The ATH protocol engine: every protocol decision, framework-free. HTTP adapters (the fastify
 * plugin, the gateway) parse requests, call one method, and render its result or its AthError.
 */
export class AthEngine {
  readonly ctx: EngineContext;
  readonly admin: AgentAdmin;
  readonly tokenCache: TokenCache;
  readonly rateLimiter: RateLimiter;
  private unsubscribe: (() => Promise<void>) | null = null;
  private readonly resolver: IdentityResolver;
  private handshakeService: HandshakeService | null = null;

  constructor(options: AthEngineOptions) {
    const clock = options.clock ?? systemClock;
    const providers = Array.isArray(options.providers)
      ? staticCatalog(options.providers as readonly ProviderConfig[])
      : (options.providers as ProviderCatalog);
    const fetcher = options.identity?.fetcher ?? createSafeFetcher({ allowInsecure: [...(options.identity?.allowInsecure ?? [])] });
    const resolver = new IdentityResolver({
      fetcher,
      clock,
      ...(options.identity?.cacheTtlMs !== undefined ? { cacheTtlMs: options.identity.cacheTtlMs } : {}),
    });
    this.resolver = resolver;
    this.ctx = {
      resolver,
      store: options.store,
      clock,
      random: options.random ?? cryptoRandom,
      auditor: new Auditor(options.store, clock, options.auditSink, options.persistProxyAudit ?? false),
      verifier: new AttestationVerifier({ resolver, replay: options.store, clock }),
      providers,
      policy: options.policy ?? defaultApprovalPolicy(),
      baseUrl: normaliseBaseUrl(options.baseUrl),
      tokenTtlSeconds: boundedSeconds('tokenTtlSeconds', options.tokenTtlSeconds, MAX_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS),
      sessionTtlSeconds: boundedSeconds('sessionTtlSeconds', options.sessionTtlSeconds, MAX_SESSION_TTL_SECONDS, MAX_SESSION_TTL_SECONDS),
      bindingDigest: keyedDigest(options.bindingKey),
      approvalTtlSeconds: boundedSeconds('approvalTtlSeconds', options.approvalTtlSeconds, 365 * 86_400, 10 * 365 * 86_400),
    };
    this.tokenCache = new TokenCache(options.tokenCache?.maxEntries, options.tokenCache?.ttlMs);
    this.admin = new AgentAdmin(this.ctx, this.tokenCache);
    this.rateLimiter = new RateLimiter(options.store, clock, options.rateLimits ?? {});
  }

  /**
   * Turns on the optional 9-step handshake (seed 000, checklist section M): POST /ath/authorize
   * accepts `handshake_id` (step 5) and POST /ath/token `key_exchange` (step 9). Without it the
   * engine behaves exactly as before. Returns the service behind the new endpoints.
   */
  async enableHandshake(
    options: HandshakeOptions & { rateLimit?: RateLimitRule },
  ): Promise<HandshakeService> {
    if (this.handshakeService) throw new Error('the handshake is already enabled on this engine');
    const service = await HandshakeService.create(this.ctx, this.resolver, options);
    if (options.rateLimit) this.rateLimiter.setDefault('handshake', options.rateLimit);
    this.handshakeService = service;
    this.ctx.handshake = service;
    return service;
  }

  /** The handshake service, or null when enableHandshake was not called. */
  get handshake(): HandshakeService | null {
    return this.handshakeService;
  }

  /** Counts a request against a rate limit; throws 429 RATE_LIMITED when over (C-217, C-219). */
  enforceRateLimit(bucket: RateLimitBucket, key: string): Promise<void> {
    return this.rateLimiter.enforce(bucket, key);
  }

  /**
   * Subscribes to revocations made by other instances sharing the store (hot-path cache
   * invalidation). While the store reports its feed lost, the token cache is bypassed, so every
   * call is validated against the store (threats I3; see TokenCache).
   */
  async start(): Promise<void> {
    if (this.unsubscribe) return;
    this.unsubscribe = await this.ctx.store.watchRevocations((e) => this.tokenCache.invalidate(e));
  }

  async close(): Promise<void> {
    await this.unsubscribe?.();
    this.unsubscribe = null;
    this.tokenCache.reset();
  }

  /** POST /ath/agents/register → 201. */
  register(body: unknown): Promise<AgentRegistrationResponse> {
    return register(this.ctx, body);
  }

  /** GET /ath/agents/{clientId} → 200. */
  agentStatus(clientId: string, auth: AgentStatusAuth): Promise<AgentStatusResponse> {
    return agentStatus(this.ctx, clientId, auth);
  }

  /** POST /ath/authorize → 200. */
  authorize(body: unknown): Promise<AuthorizationResponse> {
    return authorize(this.ctx, body);
  }

  /** GET /ath/authorize/start: binds the browser and returns what the consent step needs. */
  launch(query: URLSearchParams, cookies: Readonly<Record<string, string | undefined>>): Promise<LaunchResult> {
    return launch(this.ctx, query, cookies);
  }

  /** GET /ath/callback, first half: state + browser binding, before any upstream exchange. */
  openCallback(state: string | null, cookies: Readonly<Record<string, string | undefined>>): Promise<SessionRecord> {
    return openCallback(this.ctx, state, cookies);
  }

  /** Records the user's decision once; returns the redirect or page the browser gets. */
  completeConsent(session: SessionRecord, outcome: ConsentOutcome): Promise<CallbackResult> {
    return completeConsent(this.ctx, session, outcome);
  }

  /** POST /ath/token → 200. */
  exchangeToken(body: unknown): Promise<TokenResponse> {
    return exchangeToken(this.ctx, body);
  }

  /** One proxied or native API call. */
  validateAccess(req: AccessRequest): Promise<AccessGrant> {
    return validateAccess(this.ctx, this.tokenCache, req);
  }

  /**
   * The hot path's synchronous form of {@link validateAccess}: the grant when the token cache alone
   * allows the call; null when it cannot say so without the store or an error (then call
   * validateAccess, which decides and reports). No side effects.
   */
  peekAccess(req: AccessRequest): AccessGrant | null {
    return peekAccess(this.ctx, this.tokenCache, req);
  }

  /** Whether requests in `bucket` are rate limited (then each one is counted, see {@link takeHeldRateLimit}). */
  isRateLimited(bucket: RateLimitBucket): boolean {
    return this.rateLimiter.has(bucket);
  }

  /**
   * The hot path's synchronous rate-limit check: admits the request from units this instance
   * already took from the shared count (a rule's `batch`), with no store access. False when no
   * unit is held; then {@link enforceRateLimit} decides (and takes the next batch).
   */
  takeHeldRateLimit(bucket: RateLimitBucket, key: string): boolean {
    return this.rateLimiter.takeHeld(bucket, key);
  }

  /** POST /ath/revoke → 200. */
  revoke(body: unknown, caller?: RevocationCaller): Promise<void> {
    return revokeToken(this.ctx, this.tokenCache, body, caller);
  }
}

export type { AccessGrant, AccessRequest } from './access.js';
export { TokenCache } from './access.js';
export type { AgentStatusAuth } from './registration.js';
export { redirectUriProblem } from './registration.js';
export type { RevocationCaller } from './revocation.js';
export type { CallbackResult, ConsentOutcome, ConsentView, LaunchResult } from './authorization.js';
export { BINDING_COOKIE_PREFIX, bindingCookieName, LAUNCH_PATH, CALLBACK_PATH, AUTHORIZE_PATH } from './authorization.js';
export { TOKEN_PATH } from './token.js';
export { RateLimiter, type RateLimitBucket, type RateLimitRule, type RateLimitRules } from './rate-limit.js';
export { AgentAdmin, fullApprovals } from './admin.js';
export { MAX_SESSION_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS, wireStatus, type EngineContext } from './context.js';
