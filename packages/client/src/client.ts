import {
  type AgentRegistrationResponse,
  type AgentStatusResponse,
  type DeveloperInfo,
  type DiscoveryDocument,
  type ProviderInfo,
  type ProviderScopeRequest,
  type ServiceDiscoveryDocument,
  type TokenResponse,
} from '@athkit/schemas';
import type { AgentCredentials } from './attestation.js';
import {
  agentStatusRequest,
  authorizationRequest,
  discoveryRequest,
  isAuthorizationPending,
  processAgentStatusResponse,
  processAuthorizationResponse,
  processDiscoveryResponse,
  processProtectedResourceResponse,
  processRegistrationResponse,
  processRevocationResponse,
  processServiceDiscoveryResponse,
  processTokenResponse,
  protectedResourceRequest,
  registrationRequest,
  revocationRequest,
  serviceDiscoveryRequest,
  tokenRequest,
  type AttestedRequestOptions,
  type ProtectedResourceInit,
} from './endpoints.js';
import { AthClientError } from './errors.js';
import { runHandshake, type HandshakeParameters, type HandshakeSession } from './handshake.js';
import { assertSecureUrl, normalizeBaseUrl, systemClock, type Clock, type FetchLike } from './http.js';
import { generateState, parseRedirect } from './redirect.js';
import { MemoryCredentialStore, type CredentialStore, type PendingAuthorization, type StoredCredentials, type StoredToken } from './store.js';

export interface AthClientOptions {
  /** The agent's identity: agent_id, private key and kid. */
  agent: AgentCredentials;
  /** Where credentials and tokens are kept. Default: in memory. */
  store?: CredentialStore;
  fetch?: FetchLike;
  clock?: Clock;
  /** Per-request timeout in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** Attestation lifetime in seconds (default 120). */
  attestationLifetimeSeconds?: number;
  /** Interval between polls of agent status or the token endpoint (default 2000 ms). */
  pollIntervalMs?: number;
  /** Injected wait (tests); default setTimeout. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface WaitOptions {
  /** Give up after this long (default 600 000 ms: the 10-minute session lifetime). */
  timeoutMs?: number;
  intervalMs?: number;
  signal?: AbortSignal;
}

export interface RegistrationResult {
  /** The credentials now stored for this server. */
  credentials: StoredCredentials;
  /** True when the server answered 409 and stored credentials were reused (CL-07, AMB-13). */
  reused: boolean;
  response?: AgentRegistrationResponse;
}

export interface AuthorizeOptions {
  scopes: string[];
  /** One of the registered redirect_uris; omit for local agents (CL-07). */
  redirectUri?: string;
  /** RFC 8707 resource indicator. */
  resource?: string;
}

export interface ExchangeOptions {
  /** The full URL the user's browser was redirected to (with `state` and `code`). */
  redirectUrl?: string | URL;
  /** The completion code, when the caller already checked `state` itself. */
  code?: string;
}

/** The placeholder sent as `code` when no redirect took place (AMB-02, SEED-002). */
export const NO_REDIRECT_CODE = 'exchange';

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AthClientError('aborted', 'aborted'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AthClientError('aborted', 'aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

const TOKEN_EXPIRY_SKEW_MS = 5_000;

/**
 * What GatewayClient and NativeClient share: register (reusing stored credentials on 409),
 * agent status and approval polling, authorize with a CSPRNG state, exchange and polling for
 * consent, API calls with token bookkeeping, revocation.
 */
export abstract class AthClient {
  /** The server's base URL: the gateway, or the native service's origin. */
  readonly baseUrl: string;
  readonly agent: AgentCredentials;
  readonly store: CredentialStore;
  protected readonly clock: Clock;
  protected readonly requestOptions: AttestedRequestOptions;
  protected readonly pollIntervalMs: number;
  protected readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  protected constructor(baseUrl: string | URL, options: AthClientOptions) {
    this.baseUrl = normalizeBaseUrl(baseUrl);
    this.agent = options.agent;
    this.store = options.store ?? new MemoryCredentialStore();
    this.clock = options.clock ?? systemClock;
    this.requestOptions = {
      clock: this.clock,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.attestationLifetimeSeconds !== undefined ? { lifetimeSeconds: options.attestationLifetimeSeconds } : {}),
    };
    this.pollIntervalMs = options.pollIntervalMs ?? 2_000;
    this.sleep = options.sleep ?? defaultSleep;
  }

  /** Stored credentials for this agent at this server, or null. */
  credentials(): Promise<StoredCredentials | null> {
    return this.store.load(this.agent.agentId, this.baseUrl);
  }

  protected async requireCredentials(): Promise<StoredCredentials> {
    const creds = await this.credentials();
    if (!creds) throw new AthClientError('not_registered', `the agent has no credentials for ${this.baseUrl}; register first`);
    return creds;
  }

  /** Where registrations are POSTed (a gateway may advertise a same-origin endpoint). */
  protected registrationEndpoint(): string | undefined {
    return undefined;
  }

  protected async registerProviders(
    requested: ProviderScopeRequest[],
    options: { developer: DeveloperInfo; purpose?: string; redirectUris?: string[] },
  ): Promise<RegistrationResult> {
    const endpoint = this.registrationEndpoint();
    let response: AgentRegistrationResponse;
    try {
      response = await processRegistrationResponse(
        await registrationRequest(
          this.baseUrl,
          this.agent,
          {
            developer: options.developer,
            requested_providers: requested as [ProviderScopeRequest, ...ProviderScopeRequest[]],
            ...(options.purpose !== undefined ? { purpose: options.purpose } : {}),
            ...(options.redirectUris !== undefined ? { redirect_uris: options.redirectUris as [] } : {}),
          },
          { ...this.requestOptions, ...(endpoint ? { endpoint } : {}) },
        ),
      );
    } catch (err) {
      if (err instanceof AthClientError && err.code === 'AGENT_ALREADY_REGISTERED') {
        const stored = await this.credentials();
        const serverClientId = err.details?.['client_id'];
        if (stored && (serverClientId === undefined || serverClientId === stored.clientId)) {
          return { credentials: stored, reused: true };
        }
        throw new AthClientError(
          'AGENT_ALREADY_REGISTERED',
          `${err.message}; no stored credentials for it here, so use the store that holds them (or ask the operator to reset the registration)`,
          { ...(err.status !== undefined ? { status: err.status } : {}), ...(err.details ? { details: err.details } : {}), cause: err },
        );
      }
      throw err;
    }
    const credentials: StoredCredentials = {
      agentId: this.agent.agentId,
      server: this.baseUrl,
      clientId: response.client_id,
      clientSecret: response.client_secret,
      agentStatus: response.agent_status,
      approvedProviders: response.approved_providers,
      approvalExpires: response.approval_expires,
    };
    await this.store.save(credentials);
    return { credentials, reused: false, response };
  }

  /** GET /ath/agents/{clientId}: the current status; stored approvals are updated. */
  async status(): Promise<AgentStatusResponse> {
    const creds = await this.requireCredentials();
    const status = await processAgentStatusResponse(
      await agentStatusRequest(this.baseUrl, creds.clientId, creds.clientSecret, this.requestOptions),
    );
    await this.store.save({
      ...creds,
      agentStatus: status.agent_status,
      approvedProviders: status.approved_providers,
      approvalExpires: status.approval_expires,
    });
    return status;
  }

  /**
   * Polls the agent status while it is `pending` (CL-08); resolves when approved, throws
   * `agent_denied` when denied and `wait_timeout` when the time is up.
   */
  async waitForApproval(options: WaitOptions = {}): Promise<AgentStatusResponse> {
    const deadline = this.clock.now() + (options.timeoutMs ?? 600_000);
    for (;;) {
      const status = await this.status();
      if (status.agent_status === 'approved') return status;
      if (status.agent_status === 'denied') {
        throw new AthClientError('agent_denied', 'the service denied this agent', { details: { agent_status: 'denied' } });
      }
      if (this.clock.now() >= deadline) throw new AthClientError('wait_timeout', 'the agent is still pending approval');
      await this.sleep(options.intervalMs ?? this.pollIntervalMs, options.signal);
    }
  }

  protected async startAuthorization(providerId: string, options: AuthorizeOptions): Promise<PendingAuthorization> {
    const creds = await this.requireCredentials();
    if (options.scopes.length === 0) throw new AthClientError('invalid_argument', 'authorize needs at least one scope');
    if (creds.agentStatus === 'denied') {
      throw new AthClientError('agent_denied', 'the service denied this agent', { details: { agent_status: 'denied' } });
    }
    const approval = creds.approvedProviders?.find((p) => p.provider_id === providerId);
    if (creds.agentStatus === 'approved' && approval) {
      const outside = options.scopes.filter((s) => !approval.approved_scopes.includes(s));
      if (outside.length > 0) {
        throw new AthClientError('scope_not_approved', `scopes not approved for ${providerId}: ${outside.join(' ')}`, {
          details: { provider_id: providerId, approved_scopes: approval.approved_scopes, requested_scopes: options.scopes },
        });
      }
    }
    const state = generateState();
    const response = await processAuthorizationResponse(
      await authorizationRequest(
        this.baseUrl,
        this.agent,
        {
          client_id: creds.clientId,
          provider_id: providerId,
          scopes: options.scopes as [string, ...string[]],
          state,
          ...(options.redirectUri !== undefined ? { user_redirect_uri: options.redirectUri } : {}),
          ...(options.resource !== undefined ? { resource: options.resource } : {}),
        },
        this.requestOptions,
      ),
    );
    const pending: PendingAuthorization = {
      authorizationUrl: response.authorization_url,
      sessionId: response.ath_session_id,
      state,
      providerId,
      scopes: [...options.scopes],
      ...(options.redirectUri !== undefined ? { redirectUri: options.redirectUri } : {}),
      createdAt: this.clock.now(),
    };
    await this.store.save({ ...creds, pending: { ...creds.pending, [providerId]: pending } });
    return pending;
  }

  /** The unfinished authorization for a provider, if any (e.g. started by another process). */
  async pendingAuthorization(providerId: string): Promise<PendingAuthorization | null> {
    return (await this.credentials())?.pending?.[providerId] ?? null;
  }

  /**
   * POST /ath/token for a pending authorization. With a redirect URI, pass the URL the user came
   * back to: its `state` is checked (CL-09) and its completion code used; without one, the code is
   * the placeholder "exchange" (AMB-02). The token is checked (CL-12) and stored.
   */
  async exchange(pending: PendingAuthorization, options: ExchangeOptions = {}): Promise<StoredToken> {
    let code: string;
    if (options.code !== undefined) code = options.code;
    else if (pending.redirectUri !== undefined) {
      if (options.redirectUrl === undefined) {
        throw new AthClientError('invalid_argument', 'this authorization uses a redirect URI: pass the URL the user was redirected to');
      }
      const redirected = new URL(options.redirectUrl);
      const expected = new URL(pending.redirectUri);
      if (redirected.origin !== expected.origin || redirected.pathname !== expected.pathname) {
        throw new AthClientError('invalid_redirect', `the redirect went to ${redirected.origin}${redirected.pathname}, not ${pending.redirectUri}`);
      }
      code = parseRedirect(redirected, pending.state).code;
    } else {
      if (options.redirectUrl !== undefined) parseRedirect(options.redirectUrl, pending.state);
      code = NO_REDIRECT_CODE;
    }
    const creds = await this.requireCredentials();
    let token;
    try {
      token = await processTokenResponse(
        await tokenRequest(
          this.baseUrl,
          this.agent,
          { client_id: creds.clientId, client_secret: creds.clientSecret, code, ath_session_id: pending.sessionId },
          this.requestOptions,
        ),
        { agentId: this.agent.agentId, providerId: pending.providerId, scopes: pending.scopes },
      );
    } catch (err) {
      // A session that cannot succeed any more is forgotten; a pending one is kept for the next poll.
      if (err instanceof AthClientError && err.fromServer && !isAuthorizationPending(err) && err.code !== 'RATE_LIMITED' && err.status !== 500) {
        await this.forgetPending(pending);
      }
      throw err;
    }
    const stored = this.toStoredToken(token);
    const latest = await this.requireCredentials();
    const { [pending.providerId]: _done, ...rest } = latest.pending ?? {};
    await this.store.save({ ...latest, pending: rest, tokens: { ...latest.tokens, [stored.providerId]: stored } });
    return stored;
  }

  /** The token as the store keeps it: `expires_in` becomes an absolute time on this client's clock. */
  protected toStoredToken(token: Pick<TokenResponse, 'access_token' | 'token_type' | 'provider_id' | 'agent_id' | 'effective_scopes' | 'expires_in'>): StoredToken {
    return {
      accessToken: token.access_token,
      tokenType: token.token_type,
      providerId: token.provider_id,
      agentId: token.agent_id,
      scopes: token.effective_scopes,
      expiresAt: this.clock.now() + token.expires_in * 1000,
    };
  }

  private async forgetPending(pending: PendingAuthorization): Promise<void> {
    const latest = await this.credentials();
    if (latest?.pending?.[pending.providerId]?.sessionId !== pending.sessionId) return;
    const { [pending.providerId]: _gone, ...rest } = latest.pending;
    await this.store.save({ ...latest, pending: rest });
  }

  /**
   * Waits for the user to finish consent by polling /ath/token while it answers
   * `authorization_pending` (each poll with a fresh attestation, CL-06); honours Retry-After on
   * 429. Only for authorizations without a redirect URI.
   */
  async waitForToken(pending: PendingAuthorization, options: WaitOptions = {}): Promise<StoredToken> {
    if (pending.redirectUri !== undefined) {
      throw new AthClientError('invalid_argument', 'this authorization returns through a redirect: call exchange() with the redirect URL');
    }
    const deadline = this.clock.now() + (options.timeoutMs ?? 600_000);
    for (;;) {
      let wait = options.intervalMs ?? this.pollIntervalMs;
      try {
        return await this.exchange(pending);
      } catch (err) {
        if (err instanceof AthClientError && err.code === 'RATE_LIMITED') wait = Math.max(wait, (err.retryAfter ?? 1) * 1000);
        else if (!isAuthorizationPending(err)) throw err;
      }
      if (this.clock.now() + wait > deadline) {
        throw new AthClientError('wait_timeout', 'the user has not completed the authorization in time');
      }
      await this.sleep(wait, options.signal);
    }
  }

  /** The stored token for a provider; throws `no_token` or `token_expired` (CL-12, CL-20). */
  async token(providerId: string): Promise<StoredToken> {
    const creds = await this.credentials();
    const token = creds?.tokens?.[providerId];
    if (!creds || !token) throw new AthClientError('no_token', `no access token for ${providerId}; run authorize first`);
    if (this.clock.now() >= token.expiresAt - TOKEN_EXPIRY_SKEW_MS) {
      await this.dropToken(providerId);
      throw new AthClientError('token_expired', `the access token for ${providerId} has expired; run authorize again`);
    }
    return token;
  }

  private async dropToken(providerId: string): Promise<void> {
    const creds = await this.credentials();
    if (!creds?.tokens?.[providerId]) return;
    const { [providerId]: _gone, ...rest } = creds.tokens;
    await this.store.save({ ...creds, tokens: rest });
  }

  protected async callUrl(providerId: string, url: string, init: ProtectedResourceInit): Promise<Response> {
    const token = await this.token(providerId);
    const response = await protectedResourceRequest(url, token.accessToken, this.agent.agentId, init, this.requestOptions);
    try {
      return await processProtectedResourceResponse(response);
    } catch (err) {
      if (err instanceof AthClientError && err.needsReauthorization) await this.dropToken(providerId);
      throw err;
    }
  }

  protected async jsonResult<T>(response: Response, what: string): Promise<T> {
    const text = await response.text();
    if (!response.ok) {
      throw new AthClientError(response.status >= 500 ? 'server_error' : 'api_error', `${what}: HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`, {
        status: response.status,
      });
    }
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new AthClientError('invalid_response', `${what}: the API response is not JSON`, { status: response.status });
    }
  }

  /** POST /ath/revoke for the stored token of a provider (CL-14); it is forgotten either way. */
  protected async revokeProvider(providerId: string): Promise<boolean> {
    const creds = await this.requireCredentials();
    const token = creds.tokens?.[providerId];
    if (!token) return false;
    await processRevocationResponse(
      await revocationRequest(
        this.baseUrl,
        { client_id: creds.clientId, client_secret: creds.clientSecret, token: token.accessToken },
        this.requestOptions,
      ),
    );
    await this.dropToken(providerId);
    return true;
  }
}

function requirePath(path: string): string {
  if (!path.startsWith('/') || path.startsWith('//')) {
    throw new AthClientError('invalid_argument', `an API path must start with a single "/", got ${path}`);
  }
  return path;
}

const bodyInit = (body: unknown): Pick<ProtectedResourceInit, 'body'> =>
  body === undefined ? {} : { body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) };

// ------------------------------------------------------------------------------------------ gateway

export interface GatewayRegisterOptions {
  developer: DeveloperInfo;
  /** Providers and scopes to ask for. */
  providers: ProviderScopeRequest[];
  purpose?: string;
  /** Only if the agent has a public https callback (CL-07). */
  redirectUris?: string[];
}

export interface GatewayAuthorizeOptions extends AuthorizeOptions {
  provider: string;
}

/**
 * An agent talking to an ATH gateway: discovery via `/.well-known/ath.json`, then register,
 * authorize per provider, and calls through `/ath/proxy/{provider}/…`.
 */
export class GatewayClient extends AthClient {
  /** The gateway's catalog, when created with {@link GatewayClient.discover}. */
  discovery: DiscoveryDocument | undefined;

  constructor(gatewayUrl: string | URL, options: AthClientOptions) {
    super(gatewayUrl, options);
  }

  /** Fetches and checks the gateway's discovery document (CL-18) and returns a client for it. */
  static async discover(gatewayUrl: string | URL, options: AthClientOptions): Promise<GatewayClient> {
    const client = new GatewayClient(gatewayUrl, options);
    client.discovery = await processDiscoveryResponse(await discoveryRequest(client.baseUrl, client.requestOptions));
    return client;
  }

  get providers(): ProviderInfo[] {
    return this.discovery?.supported_providers ?? [];
  }

  protected override registrationEndpoint(): string | undefined {
    const advertised = this.discovery?.agent_registration_endpoint;
    if (!advertised) return undefined;
    try {
      const url = new URL(advertised);
      // CL-18: only a same-origin registration endpoint is used; anything else falls back to the fixed path.
      return url.origin === new URL(this.baseUrl).origin ? url.href : undefined;
    } catch {
      return undefined;
    }
  }

  register(options: GatewayRegisterOptions): Promise<RegistrationResult> {
    return this.registerProviders(options.providers, options);
  }

  authorize(options: GatewayAuthorizeOptions): Promise<PendingAuthorization> {
    return this.startAuthorization(options.provider, options);
  }

  /** `<gateway>/ath/proxy/<provider><path>` with the provider's token; ATH errors throw, API responses are returned. */
  call(provider: string, method: string, path: string, init: Omit<ProtectedResourceInit, 'method'> = {}): Promise<Response> {
    const url = `${this.baseUrl}/ath/proxy/${encodeURIComponent(provider)}${requirePath(path)}`;
    return this.callUrl(provider, url, { ...init, method });
  }

  /** {@link call} with a JSON body and a JSON result; non-2xx answers throw. */
  async json<T = unknown>(provider: string, method: string, path: string, body?: unknown): Promise<T> {
    return this.jsonResult<T>(await this.call(provider, method, path, bodyInit(body)), `${method} ${path}`);
  }

  /** Revokes the stored token for a provider (CL-14). Returns false when there was none. */
  revoke(provider: string): Promise<boolean> {
    return this.revokeProvider(provider);
  }
}

// ------------------------------------------------------------------------------------------- native

export interface NativeRegisterOptions {
  developer: DeveloperInfo;
  /** Scopes to ask the service for (from `auth.scopes_supported`). */
  scopes: string[];
  purpose?: string;
  redirectUris?: string[];
}

/**
 * An agent talking to a service with built-in ATH (native mode): discovery via
 * `/.well-known/ath-app.json`, provider_id = app_id, calls to the service's `api_base`.
 */
export class NativeClient extends AthClient {
  readonly service: ServiceDiscoveryDocument;
  readonly apiBase: string;

  constructor(serviceUrl: string | URL, service: ServiceDiscoveryDocument, options: AthClientOptions) {
    super(serviceUrl, options);
    this.service = service;
    const api = new URL(service.api_base);
    assertSecureUrl(api);
    this.apiBase = api.href.replace(/\/+$/, '');
  }

  /** Fetches and checks `<serviceUrl>/.well-known/ath-app.json` (CL-18) and returns a client for it. */
  static async discover(serviceUrl: string | URL, options: AthClientOptions): Promise<NativeClient> {
    const base = normalizeBaseUrl(serviceUrl);
    const service = await processServiceDiscoveryResponse(
      await serviceDiscoveryRequest(base, {
        ...(options.fetch ? { fetch: options.fetch } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      }),
    );
    return new NativeClient(base, service, options);
  }

  /** The provider_id of a native service is its app_id (AMB-21). */
  get providerId(): string {
    return this.service.app_id;
  }

  register(options: NativeRegisterOptions): Promise<RegistrationResult> {
    return this.registerProviders([{ provider_id: this.providerId, scopes: options.scopes as [string, ...string[]] }], options);
  }

  authorize(options: AuthorizeOptions): Promise<PendingAuthorization> {
    return this.startAuthorization(this.providerId, options);
  }

  /** The stored token for this service. */
  currentToken(): Promise<StoredToken> {
    return this.token(this.providerId);
  }

  /** `<api_base><path>` with the token and X-ATH-Agent-ID (CL-13); never any other host (CL-16). */
  call(method: string, path: string, init: Omit<ProtectedResourceInit, 'method'> = {}): Promise<Response> {
    return this.callUrl(this.providerId, `${this.apiBase}${requirePath(path)}`, { ...init, method });
  }

  /** {@link call} with a JSON body and a JSON result; non-2xx answers throw. */
  async json<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    return this.jsonResult<T>(await this.call(method, path, bodyInit(body)), `${method} ${path}`);
  }

  /** Revokes the stored token (CL-14). Returns false when there was none. */
  revoke(): Promise<boolean> {
    return this.revokeProvider(this.providerId);
  }

  /**
   * The optional 9-step trusted handshake (seed 000): mutual key proof, the user's pre-authorization
   * credential, out-of-band user confirmation, then a token plus an ECDH-derived session key. The
   * token is stored like any other, so `call`/`json` use it afterwards (TLS + Bearer stay mandatory;
   * `session.encrypt` is optional message-level protection).
   */
  async handshake(parameters: HandshakeParameters): Promise<HandshakeSession> {
    const creds = await this.requireCredentials();
    const session = await runHandshake(
      {
        baseUrl: this.baseUrl,
        agent: this.agent,
        clientId: creds.clientId,
        clientSecret: creds.clientSecret,
        providerId: this.providerId,
        service: this.service,
        clock: this.clock,
        http: this.requestOptions,
        pollIntervalMs: this.pollIntervalMs,
        sleep: this.sleep,
      },
      parameters,
    );
    const stored = this.toStoredToken(session.complete);
    const latest = await this.requireCredentials();
    await this.store.save({ ...latest, tokens: { ...latest.tokens, [stored.providerId]: stored } });
    return session;
  }
}
