import {
  AthError,
  CALLBACK_PATH,
  cryptoRandom,
  parseScopeString,
  randomId,
  systemClock,
  type AthEngine,
  type CallbackResult,
  type Clock,
  type ConsentOutcome,
  type LaunchResult,
  type RandomSource,
  type SessionRecord,
  type Store,
  type Vault,
} from '@athkit/core';
import * as oauth from 'oauth4webapi';
import type { Secret } from './secret.js';

/** What the bridge needs to know about a provider (a subset of the gateway config's provider). */
export interface BridgeProvider {
  provider_id: string;
  oauth: {
    issuer?: string | undefined;
    authorization_endpoint?: string | undefined;
    token_endpoint?: string | undefined;
    userinfo_endpoint?: string | undefined;
    client_id: string;
    client_secret: Secret;
    token_endpoint_auth_method: 'client_secret_basic' | 'client_secret_post';
    resource?: string | undefined;
  };
}

/** The upstream token set as sealed in the vault (GrantRecord.ciphertext). Never leaves the server. */
export interface UpstreamTokenSet {
  access_token: string;
  token_type: string;
  refresh_token: string | null;
  /** Epoch ms; null when the AS gave no `expires_in`. */
  expires_at: number | null;
  scope: string | null;
  /** OIDC subject when the user id came from it (a refresh must keep it). */
  sub: string | null;
  resource: string | null;
  /** Set after the AS refused a refresh (invalid_grant): the user must authorize again. */
  broken: boolean;
}

/** Anything that can hand the proxy a usable upstream access token for a grant. */
export interface UpstreamTokenSource {
  /**
   * A valid upstream access token for `grantId`, refreshed first when expired (or when it equals
   * `rejected`, a token the upstream API just refused). 502 OAUTH_ERROR when that is impossible.
   */
  getUpstreamAccessToken(grantId: string, options?: { rejected?: string }): Promise<string>;
  /** The upstream access token when it can be had synchronously (in-memory cache), else undefined. Never refreshes. */
  peekUpstreamAccessToken?(grantId: string): string | undefined;
}

export interface OAuthBridgeOptions {
  store: Store;
  vault: Vault;
  /** The gateway's public URL (the engine's baseUrl); redirect_uri = `<baseUrl>/ath/callback`. */
  baseUrl: string;
  /** The providers, or a lookup (the catalog can change at run time). */
  providers: readonly BridgeProvider[] | ((providerId: string) => BridgeProvider | undefined);
  clock?: Clock;
  random?: RandomSource;
  /** Timeout of each request to an authorization server (default 10 s). */
  timeoutMs?: number;
  /** How long a refresh lease holds off other instances (default 30 s; keep it above timeoutMs). */
  leaseMs?: number;
  /** Refresh this long before `expires_at` (default 30 s). */
  refreshSkewMs?: number;
  /** How often a waiter polls the store while another instance holds the lease (default 25 ms). */
  leasePollMs?: number;
  /** fetch implementation for oauth4webapi (default: the global fetch). */
  fetch?: typeof fetch;
  /**
   * How long a decrypted upstream access token is reused in process memory without reading the
   * store (default 5 s; 0 disables). Never past the token's expiry minus the refresh skew; a token
   * the upstream API rejected is never served from it.
   */
  tokenCacheMs?: number;
  /** Operational notes (never with token values). */
  onWarning?: (message: string) => void;
}

interface ProviderRuntime {
  provider: BridgeProvider;
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  auth: oauth.ClientAuth;
  insecure: boolean;
}

const SAFE_ERROR_CODE = /^[A-Za-z0-9_.-]{1,64}$/;

function oauthError(message: string, reason: string): AthError {
  return new AthError('OAUTH_ERROR', message, { reason });
}

/**
 * The upstream half of the gateway's OAuth bridge (oauth4webapi): builds the upstream
 * authorization URL from the engine's launch result, exchanges the code at the callback, seals the
 * provider's tokens into the vault, and refreshes them with single flight.
 */
export class OAuthBridge implements UpstreamTokenSource {
  private readonly store: Store;
  private readonly vault: Vault;
  private readonly redirectUri: string;
  private readonly lookup: (providerId: string) => BridgeProvider | undefined;
  private readonly clock: Clock;
  private readonly random: RandomSource;
  private readonly timeoutMs: number;
  private readonly leaseMs: number;
  private readonly skewMs: number;
  private readonly pollMs: number;
  private readonly fetchImpl: typeof fetch | undefined;
  private readonly warn: (message: string) => void;
  private readonly runtimes = new Map<string, Promise<ProviderRuntime>>();
  private readonly inflight = new Map<string, Promise<string>>();
  /** Hot path: decrypted upstream access tokens per grant, for at most `tokenCacheMs` and never past their expiry. */
  private readonly tokenCache = new Map<string, { token: string; until: number }>();
  private readonly tokenCacheMs: number;

  constructor(options: OAuthBridgeOptions) {
    this.store = options.store;
    this.vault = options.vault;
    this.redirectUri = options.baseUrl.replace(/\/+$/, '') + CALLBACK_PATH;
    const providers = options.providers;
    if (typeof providers === 'function') this.lookup = providers;
    else {
      const byId = new Map(providers.map((p) => [p.provider_id, p]));
      this.lookup = (id) => byId.get(id);
    }
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? cryptoRandom;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.skewMs = options.refreshSkewMs ?? 30_000;
    this.pollMs = options.leasePollMs ?? 25;
    this.fetchImpl = options.fetch;
    this.warn = options.onWarning ?? (() => {});
    this.tokenCacheMs = options.tokenCacheMs ?? 5000;
  }

  /** Forgets discovered metadata (e.g. after the admin API changed a provider). */
  forget(providerId?: string): void {
    if (providerId === undefined) this.runtimes.clear();
    else this.runtimes.delete(providerId);
  }

  /**
   * The upstream authorization URL for the launch page's 302: the provider's authorization
   * endpoint plus the engine's upstream query (response_type, client_id, redirect_uri, scope, state,
   * code_challenge, code_challenge_method=S256, resource), which the engine rebuilt from the session.
   */
  async authorizationUrl(launch: Pick<LaunchResult, 'session' | 'upstreamQuery'>): Promise<string> {
    const rt = await this.runtime(launch.session.providerId);
    const query = launch.upstreamQuery;
    if (query.get('code_challenge_method') !== 'S256' || !query.get('code_challenge')) {
      throw new AthError('INTERNAL_ERROR', 'Internal server error'); // never send an authorization request without PKCE S256 (C-213)
    }
    if (query.get('redirect_uri') !== this.redirectUri) {
      throw new AthError('INTERNAL_ERROR', 'Internal server error'); // engine and bridge disagree on the base URL
    }
    const url = new URL(rt.as.authorization_endpoint!);
    for (const [key, value] of query) url.searchParams.set(key, value);
    url.searchParams.set('client_id', rt.client.client_id);
    const resource = launch.session.resource ?? rt.provider.oauth.resource;
    if (resource && !url.searchParams.has('resource')) url.searchParams.set('resource', resource);
    return url.toString();
  }

  /**
   * The upstream half of GET /ath/callback, after `engine.openCallback` accepted state and cookie:
   * RFC 9207 `iss` check, then the code exchange (form-encoded, client authentication, the
   * session's PKCE verifier, redirect_uri = `<base>/ath/callback`, resource). Returns the outcome for
   * `engine.completeConsent`. A response from the wrong issuer throws 400 STATE_MISMATCH before
   * anything is sent upstream (threats D5).
   */
  async exchange(session: SessionRecord, callbackParams: URLSearchParams): Promise<ConsentOutcome> {
    const rt = await this.runtime(session.providerId);
    let params: URLSearchParams;
    try {
      params = oauth.validateAuthResponse(rt.as, rt.client, this.issParams(rt, callbackParams), oauth.skipStateCheck); // state: checked by the engine
    } catch (err) {
      if (err instanceof oauth.AuthorizationResponseError) {
        if (err.error === 'access_denied') return { kind: 'denied' };
        return { kind: 'failed', message: `authorization server error ${safeCode(err.error)}` };
      }
      throw new AthError('STATE_MISMATCH', 'The authorization response did not come from the expected authorization server');
    }

    const resource = session.resource ?? rt.provider.oauth.resource ?? null;
    let tokens: oauth.TokenEndpointResponse;
    try {
      const response = await oauth.authorizationCodeGrantRequest(
        rt.as,
        rt.client,
        rt.auth,
        params,
        this.redirectUri,
        session.codeVerifier,
        this.requestOptions(rt, resource),
      );
      tokens = await oauth.processAuthorizationCodeResponse(rt.as, rt.client, response);
    } catch (err) {
      return { kind: 'failed', message: `code exchange failed: ${describe(err)}` };
    }

    const claims = oauth.getValidatedIdTokenClaims(tokens);
    const grantId = randomId(this.random, 'ath_grant_', 32);
    const sub = claims?.sub ?? (await this.userinfoSubject(rt, tokens));
    const userId = sub ?? grantId; // AMB-19: OIDC sub (ID token or userinfo), else the stable grant id
    const now = this.clock.now();
    const set: UpstreamTokenSet = {
      access_token: tokens.access_token,
      token_type: tokens.token_type,
      refresh_token: tokens.refresh_token ?? null,
      expires_at: typeof tokens.expires_in === 'number' ? now + tokens.expires_in * 1000 : null,
      scope: tokens.scope ?? null,
      sub: sub ?? null,
      resource,
      broken: false,
    };
    await this.store.putGrant({
      id: grantId,
      providerId: session.providerId,
      userId,
      ciphertext: await this.vault.seal(grantId, set),
      version: 1,
      leaseUntil: null,
      createdAt: now,
      updatedAt: now,
    });
    return { kind: 'granted', userId, consentedScopes: parseScopeString(tokens.scope), grantId };
  }

  /**
   * The whole GET /ath/callback for the assembly: engine.openCallback (state + browser binding),
   * {@link exchange}, engine.completeConsent. A sealed grant whose consent could not be recorded is
   * deleted again.
   */
  async handleCallback(
    engine: Pick<AthEngine, 'openCallback' | 'completeConsent'>,
    query: URLSearchParams,
    cookies: Readonly<Record<string, string | undefined>>,
  ): Promise<CallbackResult> {
    const session = await engine.openCallback(query.get('state'), cookies);
    const outcome = await this.exchange(session, query);
    try {
      return await engine.completeConsent(session, outcome);
    } catch (err) {
      if (outcome.kind === 'granted' && outcome.grantId) await this.store.deleteGrant(outcome.grantId);
      throw err;
    }
  }

  /** The in-memory upstream token of `grantId` while it is still good to use, without a promise (proxy hot path). */
  peekUpstreamAccessToken(grantId: string): string | undefined {
    const cached = this.tokenCache.get(grantId);
    return cached && cached.until > this.clock.now() ? cached.token : undefined;
  }

  async getUpstreamAccessToken(grantId: string, options: { rejected?: string } = {}): Promise<string> {
    const cached = this.tokenCache.get(grantId);
    if (cached) {
      if (cached.until > this.clock.now() && cached.token !== options.rejected) return cached.token;
      this.tokenCache.delete(grantId);
    }
    const pending = this.inflight.get(grantId);
    if (pending) return pending;
    const record = await this.store.getGrant(grantId);
    if (!record) throw oauthError('The upstream authorization is no longer available; authorize again', 'grant_missing');
    const set = await this.open(grantId, record.ciphertext);
    if (set.broken) throw oauthError('The upstream authorization is no longer valid; authorize again', 'grant_broken');
    if (this.fresh(set) && set.access_token !== options.rejected) {
      this.remember(grantId, set);
      return set.access_token;
    }

    // Single flight in this process: the first caller starts the refresh, everyone else joins it.
    let flight = this.inflight.get(grantId);
    if (!flight) {
      flight = this.refresh(grantId, options.rejected).finally(() => this.inflight.delete(grantId));
      this.inflight.set(grantId, flight);
    }
    return flight;
  }

  // --- internals ------------------------------------------------------------------------------

  private remember(grantId: string, set: UpstreamTokenSet): void {
    if (this.tokenCacheMs <= 0) return;
    const now = this.clock.now();
    const until = Math.min(now + this.tokenCacheMs, set.expires_at === null ? Infinity : set.expires_at - this.skewMs);
    if (until <= now) return;
    if (this.tokenCache.size >= 100_000) this.tokenCache.delete(this.tokenCache.keys().next().value!);
    this.tokenCache.set(grantId, { token: set.access_token, until });
  }

  private fresh(set: UpstreamTokenSet): boolean {
    return set.expires_at === null || set.expires_at - this.skewMs > this.clock.now();
  }

  private async open(grantId: string, ciphertext: string): Promise<UpstreamTokenSet> {
    try {
      return await this.vault.open<UpstreamTokenSet>(grantId, ciphertext);
    } catch {
      throw new AthError('INTERNAL_ERROR', 'Internal server error'); // wrong vault key or tampered row
    }
  }

  /** Across instances: a lease on the GrantRecord (compare-and-set on version) admits one refresher. */
  private async refresh(grantId: string, rejected: string | undefined): Promise<string> {
    const giveUpAt = Date.now() + this.leaseMs;
    for (;;) {
      const record = await this.store.getGrant(grantId);
      if (!record) throw oauthError('The upstream authorization is no longer available; authorize again', 'grant_missing');
      const set = await this.open(grantId, record.ciphertext);
      if (set.broken) throw oauthError('The upstream authorization is no longer valid; authorize again', 'grant_broken');
      if (this.fresh(set) && set.access_token !== rejected) return set.access_token; // refreshed by someone else
      const now = this.clock.now();
      if (record.leaseUntil !== null && record.leaseUntil > now) {
        if (Date.now() >= giveUpAt) throw oauthError('The upstream access token could not be refreshed in time', 'refresh_busy');
        await new Promise((resolve) => setTimeout(resolve, this.pollMs));
        continue;
      }
      const leased = await this.store.updateGrant(grantId, record.version, { leaseUntil: now + this.leaseMs, updatedAt: now });
      if (!leased) continue; // another instance moved first: look again
      return this.refreshLeased(grantId, leased.version, record.providerId, set);
    }
  }

  private async refreshLeased(grantId: string, version: number, providerId: string, set: UpstreamTokenSet): Promise<string> {
    const rt = await this.runtime(providerId).catch(async (err: unknown) => {
      await this.release(grantId, version, null);
      throw err;
    });
    if (!set.refresh_token) {
      await this.release(grantId, version, null);
      throw oauthError('The upstream access token expired and cannot be refreshed; authorize again', 'no_refresh_token');
    }
    let tokens: oauth.TokenEndpointResponse;
    try {
      const response = await oauth.refreshTokenGrantRequest(rt.as, rt.client, rt.auth, set.refresh_token, this.requestOptions(rt, set.resource));
      tokens = await oauth.processRefreshTokenResponse(rt.as, rt.client, response);
    } catch (err) {
      const permanent = err instanceof oauth.ResponseBodyError && err.error === 'invalid_grant';
      await this.release(grantId, version, permanent ? { ...set, broken: true } : null);
      throw oauthError('The upstream authorization server did not refresh the access token; authorize again', 'refresh_failed');
    }
    const claims = oauth.getValidatedIdTokenClaims(tokens);
    if (claims && set.sub !== null && claims.sub !== set.sub) {
      // The grant stays bound to the user who consented (C-164): never switch users on refresh.
      await this.release(grantId, version, { ...set, broken: true });
      throw oauthError('The upstream authorization changed users; authorize again', 'subject_changed');
    }
    const now = this.clock.now();
    const next: UpstreamTokenSet = {
      ...set,
      access_token: tokens.access_token,
      token_type: tokens.token_type,
      refresh_token: tokens.refresh_token ?? set.refresh_token,
      expires_at: typeof tokens.expires_in === 'number' ? now + tokens.expires_in * 1000 : null,
      scope: tokens.scope ?? set.scope,
    };
    const written = await this.store.updateGrant(grantId, version, {
      ciphertext: await this.vault.seal(grantId, next),
      leaseUntil: null,
      updatedAt: now,
    });
    if (!written) this.warn(`grant ${grantId}: refresh lease expired before the new tokens were stored`);
    else this.remember(grantId, next);
    return next.access_token;
  }

  /** Drops the lease; with `set`, also stores it (e.g. marked broken). */
  private async release(grantId: string, version: number, set: UpstreamTokenSet | null): Promise<void> {
    const now = this.clock.now();
    await this.store.updateGrant(grantId, version, {
      leaseUntil: null,
      updatedAt: now,
      ...(set ? { ciphertext: await this.vault.seal(grantId, set) } : {}),
    });
  }

  private async userinfoSubject(rt: ProviderRuntime, tokens: oauth.TokenEndpointResponse): Promise<string | undefined> {
    if (!rt.as.userinfo_endpoint || !parseScopeString(tokens.scope)?.includes('openid')) return undefined;
    try {
      const response = await oauth.userInfoRequest(rt.as, rt.client, tokens.access_token, this.baseOptions(rt));
      const info = await oauth.processUserInfoResponse(rt.as, rt.client, oauth.skipSubjectCheck, response);
      return info.sub;
    } catch {
      this.warn(`provider ${rt.provider.provider_id}: userinfo request failed; using the grant id as user id`);
      return undefined;
    }
  }

  /** `iss` can only be checked against a known issuer; without one configured it is dropped (documented). */
  private issParams(rt: ProviderRuntime, params: URLSearchParams): URLSearchParams {
    if (rt.provider.oauth.issuer || !params.has('iss')) return params;
    const copy = new URLSearchParams(params);
    copy.delete('iss');
    return copy;
  }

  private requestOptions(rt: ProviderRuntime, resource: string | null): oauth.TokenEndpointRequestOptions {
    return { ...this.baseOptions(rt), ...(resource ? { additionalParameters: { resource } } : {}) };
  }

  /** Timeout, plain http for loopback/dev authorization servers, optional custom fetch. */
  private baseOptions(rt: { insecure: boolean }): oauth.HttpRequestOptions<'GET' | 'POST', URLSearchParams | undefined> {
    return {
      signal: () => AbortSignal.timeout(this.timeoutMs),
      ...(rt.insecure ? { [oauth.allowInsecureRequests]: true } : {}),
      ...(this.fetchImpl ? { [oauth.customFetch]: this.fetchImpl } : {}),
    };
  }

  private runtime(providerId: string): Promise<ProviderRuntime> {
    let rt = this.runtimes.get(providerId);
    if (!rt) {
      rt = this.loadRuntime(providerId);
      this.runtimes.set(providerId, rt);
      rt.catch(() => this.runtimes.delete(providerId)); // retry discovery next time
    }
    return rt;
  }

  private async loadRuntime(providerId: string): Promise<ProviderRuntime> {
    const provider = this.lookup(providerId);
    if (!provider) throw oauthError('The provider is not configured', 'unknown_provider');
    const o = provider.oauth;
    const urls = [o.issuer, o.authorization_endpoint, o.token_endpoint, o.userinfo_endpoint].filter((u): u is string => !!u);
    const insecure = urls.some((u) => u.startsWith('http:'));
    let as: oauth.AuthorizationServer;
    if (o.issuer && !(o.authorization_endpoint && o.token_endpoint)) {
      as = await this.discover(provider, new URL(o.issuer), insecure);
    } else {
      as = {
        // Without a configured issuer there is nothing to compare `iss` with (issParams drops it).
        issuer: o.issuer ?? new URL(o.token_endpoint!).origin,
        authorization_endpoint: o.authorization_endpoint!,
        token_endpoint: o.token_endpoint!,
        ...(o.userinfo_endpoint ? { userinfo_endpoint: o.userinfo_endpoint } : {}),
      };
    }
    if (!as.authorization_endpoint || !as.token_endpoint) {
      throw oauthError('The provider authorization server metadata is incomplete', 'metadata_incomplete');
    }
    const secret = o.client_secret.reveal();
    return {
      provider,
      as,
      client: { client_id: o.client_id },
      auth: o.token_endpoint_auth_method === 'client_secret_post' ? oauth.ClientSecretPost(secret) : oauth.ClientSecretBasic(secret),
      insecure,
    };
  }

  private async discover(provider: BridgeProvider, issuer: URL, insecure: boolean): Promise<oauth.AuthorizationServer> {
    const options = this.baseOptions({ insecure });
    let as: oauth.AuthorizationServer | undefined;
    for (const algorithm of ['oidc', 'oauth2'] as const) {
      try {
        as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...options, algorithm }));
        break;
      } catch {
        // try the other well-known location
      }
    }
    if (!as) throw oauthError('The provider authorization server metadata could not be loaded', 'discovery_failed');
    const methods = as.code_challenge_methods_supported;
    if (Array.isArray(methods) && !methods.includes('S256')) {
      // threats D1: a provider that cannot do PKCE S256 is refused.
      throw oauthError(`Provider ${provider.provider_id} does not support PKCE S256`, 'pkce_unsupported');
    }
    return {
      ...as,
      ...(provider.oauth.userinfo_endpoint ? { userinfo_endpoint: provider.oauth.userinfo_endpoint } : {}),
    };
  }
}

function safeCode(code: string): string {
  return SAFE_ERROR_CODE.test(code) ? code : 'unknown';
}

/** A short reason that carries no upstream values (codes only, never descriptions, tokens or URLs). */
function describe(err: unknown): string {
  if (err instanceof oauth.ResponseBodyError) return safeCode(err.error);
  if (err instanceof oauth.WWWAuthenticateChallengeError) return 'authentication challenge';
  if (err instanceof oauth.OperationProcessingError) return safeCode(err.code ?? 'invalid response');
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timeout';
  return 'unreachable';
}
