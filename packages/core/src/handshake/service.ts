import {
  validateAuthorizationConfirmationResponse,
  validateDeviceEnrollmentRequest,
  validateHandshakeAuthorizationRequest,
  validateHandshakeRequest,
  validateHandshakeRestrictions,
  validateHandshakeTokenRequest,
  validateIdentityProof,
  validateUserAuthorizationCredentialClaims,
  type AuthorizationConfirmationRequest,
  type DeviceEnrollmentResponse,
  type HandshakeDiscoveryExtension,
  type HandshakeResponse,
  type HandshakeStatus,
  type IdentityResult,
  type ScopeResult,
} from '@athkit/schemas';
import {
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  exportJWK,
  importJWK,
  importSPKI,
  jwtVerify,
  type JWK,
  type JWTPayload,
} from 'jose';
import { acceptedAudiences } from '../attestation/index.js';
import { seconds as sec } from '../clock.js';
import { AthError } from '../errors.js';
import { attestationFailure } from '../identity/failure.js';
import type { IdentityResolver } from '../identity/resolver.js';
import { base64url, randomId } from '../random.js';
import { uniqueScopes } from '../scopes.js';
import type {
  AgentRecord,
  HandshakeData,
  HandshakeRecord,
  HandshakeState,
  SessionRecord,
  TokenRecord,
  TokenRestrictions,
} from '../store.js';
import { parseWire } from '../wire.js';
import { verifyOrAudit } from '../engine/attest.js';
import { completeConsent } from '../engine/authorization.js';
import {
  approvedScopes,
  authenticateClient,
  endpointUrl,
  MAX_TOKEN_TTL_SECONDS,
  requireApproved,
  type EngineContext,
  type HandshakeHooks,
} from '../engine/context.js';
import { BrowserConfirmationChannel, PushConfirmationChannel, type ConfirmationChannel } from './channels.js';
import {
  didDocument,
  didWebFor,
  generateServerSigningKey,
  samePublicKey,
  serverJwks,
  type ServerSigningKey,
} from './keys.js';
import { checkRestrictions, ipAllowed, ipRestricted } from './restrictions.js';
import {
  deriveSessionKey,
  ephemeralKeyThumbprint,
  generateEphemeralKeyPair,
  importEphemeralPublicKey,
  CIPHER_SUITE,
  KEY_EXCHANGE_ALG,
  MAX_SESSION_KEY_SECONDS,
  type SessionKey,
} from './session-key.js';
import {
  CONFIRMATION_TYP,
  PRESENTATION_TYP,
  PUSH_TYP,
  SERVER_TRANSCRIPT_TYP,
  credentialDigest,
  signJson,
  signServerTranscript,
  verifyJsonJws,
} from './transcript.js';
import type { UserKeyDirectory } from './users.js';

export const HANDSHAKE_PATH = '/ath/handshake';
export const DEVICES_PATH = '/ath/handshake/devices';
/** Steps 1 → 3 within 5 minutes (AMB-32, C-260). */
export const HANDSHAKE_TTL_SECONDS = 300;
/** Allowed clock drift of message timestamps (C-253). */
export const HANDSHAKE_SKEW_SECONDS = 300;
/** Replay memory of (client_did, nonce) pairs (AMB-32). */
export const NONCE_REPLAY_SECONDS = 600;
export const SUPPORTED_VERSIONS: readonly string[] = ['0.1'];
/** Signature algorithms the server accepts from agents (C-274: ES256; weaker ones never). */
export const SERVER_CAPABILITIES: readonly string[] = ['ES256', 'TLS1.3'];

export interface HandshakeOptions {
  /** The service's ES256 handshake key. Default: generated at start (development only; publish a stable key in production). */
  signingKey?: ServerSigningKey;
  /** Default `did:web:<host of baseUrl>` (AMB-23). */
  serverDid?: string;
  /** The app's provider_id (= app_id). Default: the only provider of the engine. */
  providerId?: string;
  /** Users' enrolled keys (and push endpoints): the `userKeys` hook of AMB-33. */
  users: UserKeyDirectory;
  /** Step 6-7 channels, tried in order. Default: push (when `users` has push endpoints), then the browser consent page. */
  channels?: ConfirmationChannel[];
  /** Restrictions put on every handshake token (AMB-35), or a function choosing them. */
  restrictions?:
    | TokenRestrictions
    | ((input: {
        agent: AgentRecord;
        userDid: string;
        scopes: string[];
      }) => TokenRestrictions | Promise<TokenRestrictions>);
  /** `token_max_ttl` of step 4, ≤ 3600 (default: the engine's token lifetime). */
  tokenMaxTtlSeconds?: number;
  /** Told about each derived session key (services that decrypt AES-256-GCM bodies keep it in memory). */
  onSessionKey?: (info: {
    handshakeId: string;
    tokenHash: string;
    agentId: string;
    sessionKey: SessionKey;
    expiresAt: number;
  }) => void;
  /** Also called with every step-6 message sent (audit, tests; C-264). */
  onConfirmationRequest?: (message: AuthorizationConfirmationRequest, channel: 'push' | 'browser') => void;
  /** `host:port` entries whose push endpoints may use plain http (development, tests). */
  allowInsecurePush?: readonly string[];
}

function parseVersion(v: string): [number, number] {
  const [a, b] = v.split('.');
  return [Number(a), Number(b)];
}

/** Highest common MAJOR.MINOR (AMB-36); null when none. */
export function negotiateVersion(
  offered: readonly string[],
  supported: readonly string[] = SUPPORTED_VERSIONS,
): string | null {
  const common = supported.filter((v) => offered.includes(v));
  common.sort((x, y) => {
    const [xa, xb] = parseVersion(x);
    const [ya, yb] = parseVersion(y);
    return ya - xa || yb - xb;
  });
  return common[0] ?? null;
}

function identityFailure(err: AthError): AthError {
  return new AthError('INVALID_ATTESTATION', err.message, {
    ...err.details,
    type: 'identity_result',
    success: false,
  });
}

function userDenied(reason: string, message: string): AthError {
  return new AthError('USER_DENIED', message, { reason });
}

/**
 * The 9-step trusted handshake (seed 000, checklist section M, Part 4 binding), as an optional
 * extension of native mode. Steps 1-4 and 7-8 are its own endpoints; step 5 extends
 * POST /ath/authorize and step 9 POST /ath/token through the engine's HandshakeHooks, so the
 * attestation, authorize, scope and token rules are core's own, not a fork.
 */
export class HandshakeService implements HandshakeHooks {
  readonly serverDid: string;
  readonly providerId: string;
  readonly scopesSupported: readonly string[];
  readonly tokenMaxTtlSeconds: number;
  private readonly channels: ConfirmationChannel[];

  private constructor(
    private readonly ctx: EngineContext,
    private readonly resolver: IdentityResolver,
    readonly signingKey: ServerSigningKey,
    private readonly options: HandshakeOptions,
  ) {
    this.serverDid = options.serverDid ?? didWebFor(ctx.baseUrl);
    const providers = ctx.providers.list();
    const providerId = options.providerId ?? (providers.length === 1 ? providers[0]!.provider_id : undefined);
    const provider = providerId === undefined ? undefined : ctx.providers.get(providerId);
    if (!provider)
      throw new RangeError('handshake: providerId must name the native app (the engine has several or none)');
    this.providerId = provider.provider_id;
    this.scopesSupported = [...provider.available_scopes];
    const maxTtl = options.tokenMaxTtlSeconds ?? ctx.tokenTtlSeconds;
    if (!Number.isInteger(maxTtl) || maxTtl < 1 || maxTtl > MAX_TOKEN_TTL_SECONDS)
      throw new RangeError('handshake: tokenMaxTtlSeconds must be 1…3600');
    this.tokenMaxTtlSeconds = Math.min(maxTtl, ctx.tokenTtlSeconds);
    const users = options.users;
    this.channels = options.channels ?? [
      ...(users.pushEndpoint
        ? [new PushConfirmationChannel({ endpoint: (u) => users.pushEndpoint!(u) })]
        : []),
      new BrowserConfirmationChannel(),
    ];
    if (options.restrictions && typeof options.restrictions !== 'function')
      checkRestrictions(options.restrictions);
  }

  static async create(
    ctx: EngineContext,
    resolver: IdentityResolver,
    options: HandshakeOptions,
  ): Promise<HandshakeService> {
    return new HandshakeService(
      ctx,
      resolver,
      options.signingKey ?? (await generateServerSigningKey()),
      options,
    );
  }

  /** URL of one handshake: the `aud` of its step-3 proof. */
  handshakeUrl(id: string): string {
    return `${endpointUrl(this.ctx, HANDSHAKE_PATH)}/${id}`;
  }

  /** The ath-app.json members this extension adds (AMB-21, AMB-23; C-256). */
  discovery(): HandshakeDiscoveryExtension {
    return {
      ath_endpoints: { handshake: endpointUrl(this.ctx, HANDSHAKE_PATH) },
      server_jwks: serverJwks(this.signingKey),
      server_did: this.serverDid,
    };
  }

  /** The did:web document (`/.well-known/did.json`), another publication point of the same key. */
  didDocument(): Record<string, unknown> {
    return didDocument(this.serverDid, this.signingKey);
  }

  // ---------------------------------------------------------------- steps 1 → 2

  /** POST /ath/handshake → 201 HandshakeResponse (C-250…C-257). */
  async start(body: unknown): Promise<HandshakeResponse> {
    const req = parseWire(validateHandshakeRequest, body);
    const now = this.ctx.clock.now();
    if (Math.abs(sec(now) - req.timestamp) > HANDSHAKE_SKEW_SECONDS) {
      throw new AthError(
        'INVALID_REQUEST',
        `timestamp must be within ${HANDSHAKE_SKEW_SECONDS} seconds of the server time (Unix seconds)`,
        {
          reason: 'timestamp_out_of_range',
        },
      );
    }
    const version = negotiateVersion(req.versions);
    if (version === null) {
      throw new AthError('INVALID_REQUEST', 'No common protocol version', {
        reason: 'unsupported_version',
        supported: [...SUPPORTED_VERSIONS],
      });
    }
    const capabilities = SERVER_CAPABILITIES.filter((c) => req.capabilities.includes(c));
    if (!capabilities.includes('ES256')) {
      throw new AthError('INVALID_REQUEST', 'No common signature algorithm (ES256 is required)', {
        reason: 'unsupported_algorithm',
        supported: [...SERVER_CAPABILITIES],
      });
    }

    const agent = await this.ctx.store.getAgent(req.client_id);
    if (!agent) throw new AthError('AGENT_NOT_REGISTERED', 'Agent is not registered');
    requireApproved(this.ctx, agent);
    await this.checkClientKey(agent, req.client_did, req.client_pubkey);

    // AMB-32: (did, nonce) is remembered for 10 minutes; the attestation replay cache holds it.
    if (
      !(await this.ctx.store.markJtiUsed(
        `nonce:${agent.agentId}`,
        req.nonce,
        now + NONCE_REPLAY_SECONDS * 1000,
      ))
    ) {
      throw new AthError('INVALID_REQUEST', 'This nonce was already used', { reason: 'replayed_nonce' });
    }

    const record: HandshakeRecord = {
      id: randomId(this.ctx.random, 'ath_hs_', 32),
      clientId: agent.clientId,
      agentId: agent.agentId,
      state: 'initiated',
      data: {
        version,
        capabilities,
        nonceA: req.nonce,
        nonceB: base64url(this.ctx.random.bytes(32)),
        serverDid: this.serverDid,
      },
      createdAt: now,
      expiresAt: now + HANDSHAKE_TTL_SECONDS * 1000,
      updatedAt: now,
    };
    await this.ctx.store.createHandshake(record);
    const signature = await signServerTranscript(this.signingKey, {
      typ: SERVER_TRANSCRIPT_TYP,
      handshake_id: record.id,
      client_did: agent.agentId,
      server_did: this.serverDid,
      nonce_a: record.data.nonceA,
      nonce_b: record.data.nonceB,
      version,
      aud: agent.agentId,
      iat: sec(now),
    });
    return {
      type: 'handshake_response',
      handshake_id: record.id,
      server_did: this.serverDid,
      server_pubkey: this.signingKey.publicJwk,
      version,
      capabilities: capabilities as [string, ...string[]],
      nonce: record.data.nonceB,
      signature,
      timestamp: sec(now),
      expires_in: HANDSHAKE_TTL_SECONDS,
    };
  }

  /** C-257 / AMB-23: client_did = the registered agent_id and client_pubkey = a key its agent.json publishes. */
  private async checkClientKey(agent: AgentRecord, clientDid: string, clientPubkey: unknown): Promise<void> {
    const fail = async (reason: string, message: string): Promise<never> => {
      await this.ctx.auditor.emit('attestation_failed', { agent_id: agent.agentId, denial_reason: reason });
      throw new AthError('INVALID_ATTESTATION', message, { reason });
    };
    if (clientDid !== agent.agentId)
      await fail('did_mismatch', 'client_did is not the agent_id registered for client_id');
    let presented: JWK;
    try {
      const key =
        typeof clientPubkey === 'string'
          ? await importSPKI(clientPubkey, 'ES256', { extractable: true })
          : await importJWK(
              { ...(clientPubkey as JWK), kid: undefined, alg: undefined, use: undefined },
              'ES256',
            );
      if (key instanceof Uint8Array) throw new TypeError('not a public key');
      presented = await exportJWK(key);
    } catch {
      return fail('invalid_client_pubkey', 'client_pubkey is not an ES256 (P-256) public key');
    }
    const identity = await this.resolver.resolve(agent.agentId); // INVALID_ATTESTATION when unusable
    const published = await Promise.all(identity.keys.map((k) => exportJWK(k.key)));
    if (!published.some((p) => samePublicKey(p, presented))) {
      await fail('key_mismatch', 'client_pubkey is not the key published in the agent identity document');
    }
  }

  // ---------------------------------------------------------------- steps 3 → 4

  /** POST /ath/handshake/{id}/proof → 200 IdentityResult (C-258…C-261). */
  async proof(id: string, body: unknown): Promise<IdentityResult> {
    const req = parseWire(validateIdentityProof, body, 'signature');
    const hs = await this.live(id, ['initiated']);
    const now = this.ctx.clock.now();
    try {
      const verified = await verifyOrAudit(this.ctx, req.signature, {
        agentId: hs.agentId,
        audiences: acceptedAudiences(this.ctx.baseUrl, `${HANDSHAKE_PATH}/${id}`, 'exact'),
      });
      const c = verified.claims;
      if (c['nonce_a'] !== hs.data.nonceA || c['nonce_b'] !== hs.data.nonceB || c['handshake_id'] !== hs.id) {
        throw attestationFailure(
          'transcript_mismatch',
          'The proof does not bind this handshake (nonce_a, nonce_b, handshake_id)',
        );
      }
      if (req.timestamp !== undefined && Math.abs(sec(now) - req.timestamp) > HANDSHAKE_SKEW_SECONDS) {
        throw attestationFailure(
          'iat_out_of_range',
          `timestamp must be within ${HANDSHAKE_SKEW_SECONDS} seconds of the server time`,
        );
      }
    } catch (err) {
      if (err instanceof AthError && err.code === 'INVALID_ATTESTATION') {
        // C-258: a failed proof terminates the handshake.
        await this.ctx.store.updateHandshake(hs.id, ['initiated'], {
          state: 'terminated',
          data: {
            ...hs.data,
            failure: typeof err.details?.['reason'] === 'string' ? err.details['reason'] : 'invalid_proof',
          },
          updatedAt: now,
        });
        throw identityFailure(err);
      }
      throw err;
    }
    const next = await this.ctx.store.updateHandshake(hs.id, ['initiated'], {
      state: 'authenticated',
      expiresAt: now + this.ctx.sessionTtlSeconds * 1000,
      updatedAt: now,
    });
    if (!next) throw new AthError('SESSION_NOT_FOUND', 'This handshake already moved on');
    return {
      type: 'identity_result',
      success: true,
      metadata: {
        scopes_supported: [...this.scopesSupported],
        token_max_ttl: this.tokenMaxTtlSeconds,
        require_user_confirmation: true,
      },
      error: null,
      timestamp: sec(now),
    };
  }

  /** The handshake in one of `states`, not expired: else 400 SESSION_NOT_FOUND / SESSION_EXPIRED (C-259, C-260). */
  private async live(id: string, states: HandshakeState[]): Promise<HandshakeRecord> {
    const hs = await this.ctx.store.getHandshake(id);
    if (!hs || !states.includes(hs.state))
      throw new AthError('SESSION_NOT_FOUND', 'Unknown handshake, or not at this step');
    if (hs.expiresAt <= this.ctx.clock.now())
      throw new AthError('SESSION_EXPIRED', 'The handshake has expired');
    return hs;
  }

  // ---------------------------------------------------------------- step 5 (POST /ath/authorize)

  async prepareAuthorize(input: {
    agent: AgentRecord;
    body: unknown;
    providerId: string;
    scopes: string[];
  }): ReturnType<HandshakeHooks['prepareAuthorize']> {
    const req = parseWire(validateHandshakeAuthorizationRequest, input.body, 'agent_attestation');
    const { agent, scopes } = input;
    const hs = await this.live(req.handshake_id, ['authenticated']);
    if (hs.clientId !== agent.clientId)
      throw new AthError('AGENT_IDENTITY_MISMATCH', 'This handshake belongs to another client');
    if (input.providerId !== this.providerId) {
      throw new AthError('PROVIDER_NOT_APPROVED', 'The handshake authorizes this service only', {
        provider_id: input.providerId,
      });
    }
    const unsupported = scopes.filter((s) => !this.scopesSupported.includes(s));
    if (unsupported.length)
      throw new AthError('SCOPE_NOT_APPROVED', 'Requested scopes are not supported by this service', {
        scopes: unsupported,
      });

    const now = this.ctx.clock.now();
    const credential = await this.verifyCredential(req.user_authorization.credential, agent, scopes, now);
    await this.verifyPresentation(
      req.user_authorization.signature,
      req.user_authorization.credential,
      agent,
      hs.id,
    );

    // AMB-17: clamped, never rejected; and never beyond the user's own authorization.
    const userLeft = Math.max(1, credential.exp - sec(now));
    const ttlGranted = Math.min(
      req.ttl ?? this.tokenMaxTtlSeconds,
      this.tokenMaxTtlSeconds,
      MAX_TOKEN_TTL_SECONDS,
      userLeft,
    );
    const restrictions = await this.restrictionsFor(agent, credential.iss, scopes);
    const requestId = randomId(this.ctx.random, 'ath_req_', 24);

    return {
      extra: { handshake_id: hs.id },
      finish: async (session: SessionRecord, authorizationUrl: string) => {
        const channel = await this.pickChannel(credential.iss);
        const data: HandshakeData = {
          ...hs.data,
          sessionId: session.id,
          requestId,
          userDid: credential.iss,
          requestedScopes: scopes,
          ttlGranted,
          restrictions,
          channel: channel.kind,
          confirmationExpiresAt: session.expiresAt,
        };
        const moved = await this.ctx.store.updateHandshake(hs.id, ['authenticated'], {
          state: 'awaiting_confirmation',
          data,
          expiresAt: session.expiresAt,
          updatedAt: this.ctx.clock.now(),
        });
        if (!moved) throw new AthError('SESSION_NOT_FOUND', 'This handshake already has a scope request');
        const used = await this.sendConfirmation(moved, agent, authorizationUrl, channel);
        return { request_id: requestId, handshake_id: hs.id, confirmation_channel: used };
      },
    };
  }

  /** AMB-33: a user-signed JWT verified against a key the user enrolled; any failure is 403 USER_DENIED with details.reason (C-262). */
  private async verifyCredential(
    credential: string,
    agent: AgentRecord,
    scopes: readonly string[],
    now: number,
  ): Promise<{ iss: string; exp: number; scope: string[] }> {
    let iss: unknown;
    try {
      iss = decodeJwt(credential).iss;
    } catch {
      throw userDenied('malformed_credential', 'The user credential is not a JWT');
    }
    if (typeof iss !== 'string' || iss.length === 0)
      throw userDenied('malformed_credential', 'The user credential has no iss (user_did)');
    const keys = await this.options.users.userKeys(iss);
    if (keys.length === 0) throw userDenied('unknown_user', 'No key is enrolled for this user');
    let kid: string | undefined;
    try {
      const h = decodeProtectedHeader(credential);
      kid = typeof h.kid === 'string' ? h.kid : undefined;
    } catch {
      throw userDenied('malformed_credential', 'The user credential is not a JWT');
    }
    const candidates =
      kid !== undefined && keys.some((k) => k.kid === kid) ? keys.filter((k) => k.kid === kid) : keys;
    let payload: JWTPayload | null = null;
    let expired = false;
    for (const jwk of candidates) {
      try {
        const key = await importJWK({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, 'ES256');
        ({ payload } = await jwtVerify(credential, key, {
          algorithms: ['ES256'],
          currentDate: new Date(now),
        }));
        break;
      } catch (err) {
        if (err instanceof joseErrors.JWTExpired) expired = true;
      }
    }
    if (expired && !payload) throw userDenied('credential_expired', 'The user credential has expired');
    if (!payload)
      throw userDenied(
        'invalid_credential_signature',
        "The user credential is not signed by the user's enrolled key",
      );
    const claims = validateUserAuthorizationCredentialClaims(payload);
    if (!claims.valid)
      throw userDenied(
        'invalid_credential',
        'The user credential lacks required claims (iss, sub, aud, scope, iat, exp, jti)',
      );
    const c = claims.value;
    if (c.sub !== agent.agentId)
      throw userDenied('credential_other_client', 'The user credential was issued to another client');
    const audiences = new Set([this.serverDid, this.ctx.baseUrl, `${this.ctx.baseUrl}/`]);
    if (!audiences.has(c.aud))
      throw userDenied('credential_other_audience', 'The user credential is for another service');
    if (c.iat > sec(now) + HANDSHAKE_SKEW_SECONDS)
      throw userDenied('invalid_credential', 'The user credential is issued in the future');
    const granted = new Set(c.scope.split(' ').filter(Boolean));
    const missing = scopes.filter((s) => !granted.has(s));
    if (missing.length) {
      throw new AthError('USER_DENIED', 'The user did not pre-authorize every requested scope', {
        reason: 'scope_not_preauthorized',
        scopes: missing,
      });
    }
    return { iss: c.iss, exp: c.exp, scope: [...granted] };
  }

  /** The agent's signature over the credential, bound to this handshake (C-262(c)). */
  private async verifyPresentation(
    signature: string,
    credential: string,
    agent: AgentRecord,
    handshakeId: string,
  ): Promise<void> {
    const identity = await this.resolver.resolve(agent.agentId);
    const payload = await verifyJsonJws(signature, identity.keys);
    if (
      !payload ||
      payload['typ'] !== PRESENTATION_TYP ||
      payload['handshake_id'] !== handshakeId ||
      payload['credential_sha256'] !== (await credentialDigest(credential))
    ) {
      throw userDenied(
        'invalid_presentation_signature',
        "The client's signature over the user credential does not verify",
      );
    }
  }

  private async restrictionsFor(
    agent: AgentRecord,
    userDid: string,
    scopes: string[],
  ): Promise<TokenRestrictions> {
    const r = this.options.restrictions;
    const value = typeof r === 'function' ? await r({ agent, userDid, scopes }) : (r ?? {});
    const checked = validateHandshakeRestrictions(value);
    if (!checked.valid) throw new TypeError('handshake restrictions must be a HandshakeRestrictions object');
    return checkRestrictions(value);
  }

  private async pickChannel(userDid: string): Promise<ConfirmationChannel> {
    for (const c of this.channels) if (await c.available(userDid)) return c;
    return new BrowserConfirmationChannel();
  }

  // ---------------------------------------------------------------- step 6

  /** Builds and signs the step-6 message and delivers it; falls back to the next channel on failure. */
  private async sendConfirmation(
    hs: HandshakeRecord,
    agent: AgentRecord,
    authorizationUrl: string,
    first: ConfirmationChannel,
  ): Promise<'push' | 'browser'> {
    const d = hs.data;
    const now = this.ctx.clock.now();
    const unsigned = {
      type: 'authorization_confirmation_request' as const,
      request_id: d.requestId!,
      handshake_id: hs.id,
      client_did: agent.agentId,
      client_info: { name: agent.name ?? agent.agentId, developer: agent.developer },
      requested_scopes: d.requestedScopes! as [string, ...string[]],
      ttl: d.ttlGranted!,
      expires_at: sec(d.confirmationExpiresAt!),
      timestamp: sec(now),
      confirmation_endpoint: `${this.handshakeUrl(hs.id)}/confirmation`,
      server_did: this.serverDid,
    };
    const message: AuthorizationConfirmationRequest = {
      ...unsigned,
      signature: await signJson(
        this.signingKey.privateKey,
        this.signingKey.kid,
        { typ: PUSH_TYP, ...unsigned },
        'ath-hs+jws',
      ),
    };
    const order = [first, ...this.channels.filter((c) => c !== first)];
    for (const channel of order) {
      if (!(await channel.available(d.userDid!))) continue;
      try {
        await channel.deliver({ userDid: d.userDid!, message, authorizationUrl });
        this.options.onConfirmationRequest?.(message, channel.kind);
        return channel.kind;
      } catch {
        // try the next channel; the browser consent page always remains
      }
    }
    this.options.onConfirmationRequest?.(message, 'browser');
    return 'browser';
  }

  // ---------------------------------------------------------------- step 7 (push variant)

  /**
   * POST /ath/handshake/{id}/confirmation (C-265): only a signature by a key the user enrolled is
   * accepted; anything else is 403 USER_DENIED and the request stays pending.
   */
  async confirm(id: string, body: unknown): Promise<HandshakeStatus> {
    const req = parseWire(validateAuthorizationConfirmationResponse, body);
    const hs = await this.live(id, ['awaiting_confirmation']);
    const d = hs.data;
    if (req.request_id !== d.requestId)
      throw new AthError('SESSION_NOT_FOUND', 'Unknown request_id for this handshake');
    const now = this.ctx.clock.now();
    if ((d.confirmationExpiresAt ?? 0) <= now)
      throw new AthError('SESSION_EXPIRED', 'The confirmation request has expired');

    const payload = await verifyJsonJws(req.signature, await this.options.users.userKeys(d.userDid!));
    if (!payload)
      throw userDenied('invalid_user_signature', "The confirmation is not signed by the user's enrolled key");
    const same = (a: readonly string[], b: unknown) =>
      Array.isArray(b) && a.length === b.length && a.every((s, i) => b[i] === s);
    const iat = payload['iat'];
    const exp = payload['exp'];
    const jti = payload['jti'];
    if (
      payload['typ'] !== CONFIRMATION_TYP ||
      payload['iss'] !== d.userDid ||
      payload['aud'] !== this.serverDid ||
      payload['handshake_id'] !== hs.id ||
      payload['request_id'] !== req.request_id ||
      payload['approved'] !== req.approved ||
      !same(req.approved_scopes, payload['approved_scopes']) ||
      typeof iat !== 'number' ||
      Math.abs(sec(now) - iat) > HANDSHAKE_SKEW_SECONDS ||
      typeof exp !== 'number' ||
      exp <= sec(now) ||
      typeof jti !== 'string'
    ) {
      throw userDenied('confirmation_mismatch', 'The signed confirmation does not match this request');
    }
    const requested = new Set(d.requestedScopes);
    const extra = req.approved_scopes.filter((s) => !requested.has(s));
    if (extra.length)
      throw new AthError('INVALID_REQUEST', 'approved_scopes must be a subset of the requested scopes', {
        scopes: extra,
      });
    if (!(await this.ctx.store.markJtiUsed(`confirm:${d.userDid!}`, jti, exp * 1000))) {
      throw userDenied('replayed_confirmation', 'This confirmation was already used');
    }

    const session = await this.ctx.store.getSession(d.sessionId!);
    if (!session || session.status !== 'pending')
      throw new AthError('SESSION_NOT_FOUND', 'This request was already decided');
    const approved = req.approved && req.approved_scopes.length > 0;
    await completeConsent(
      this.ctx,
      session,
      approved
        ? { kind: 'granted', userId: d.userDid!, consentedScopes: uniqueScopes(req.approved_scopes) }
        : { kind: 'denied' },
    );
    return { status: 'pending', handshake_id: hs.id, timestamp: sec(now) };
  }

  // ---------------------------------------------------------------- step 8

  /** GET /ath/handshake/{id} with Basic client credentials (C-266). */
  async status(
    id: string,
    auth: { clientId: string | undefined; clientSecret: string | undefined },
  ): Promise<ScopeResult | HandshakeStatus> {
    const agent = await authenticateClient(this.ctx, auth.clientId, auth.clientSecret);
    const hs = await this.ctx.store.getHandshake(id);
    if (!hs || hs.state === 'terminated')
      throw new AthError('SESSION_NOT_FOUND', 'Unknown or terminated handshake');
    if (hs.clientId !== agent.clientId)
      throw new AthError('AGENT_IDENTITY_MISMATCH', 'This handshake belongs to another client');
    const now = this.ctx.clock.now();
    if (hs.state === 'initiated' || hs.state === 'authenticated') {
      if (hs.expiresAt <= now) throw new AthError('SESSION_EXPIRED', 'The handshake has expired');
      throw new AthError('SESSION_NOT_FOUND', 'No scope request was made in this handshake yet', {
        reason: 'no_scope_request',
      });
    }
    const session = await this.ctx.store.getSession(hs.data.sessionId!);
    if (!session) throw new AthError('SESSION_NOT_FOUND', 'The authorization session is gone');
    if (session.status !== 'consumed' && session.expiresAt <= now)
      throw new AthError('SESSION_EXPIRED', 'The handshake has expired');
    switch (session.status) {
      case 'pending':
        return { status: 'pending', handshake_id: hs.id, timestamp: sec(now) };
      case 'denied':
        throw userDenied('user_declined', 'The user denied the authorization');
      case 'failed':
        throw new AthError('USER_DENIED', 'The user authorization failed', { reason: 'failed' });
      default:
        this.checkDecidingUser(hs, session);
        return this.scopeResult(agent, hs, session, now);
    }
  }

  /** The browser channel's signed-in user must be the user who pre-authorized the agent. */
  private checkDecidingUser(hs: HandshakeRecord, session: SessionRecord): void {
    if (session.userId !== hs.data.userDid) {
      throw userDenied(
        'user_mismatch',
        'The authorization was confirmed by another user than the one who pre-authorized it',
      );
    }
  }

  /** scopes_granted = requested ∩ user-approved ∩ registry-approved ∩ supported; everything else denied with a reason. */
  scopeResult(agent: AgentRecord, hs: HandshakeRecord, session: SessionRecord, now: number): ScopeResult {
    const requested = hs.data.requestedScopes ?? [];
    const userApproved = new Set(session.consentedScopes ?? requested);
    const registry = new Set(approvedScopes(agent, this.providerId));
    const supported = new Set(this.scopesSupported);
    const granted: string[] = [];
    const denied: ScopeResult['scopes_denied'] = [];
    for (const scope of requested) {
      if (!supported.has(scope)) denied.push({ scope, reason: 'not_supported' });
      else if (!registry.has(scope)) denied.push({ scope, reason: 'not_approved_for_agent' });
      else if (!userApproved.has(scope)) denied.push({ scope, reason: 'user_declined' });
      else granted.push(scope);
    }
    return {
      type: 'scope_result',
      status: 'approved',
      handshake_id: hs.id,
      scopes_granted: granted,
      scopes_denied: denied,
      ttl_granted: hs.data.ttlGranted ?? this.tokenMaxTtlSeconds,
      restrictions: { ...hs.data.restrictions },
      timestamp: sec(now),
    };
  }

  // ---------------------------------------------------------------- step 9 (POST /ath/token)

  async prepareToken(input: {
    agent: AgentRecord;
    body: unknown;
    session: SessionRecord;
  }): ReturnType<HandshakeHooks['prepareToken']> {
    const { agent, session } = input;
    const hs = await this.ctx.store.getHandshake(String(session.extra?.['handshake_id']));
    if (
      !hs ||
      hs.state !== 'awaiting_confirmation' ||
      hs.data.sessionId !== session.id ||
      hs.clientId !== agent.clientId
    ) {
      throw new AthError('SESSION_NOT_FOUND', 'This session has no handshake awaiting completion');
    }
    this.checkDecidingUser(hs, session);
    const req = parseWire(validateHandshakeTokenRequest, input.body, 'agent_attestation');
    const epk = req.key_exchange.epk;
    try {
      await importEphemeralPublicKey(epk);
    } catch {
      throw new AthError('INVALID_REQUEST', 'key_exchange.epk is not a valid P-256 public key', {
        reason: 'invalid_epk',
      });
    }
    const now = this.ctx.clock.now();
    // C-268: an ephemeral key is used for one handshake only.
    if (
      !(await this.ctx.store.markJtiUsed(
        'epk:',
        await ephemeralKeyThumbprint(epk),
        now + MAX_SESSION_KEY_SECONDS * 1000,
      ))
    ) {
      throw new AthError(
        'INVALID_REQUEST',
        'key_exchange.epk was already used; generate a new ephemeral key per handshake',
        { reason: 'epk_reused' },
      );
    }
    const ours = await generateEphemeralKeyPair();
    const sessionKey = await deriveSessionKey({
      privateKey: ours.privateKey,
      peerPublicJwk: epk,
      nonceA: hs.data.nonceA,
      nonceB: hs.data.nonceB,
      handshakeId: hs.id,
    });
    const ttlSeconds = Math.min(hs.data.ttlGranted ?? this.tokenMaxTtlSeconds, this.tokenMaxTtlSeconds);
    const restrictions =
      hs.data.restrictions && Object.keys(hs.data.restrictions).length ? hs.data.restrictions : null;
    return {
      ttlSeconds,
      restrictions,
      finish: async (record: TokenRecord) => {
        await this.ctx.store.updateHandshake(hs.id, ['awaiting_confirmation'], {
          state: 'completed',
          updatedAt: this.ctx.clock.now(),
        });
        const keySeconds = Math.min(MAX_SESSION_KEY_SECONDS, ttlSeconds);
        this.options.onSessionKey?.({
          handshakeId: hs.id,
          tokenHash: record.tokenHash,
          agentId: agent.agentId,
          sessionKey,
          expiresAt: now + keySeconds * 1000,
        });
        return {
          type: 'handshake_complete',
          handshake_id: hs.id,
          key_exchange_alg: KEY_EXCHANGE_ALG,
          key_exchange_params: ours.publicJwk,
          cipher_suite: CIPHER_SUITE,
          ttl_granted: ttlSeconds,
          restrictions: restrictions ?? {},
          session_key_expires_in: keySeconds,
          timestamp: sec(now),
        };
      },
    };
  }

  // ---------------------------------------------------------------- restrictions, devices

  /** The IP allow-list check for adapters whose validateAccess call had no client address (C-270). */
  checkClientIp(allowList: readonly string[], clientIp: string): void {
    if (!ipAllowed(clientIp, allowList)) throw ipRestricted();
  }

  /** POST /ath/handshake/devices: a signed-in user enrols a device key (and push endpoint). */
  async enrolDevice(userDid: string, body: unknown): Promise<DeviceEnrollmentResponse> {
    const req = parseWire(validateDeviceEnrollmentRequest, body);
    if (!this.options.users.enrol)
      throw new AthError('NOT_FOUND', 'This service does not enrol devices over ATH');
    if (req.push_endpoint !== undefined) this.checkPushEndpoint(req.push_endpoint);
    const { kid } = await this.options.users.enrol(userDid, {
      publicKey: req.public_key,
      pushEndpoint: req.push_endpoint ?? null,
    });
    return { user_did: userDid, kid, server_did: this.serverDid };
  }

  private checkPushEndpoint(endpoint: string): void {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new AthError('INVALID_REQUEST', 'push_endpoint must be an absolute URL', {
        field: 'push_endpoint',
      });
    }
    const insecureOk = url.protocol === 'http:' && (this.options.allowInsecurePush ?? []).includes(url.host);
    if ((url.protocol !== 'https:' && !insecureOk) || url.username || url.password || url.hash) {
      throw new AthError('INVALID_REQUEST', 'push_endpoint must be an https URL', { field: 'push_endpoint' });
    }
  }
}
