import {
  ENDPOINTS,
  PROTOCOL_VERSION,
  validateHandshakeAuthorizationResponse,
  validateHandshakeComplete,
  validateHandshakeResponse,
  validateIdentityResult,
  validateHandshakeStatus,
  validateScopeResult,
  type EcP256PublicJwk,
  type HandshakeAuthorizationRequest,
  type HandshakeComplete,
  type HandshakeRequest,
  type HandshakeResponse,
  type IdentityResult,
  type ScopeResult,
  type ServerJwks,
} from '@athkit/schemas';
import { signAttestation } from '@athkit/core/attestation';
import {
  KEY_EXCHANGE_ALG,
  MAX_SESSION_KEY_SECONDS,
  SERVER_TRANSCRIPT_TYP,
  decryptWithSessionKey,
  deriveSessionKey,
  encryptWithSessionKey,
  generateEphemeralKeyPair,
  samePublicKey,
  signPresentation,
  verifyJsonJws,
  type EncryptedBody,
  type SessionKey,
} from '@athkit/core/handshake';
import { exportJWK, type JWK } from 'jose';
import { createAttestation, DEFAULT_ATTESTATION_LIFETIME_SECONDS, type AgentCredentials } from './attestation.js';
import { basicAuthorization, randomToken } from './encoding.js';
import { AthClientError } from './errors.js';
import { errorFromResponse, postJson, processJson, readJson, send, type Clock, type HttpOptions } from './http.js';

/** One message of the handshake as it went over the wire (for logs and the demo). */
export interface HandshakeStepEvent {
  step: number;
  name: string;
  direction: 'agent → service' | 'service → agent';
  method?: string;
  url?: string;
  message: unknown;
}

export interface HandshakeParameters {
  scopes: string[];
  /** The user's pre-authorization credential (a user-signed JWT, step 0), kept by the agent (CL-25). */
  credential: string;
  /** Requested token lifetime in seconds; the service clamps it (≤ 3600, AMB-17). */
  ttl?: number;
  /** Free-form context shown to the user with the confirmation request. */
  context?: Record<string, unknown>;
  /** The agent's published public key; default: exported from the private key, else read from agent.json. */
  publicJwk?: JWK;
  /** Protocol versions offered (default ["0.1"]). */
  versions?: string[];
  /** Told about every message sent and received. */
  onStep?: (event: HandshakeStepEvent) => void;
  /** How long to wait for the user's decision (default 600 000 ms) and how often to ask (default: the client's poll interval). */
  timeoutMs?: number;
  intervalMs?: number;
  signal?: AbortSignal;
}

/** What a finished handshake leaves the agent with (step 9). */
export interface HandshakeSession {
  handshakeId: string;
  version: string;
  serverDid: string;
  /** The server key the transcript was verified with (CL-23: saved). */
  serverKey: EcP256PublicJwk;
  identity: IdentityResult;
  scopeResult: ScopeResult;
  complete: HandshakeComplete;
  /** K = HKDF-SHA256(ECDH, nonce_a ‖ nonce_b, "ATH/0.1 session " ‖ handshake_id) (AMB-34). */
  sessionKey: SessionKey;
  /** When the session key must no longer be used (≤ 24 h; here the token's lifetime). */
  sessionKeyExpiresAt: number;
  /** AES-256-GCM envelope of a request body (optional; TLS + Bearer stay mandatory). */
  encrypt(body: string | Uint8Array, aad?: string): Promise<EncryptedBody>;
  decrypt(envelope: EncryptedBody, aad?: string): Promise<Uint8Array>;
}

/** What the handshake needs from the NativeClient (kept narrow so it stays testable). */
export interface HandshakeContext {
  baseUrl: string;
  agent: AgentCredentials;
  clientId: string;
  clientSecret: string;
  providerId: string;
  /** ath-app.json as discovered. */
  service: Record<string, unknown>;
  clock: Clock;
  http: HttpOptions & { lifetimeSeconds?: number };
  pollIntervalMs: number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
}

const SUPPORTED = [PROTOCOL_VERSION];
const sec = (ms: number): number => Math.floor(ms / 1000);

function fail(message: string, details?: Record<string, unknown>): AthClientError {
  return new AthClientError('handshake_failed', message, details ? { details } : {});
}

const randomNonce = (): string => randomToken(32);

/** The handshake extension of ath-app.json, or `handshake_unsupported`. */
export function handshakeDiscovery(service: Record<string, unknown>): {
  endpoint: string;
  jwks: ServerJwks;
  serverDid: string;
} {
  const endpoints = service['ath_endpoints'] as Record<string, unknown> | undefined;
  const endpoint = endpoints?.['handshake'];
  const jwks = service['server_jwks'] as ServerJwks | undefined;
  const serverDid = service['server_did'];
  if (typeof endpoint !== 'string' || !jwks || !Array.isArray(jwks.keys) || typeof serverDid !== 'string') {
    throw new AthClientError(
      'handshake_unsupported',
      'the service does not advertise the 9-step handshake in ath-app.json',
    );
  }
  return { endpoint, jwks, serverDid };
}

async function ownPublicJwk(ctx: HandshakeContext, given: JWK | undefined): Promise<JWK> {
  if (given) return { kty: given.kty, crv: given.crv, x: given.x, y: given.y };
  try {
    const { kty, crv, x, y } = await exportJWK(ctx.agent.privateKey);
    if (x && y) return { kty, crv, x, y };
  } catch {
    // not extractable: read the published key instead
  }
  const res = await send(ctx.agent.agentId, { method: 'GET' }, ctx.http);
  if (!res.ok) throw await errorFromResponse(res, 'agent identity document');
  const doc = (await readJson(res, 'agent identity document')) as { public_key?: JWK | { keys?: JWK[] } } | null;
  const pk = doc?.public_key;
  const keys = pk && 'keys' in pk && Array.isArray(pk.keys) ? pk.keys : pk ? [pk as JWK] : [];
  const mine = keys.find((k) => ctx.agent.kid === undefined || k.kid === ctx.agent.kid) ?? keys[0];
  if (!mine)
    throw new AthClientError('invalid_argument', 'pass publicJwk: the agent key could not be determined');
  return { kty: mine.kty, crv: mine.crv, x: mine.x, y: mine.y };
}

/**
 * Runs steps 1-9 against a native service (seed 000, checklist Part 4 binding) and returns the
 * established session. Every server message is checked before the next step (CL-23, CL-24, CL-27);
 * the user's confirmation (steps 6-7) happens between the service and the user, and the agent only
 * polls for its outcome (CL-26).
 */
export async function runHandshake(ctx: HandshakeContext, p: HandshakeParameters): Promise<HandshakeSession> {
  const { endpoint, jwks, serverDid } = handshakeDiscovery(ctx.service);
  if (p.scopes.length === 0)
    throw new AthClientError('invalid_argument', 'handshake needs at least one scope');
  const emit = (e: HandshakeStepEvent) => p.onStep?.(e);
  const versions = p.versions ?? SUPPORTED;

  // Steps 1 → 2.
  const nonceA = randomNonce(); // CL-22
  const request: HandshakeRequest = {
    type: 'handshake_request',
    client_id: ctx.clientId,
    client_did: ctx.agent.agentId,
    client_pubkey: (await ownPublicJwk(ctx, p.publicJwk)) as EcP256PublicJwk,
    versions: versions as [string, ...string[]],
    capabilities: ['ES256', 'TLS1.3'],
    nonce: nonceA,
    timestamp: sec(ctx.clock.now()),
  };
  emit({
    step: 1,
    name: 'handshake_request',
    direction: 'agent → service',
    method: 'POST',
    url: endpoint,
    message: request,
  });
  const hello: HandshakeResponse = await processJson(
    await postJson(endpoint, request, ctx.http),
    201,
    validateHandshakeResponse,
    'handshake',
  );
  emit({ step: 2, name: 'handshake_response', direction: 'service → agent', message: hello });

  // CL-23: the server DID and key are the published ones, and the server signed our nonce A.
  if (hello.server_did !== serverDid)
    throw fail('server_did differs from ath-app.json', { server_did: hello.server_did });
  if (!jwks.keys.some((k) => samePublicKey(k, hello.server_pubkey))) {
    throw fail('server_pubkey is not a key published in ath-app.json server_jwks');
  }
  const transcript = await verifyJsonJws(hello.signature, [hello.server_pubkey]);
  if (
    !transcript ||
    transcript['typ'] !== SERVER_TRANSCRIPT_TYP ||
    transcript['nonce_a'] !== nonceA ||
    transcript['nonce_b'] !== hello.nonce ||
    transcript['client_did'] !== ctx.agent.agentId ||
    transcript['server_did'] !== serverDid ||
    transcript['handshake_id'] !== hello.handshake_id ||
    transcript['version'] !== hello.version
  ) {
    throw fail('the server signature over the handshake transcript does not verify');
  }
  if (!versions.includes(hello.version))
    throw fail(`the server chose version ${hello.version}, which was not offered`);
  if (!hello.capabilities.includes('ES256')) throw fail('the server did not agree on ES256');

  // Steps 3 → 4 (CL-24): an attestation bound to nonce A, nonce B and the handshake id.
  const handshakeUrl = `${endpoint}/${hello.handshake_id}`;
  const proof = {
    type: 'identity_proof' as const,
    signature: await signAttestation({
      privateKey: ctx.agent.privateKey,
      ...(ctx.agent.kid !== undefined ? { kid: ctx.agent.kid } : {}),
      agentId: ctx.agent.agentId,
      audience: handshakeUrl,
      clock: ctx.clock,
      lifetimeSeconds: DEFAULT_ATTESTATION_LIFETIME_SECONDS,
      extraClaims: { nonce_a: nonceA, nonce_b: hello.nonce, handshake_id: hello.handshake_id },
    }),
    credentials: [],
    timestamp: sec(ctx.clock.now()),
  };
  emit({
    step: 3,
    name: 'identity_proof',
    direction: 'agent → service',
    method: 'POST',
    url: `${handshakeUrl}/proof`,
    message: proof,
  });
  const identity = await processJson(
    await postJson(`${handshakeUrl}/proof`, proof, ctx.http),
    200,
    validateIdentityResult,
    'identity proof',
  );
  emit({ step: 4, name: 'identity_result', direction: 'service → agent', message: identity });
  if (!identity.success) throw fail('identity_result.success is false');
  const unsupported = p.scopes.filter((s) => !identity.metadata.scopes_supported.includes(s));
  if (unsupported.length)
    throw fail(`the service does not support ${unsupported.join(' ')}`, { scopes: unsupported });

  // Step 5: the scope request, folded into POST /ath/authorize, with the user's credential.
  const authorizeUrl = `${ctx.baseUrl}${ENDPOINTS.authorize.path}`;
  const scopeRequest: HandshakeAuthorizationRequest = {
    client_id: ctx.clientId,
    agent_attestation: await createAttestation(ctx.agent, ctx.baseUrl, 'authorize', ctx.http),
    provider_id: ctx.providerId,
    scopes: p.scopes as [string, ...string[]],
    state: randomNonce(),
    handshake_id: hello.handshake_id,
    ...(p.ttl !== undefined ? { ttl: p.ttl } : {}),
    user_authorization: {
      credential: p.credential,
      signature: await signPresentation({
        privateKey: ctx.agent.privateKey,
        ...(ctx.agent.kid !== undefined ? { kid: ctx.agent.kid } : {}),
        clientDid: ctx.agent.agentId,
        serverDid,
        handshakeId: hello.handshake_id,
        credential: p.credential,
        now: ctx.clock.now(),
      }),
    },
    ...(p.context ? { context: p.context } : {}),
  };
  emit({
    step: 5,
    name: 'scope_request',
    direction: 'agent → service',
    method: 'POST',
    url: authorizeUrl,
    message: scopeRequest,
  });
  const started = await processJson(
    await postJson(authorizeUrl, scopeRequest, ctx.http),
    200,
    validateHandshakeAuthorizationResponse,
    'scope request',
  );
  emit({ step: 5, name: 'scope_request accepted', direction: 'service → agent', message: started });

  // Steps 6-7 happen between the service and the user. Step 8: poll (CL-26).
  const deadline = ctx.clock.now() + (p.timeoutMs ?? 600_000);
  let scopeResult: ScopeResult | undefined;
  for (;;) {
    const res = await send(
      handshakeUrl,
      { method: 'GET', headers: { authorization: basicAuthorization(ctx.clientId, ctx.clientSecret) } },
      ctx.http,
    );
    if (res.status !== 200) throw await errorFromResponse(res, 'scope result');
    const body = await readJson(res, 'scope result');
    if (validateScopeResult.is(body)) {
      scopeResult = body;
      break;
    }
    if (!validateHandshakeStatus.is(body))
      throw new AthClientError('invalid_response', 'scope result: neither scope_result nor pending');
    if (ctx.clock.now() + (p.intervalMs ?? ctx.pollIntervalMs) > deadline) {
      throw new AthClientError('wait_timeout', 'the user has not confirmed the authorization in time');
    }
    await ctx.sleep(p.intervalMs ?? ctx.pollIntervalMs, p.signal);
  }
  emit({
    step: 8,
    name: 'scope_result',
    direction: 'service → agent',
    method: 'GET',
    url: handshakeUrl,
    message: scopeResult,
  });
  // CL-27: granted ⊆ requested and not empty.
  const extra = scopeResult.scopes_granted.filter((s) => !p.scopes.includes(s));
  if (extra.length) throw fail('scope_result grants scopes that were not requested', { scopes: extra });
  if (scopeResult.scopes_granted.length === 0)
    throw fail('no scope was granted', { scopes_denied: scopeResult.scopes_denied });

  // Step 9 (CL-28): a fresh ephemeral ECDH key for this handshake only.
  const eph = await generateEphemeralKeyPair();
  const tokenUrl = `${ctx.baseUrl}${ENDPOINTS.token.path}`;
  const tokenBody = {
    grant_type: 'authorization_code',
    client_id: ctx.clientId,
    client_secret: ctx.clientSecret,
    agent_attestation: await createAttestation(ctx.agent, ctx.baseUrl, 'token', ctx.http),
    code: started.request_id,
    ath_session_id: started.ath_session_id,
    key_exchange: { alg: KEY_EXCHANGE_ALG, epk: eph.publicJwk },
  };
  emit({
    step: 9,
    name: 'token request + key_exchange',
    direction: 'agent → service',
    method: 'POST',
    url: tokenUrl,
    message: { ...tokenBody, client_secret: '<redacted>' },
  });
  const complete = await processJson(
    await postJson(tokenUrl, tokenBody, ctx.http),
    200,
    validateHandshakeComplete,
    'token exchange',
  );
  emit({
    step: 9,
    name: 'handshake_complete',
    direction: 'service → agent',
    message: { ...complete, access_token: '<redacted>' },
  });
  const problems: string[] = [];
  if (complete.agent_id !== ctx.agent.agentId) problems.push('agent_id');
  if (complete.provider_id !== ctx.providerId) problems.push('provider_id');
  if (complete.handshake_id !== hello.handshake_id) problems.push('handshake_id');
  if (complete.effective_scopes.some((s) => !scopeResult.scopes_granted.includes(s)))
    problems.push('effective_scopes ⊄ scopes_granted');
  if (complete.expires_in > complete.ttl_granted || complete.expires_in > 3600)
    problems.push('expires_in > ttl_granted');
  if (problems.length) throw fail(`the token does not match the handshake: ${problems.join(', ')}`);

  const sessionKey = await deriveSessionKey({
    privateKey: eph.privateKey,
    peerPublicJwk: complete.key_exchange_params,
    nonceA,
    nonceB: hello.nonce,
    handshakeId: hello.handshake_id,
  });
  const keySeconds = Math.min(complete.session_key_expires_in ?? complete.expires_in, MAX_SESSION_KEY_SECONDS);
  return {
    handshakeId: hello.handshake_id,
    version: hello.version,
    serverDid,
    serverKey: hello.server_pubkey,
    identity,
    scopeResult,
    complete,
    sessionKey,
    sessionKeyExpiresAt: ctx.clock.now() + keySeconds * 1000,
    encrypt: (body, aad) => encryptWithSessionKey(sessionKey.key, body, aad),
    decrypt: (envelope, aad) => decryptWithSessionKey(sessionKey.key, envelope, aad),
  };
}
