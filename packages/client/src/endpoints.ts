import {
  ENDPOINTS,
  PROTOCOL_VERSION,
  validateAgentRegistrationResponse,
  validateAgentStatusResponse,
  validateAuthorizationResponse,
  validateDiscoveryDocument,
  validateServiceDiscoveryDocument,
  validateTokenResponse,
  type AgentRegistrationRequest,
  type AgentRegistrationResponse,
  type AgentStatusResponse,
  type AuthorizationRequest,
  type AuthorizationResponse,
  type DiscoveryDocument,
  type ServiceDiscoveryDocument,
  type TokenResponse,
} from '@athkit/schemas';
import { createAttestation, type AgentCredentials, type AttestationOptions } from './attestation.js';
import { basicAuthorization } from './encoding.js';
import { AthClientError } from './errors.js';
import {
  assertSecureUrl,
  discardBody,
  errorFromResponse,
  normalizeBaseUrl,
  postJson,
  processJson,
  send,
  type HttpOptions,
} from './http.js';

/** Options of the requests that carry an attestation. */
export interface AttestedRequestOptions extends HttpOptions, AttestationOptions {}

const url = (baseUrl: string | URL, path: string): { base: string; href: string } => {
  const base = normalizeBaseUrl(baseUrl);
  return { base, href: `${base}${path}` };
};

function checkVersion(version: string, what: string): void {
  if (version !== PROTOCOL_VERSION) {
    throw new AthClientError('unsupported_version', `${what}: the server speaks ATH ${version}, this client speaks ${PROTOCOL_VERSION}`, {
      details: { ath_version: version },
    });
  }
}

// ---------------------------------------------------------------- discovery (gateway)

/** GET `<base>/.well-known/ath.json`. */
export async function discoveryRequest(baseUrl: string | URL, options?: HttpOptions): Promise<Response> {
  return send(url(baseUrl, ENDPOINTS.discovery.path).href, { method: 'GET' }, options);
}

/** 200 DiscoveryDocument with `ath_version` "0.1" (CL-18). */
export async function processDiscoveryResponse(response: Response): Promise<DiscoveryDocument> {
  const doc = await processJson(response, 200, validateDiscoveryDocument, 'gateway discovery');
  checkVersion(doc.ath_version, 'gateway discovery');
  return doc;
}

// ---------------------------------------------------------------- discovery (native service)

/** GET `<base>/.well-known/ath-app.json`. */
export async function serviceDiscoveryRequest(baseUrl: string | URL, options?: HttpOptions): Promise<Response> {
  return send(url(baseUrl, ENDPOINTS.service_discovery.path).href, { method: 'GET' }, options);
}

/** 200 ServiceDiscoveryDocument with `ath_version` "0.1" and an https (or loopback) `api_base`. */
export async function processServiceDiscoveryResponse(response: Response): Promise<ServiceDiscoveryDocument> {
  const doc = await processJson(response, 200, validateServiceDiscoveryDocument, 'service discovery');
  checkVersion(doc.ath_version, 'service discovery');
  assertSecureUrl(new URL(doc.api_base));
  return doc;
}

// ---------------------------------------------------------------- register

export type RegistrationParameters = Pick<AgentRegistrationRequest, 'developer' | 'requested_providers' | 'purpose' | 'redirect_uris'>;

/**
 * POST `<base>/ath/agents/register` with a fresh attestation (`aud` = base, CL-05). `endpoint`
 * overrides the URL (e.g. a same-origin `agent_registration_endpoint` from discovery).
 */
export async function registrationRequest(
  baseUrl: string | URL,
  agent: AgentCredentials,
  parameters: RegistrationParameters,
  options: AttestedRequestOptions & { endpoint?: string } = {},
): Promise<Response> {
  const { base, href } = url(baseUrl, ENDPOINTS.register.path);
  const body: AgentRegistrationRequest = {
    ...parameters,
    agent_id: agent.agentId,
    agent_attestation: await createAttestation(agent, base, 'register', options),
  };
  return postJson(options.endpoint ?? href, body, options);
}

/** 201 AgentRegistrationResponse. A duplicate is `AGENT_ALREADY_REGISTERED` (409, `details.client_id`). */
export function processRegistrationResponse(response: Response): Promise<AgentRegistrationResponse> {
  return processJson(response, 201, validateAgentRegistrationResponse, 'registration');
}

// ---------------------------------------------------------------- agent status

/** GET `<base>/ath/agents/{clientId}` with HTTP Basic client credentials (AMB-07). */
export async function agentStatusRequest(
  baseUrl: string | URL,
  clientId: string,
  clientSecret: string,
  options?: HttpOptions,
): Promise<Response> {
  const { href } = url(baseUrl, `/ath/agents/${encodeURIComponent(clientId)}`);
  return send(href, { method: 'GET', headers: { authorization: basicAuthorization(clientId, clientSecret) } }, options);
}

/** 200 AgentStatusResponse. */
export function processAgentStatusResponse(response: Response): Promise<AgentStatusResponse> {
  return processJson(response, 200, validateAgentStatusResponse, 'agent status');
}

// ---------------------------------------------------------------- authorize

export type AuthorizationParameters = Pick<
  AuthorizationRequest,
  'client_id' | 'provider_id' | 'scopes' | 'state' | 'user_redirect_uri' | 'resource'
>;

/** POST `<base>/ath/authorize` with a fresh attestation (`aud` = base, CL-05). */
export async function authorizationRequest(
  baseUrl: string | URL,
  agent: AgentCredentials,
  parameters: AuthorizationParameters,
  options: AttestedRequestOptions = {},
): Promise<Response> {
  const { base, href } = url(baseUrl, ENDPOINTS.authorize.path);
  const body: AuthorizationRequest = {
    ...parameters,
    agent_attestation: await createAttestation(agent, base, 'authorize', options),
  };
  return postJson(href, body, options);
}

/**
 * 200 AuthorizationResponse. The `authorization_url` must be https (or loopback http) and carry
 * `code_challenge_method=S256` (CL-10); open it, unmodified, in the user's own browser.
 */
export async function processAuthorizationResponse(response: Response): Promise<AuthorizationResponse> {
  const body = await processJson(response, 200, validateAuthorizationResponse, 'authorize');
  let consent: URL;
  try {
    consent = new URL(body.authorization_url);
    assertSecureUrl(consent);
  } catch (err) {
    throw new AthClientError('invalid_response', `authorize: authorization_url is not a usable https URL: ${body.authorization_url}`, {
      status: response.status,
      cause: err,
    });
  }
  if (consent.searchParams.get('code_challenge_method') !== 'S256' || !consent.searchParams.get('code_challenge')) {
    throw new AthClientError('invalid_response', 'authorize: authorization_url lacks code_challenge with code_challenge_method=S256 (PKCE)', {
      status: response.status,
    });
  }
  return body;
}

// ---------------------------------------------------------------- token

export interface TokenParameters {
  client_id: string;
  client_secret: string;
  /** The completion code from the redirect, or any placeholder (e.g. "exchange") without one (AMB-02). */
  code: string;
  ath_session_id: string;
}

/** POST `<base>/ath/token`; the attestation's `aud` is exactly `<base>/ath/token` (CL-05, CL-11). */
export async function tokenRequest(
  baseUrl: string | URL,
  agent: AgentCredentials,
  parameters: TokenParameters,
  options: AttestedRequestOptions = {},
): Promise<Response> {
  const { base, href } = url(baseUrl, ENDPOINTS.token.path);
  return postJson(
    href,
    {
      grant_type: 'authorization_code',
      client_id: parameters.client_id,
      client_secret: parameters.client_secret,
      agent_attestation: await createAttestation(agent, base, 'token', options),
      code: parameters.code,
      ath_session_id: parameters.ath_session_id,
    },
    options,
  );
}

/** What the token must be bound to (CL-12). */
export interface TokenExpectation {
  agentId?: string;
  providerId?: string;
  /** The scopes that were requested; effective_scopes must be a subset. */
  scopes?: readonly string[];
}

/**
 * 200 TokenResponse, checked against what was asked for (CL-12): own agent_id, the requested
 * provider, `effective_scopes` ⊆ requested and equal to `scope_intersection.effective`, Bearer.
 * `SESSION_NOT_FOUND` with `details.reason = "authorization_pending"` means the user has not
 * finished consent yet (see {@link isAuthorizationPending}).
 */
export async function processTokenResponse(response: Response, expected: TokenExpectation = {}): Promise<TokenResponse> {
  const token = await processJson(response, 200, validateTokenResponse, 'token exchange');
  const problems: string[] = [];
  if (expected.agentId !== undefined && token.agent_id !== expected.agentId) problems.push(`agent_id is ${token.agent_id}, not ${expected.agentId}`);
  if (expected.providerId !== undefined && token.provider_id !== expected.providerId) {
    problems.push(`provider_id is ${token.provider_id}, not ${expected.providerId}`);
  }
  if (expected.scopes !== undefined) {
    const extra = token.effective_scopes.filter((s) => !expected.scopes!.includes(s));
    if (extra.length > 0) problems.push(`effective_scopes include scopes that were not requested: ${extra.join(' ')}`);
  }
  const effective = [...token.scope_intersection.effective].sort().join(' ');
  if ([...token.effective_scopes].sort().join(' ') !== effective) problems.push('effective_scopes differ from scope_intersection.effective');
  if (token.effective_scopes.length === 0) problems.push('the token carries no scopes');
  if (problems.length > 0) {
    throw new AthClientError('invalid_token_response', `token exchange: the token does not match the request: ${problems.join('; ')}`, {
      status: response.status,
    });
  }
  return token;
}

/** True for the token endpoint's "consent not finished yet" answer (C-132). */
export function isAuthorizationPending(err: unknown): boolean {
  return err instanceof AthClientError && err.code === 'SESSION_NOT_FOUND' && err.details?.['reason'] === 'authorization_pending';
}

// ---------------------------------------------------------------- revoke

export interface RevocationParameters {
  client_id: string;
  client_secret: string;
  token: string;
}

/** POST `<base>/ath/revoke` with the client credentials (CL-14). */
export async function revocationRequest(baseUrl: string | URL, parameters: RevocationParameters, options?: HttpOptions): Promise<Response> {
  return postJson(url(baseUrl, ENDPOINTS.revoke.path).href, parameters, options);
}

/** 200 (any body) means done, also for tokens that were already unusable. */
export async function processRevocationResponse(response: Response): Promise<void> {
  if (response.status !== 200) throw await errorFromResponse(response, 'revocation');
  await discardBody(response);
}

// ---------------------------------------------------------------- API calls

export interface ProtectedResourceInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array | null;
}

/**
 * One API call with `Authorization: Bearer <token>` and `X-ATH-Agent-ID: <agent_id>` (CL-13): a
 * gateway proxy URL `<base>/ath/proxy/<provider>/<path>` or a native service's `api_base` URL.
 */
export async function protectedResourceRequest(
  resourceUrl: string | URL,
  accessToken: string,
  agentId: string,
  init: ProtectedResourceInit = {},
  options?: HttpOptions,
): Promise<Response> {
  const headers: Record<string, string> = { ...init.headers };
  for (const name of Object.keys(headers)) {
    if (/^(authorization|x-ath-agent-id)$/i.test(name)) delete headers[name];
  }
  headers['authorization'] = `Bearer ${accessToken}`;
  headers['x-ath-agent-id'] = agentId;
  if (init.body !== undefined && init.body !== null && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
    headers['content-type'] = 'application/json';
  }
  const requestInit: RequestInit = { method: (init.method ?? 'GET').toUpperCase(), headers };
  if (init.body !== undefined && init.body !== null) requestInit.body = init.body as string;
  return send(String(resourceUrl), requestInit, options);
}

/**
 * Returns the response unless it is an ATH error (a JSON ATHError body on a 4xx/5xx, e.g.
 * `TOKEN_REVOKED`), which becomes an AthClientError. Other API errors pass through untouched.
 */
export async function processProtectedResourceResponse(response: Response): Promise<Response> {
  if (response.status < 400) return response;
  const type = response.headers.get('content-type') ?? '';
  if (!type.includes('json')) return response;
  const copy = response.clone();
  const err = await errorFromResponse(copy, 'API call');
  return err.fromServer ? Promise.reject(err) : response;
}
