import {
  validateAuthorizationConfirmationRequest,
  validateDeviceEnrollmentResponse,
  validateHandshakeStatus,
  type AuthorizationConfirmationRequest,
  type AuthorizationConfirmationResponse,
  type DeviceEnrollmentResponse,
  type ServerJwks,
} from '@athkit/schemas';
import { CONFIRMATION_TYP, PUSH_TYP, signJson, verifyJsonJws } from '@athkit/core/handshake';
import { calculateJwkThumbprint, exportJWK, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import { randomToken } from './encoding.js';
import { AthClientError } from './errors.js';
import {
  normalizeBaseUrl,
  postJson,
  processJson,
  systemClock,
  type Clock,
  type HttpOptions,
} from './http.js';

/**
 * The user's side of the 9-step handshake (seed 000, AMB-33): a device key the user enrols with
 * the service, the pre-authorization credential it signs for an agent (step 0), and the signed
 * answer to the service's confirmation request (step 7). The agent never holds this key.
 */
export class UserWallet {
  private constructor(
    /** The user's id at the service (`iss` of everything this wallet signs); set by enrol(). */
    public userDid: string,
    private readonly privateKey: CryptoKey,
    readonly publicJwk: JWK & { kid: string },
    private readonly clock: Clock,
  ) {}

  get kid(): string {
    return this.publicJwk.kid;
  }

  /** A new P-256 device key. `userDid` may be set later from the enrolment answer. */
  static async generate(userDid = '', options: { clock?: Clock } = {}): Promise<UserWallet> {
    const pair = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    return UserWallet.fromPrivateJwk(await exportJWK(pair.privateKey), userDid, options);
  }

  /** A wallet from a stored private JWK (`d` present). */
  static async fromPrivateJwk(jwk: JWK, userDid = '', options: { clock?: Clock } = {}): Promise<UserWallet> {
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string') {
      throw new AthClientError('invalid_argument', 'the user key must be a private EC P-256 JWK');
    }
    const pub = { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! };
    const kid = jwk.kid ?? (await calculateJwkThumbprint(pub, 'sha256'));
    const key = await importJWK({ ...pub, d: jwk.d }, 'ES256', { extractable: true });
    if (key instanceof Uint8Array) throw new AthClientError('invalid_argument', 'not an asymmetric key');
    return new UserWallet(userDid, key, { ...pub, kid }, options.clock ?? systemClock);
  }

  /** The private JWK, for the wallet's own encrypted storage. Never send it anywhere. */
  async exportPrivateJwk(): Promise<JWK> {
    const { kty, crv, x, y, d } = await exportJWK(this.privateKey);
    return { kty, crv, x, y, d, kid: this.kid, ...(this.userDid ? { user_did: this.userDid } : {}) };
  }

  /**
   * POST /ath/handshake/devices as the signed-in user: `headers` carry the service's own session
   * (cookie, bearer). Records the returned user_did.
   */
  async enrol(
    serviceUrl: string | URL,
    options: { headers?: Record<string, string>; pushEndpoint?: string } & HttpOptions = {},
  ): Promise<DeviceEnrollmentResponse> {
    const base = normalizeBaseUrl(serviceUrl);
    const { headers = {}, pushEndpoint, ...http } = options;
    const res = await postJson(
      `${base}/ath/handshake/devices`,
      { public_key: this.publicJwk, ...(pushEndpoint ? { push_endpoint: pushEndpoint } : {}) },
      http,
      headers,
    );
    const body = await processJson(res, 201, validateDeviceEnrollmentResponse, 'device enrolment');
    this.userDid = body.user_did;
    return body;
  }

  /**
   * Step 0: the user-signed pre-authorization credential (AMB-33): `{iss: user_did, sub: client_did,
   * aud: server_did, scope, iat, exp, jti}`. The agent stores it and presents it at step 5.
   */
  async preAuthorize(input: {
    clientDid: string;
    audience: string;
    scopes: readonly string[];
    expiresInSeconds: number;
  }): Promise<string> {
    if (!this.userDid)
      throw new AthClientError('invalid_argument', 'the wallet has no user_did yet: enrol first');
    if (input.scopes.length === 0)
      throw new AthClientError('invalid_argument', 'pre-authorize at least one scope');
    const iat = Math.floor(this.clock.now() / 1000);
    return new SignJWT({ scope: input.scopes.join(' ') })
      .setProtectedHeader({ alg: 'ES256', kid: this.kid, typ: 'JWT' })
      .setIssuer(this.userDid)
      .setSubject(input.clientDid)
      .setAudience(input.audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + input.expiresInSeconds)
      .setJti(randomToken(16))
      .sign(this.privateKey);
  }

  /**
   * Checks a pushed step-6 request: its schema and the service's signature (with ath-app.json
   * `server_jwks`). Returns the request, or throws `invalid_response`.
   */
  async verifyRequest(message: unknown, serverJwks: ServerJwks): Promise<AuthorizationConfirmationRequest> {
    const parsed = validateAuthorizationConfirmationRequest(message);
    if (!parsed.valid)
      throw new AthClientError('invalid_response', 'not an authorization_confirmation_request');
    const { signature, ...rest } = parsed.value;
    const payload = await verifyJsonJws(signature, serverJwks.keys);
    const { typ, ...signed } = payload ?? {};
    const same =
      typ === PUSH_TYP &&
      Object.keys(signed).length === Object.keys(rest).length &&
      Object.entries(rest).every(([k, v]) => JSON.stringify(signed[k]) === JSON.stringify(v));
    if (!same)
      throw new AthClientError('invalid_response', 'the confirmation request is not signed by the service');
    return parsed.value;
  }

  /** Step 7: the user-signed decision for a confirmation request (approve some or all scopes, or deny). */
  async confirmation(
    request: AuthorizationConfirmationRequest,
    decision: { approve: boolean; scopes?: readonly string[] },
  ): Promise<AuthorizationConfirmationResponse> {
    const iat = Math.floor(this.clock.now() / 1000);
    const approved_scopes = decision.approve ? [...(decision.scopes ?? request.requested_scopes)] : [];
    const outside = approved_scopes.filter((s) => !request.requested_scopes.includes(s));
    if (outside.length) throw new AthClientError('invalid_argument', `not requested: ${outside.join(' ')}`);
    const signature = await signJson(this.privateKey, this.kid, {
      typ: CONFIRMATION_TYP,
      iss: this.userDid,
      aud: request.server_did,
      handshake_id: request.handshake_id,
      request_id: request.request_id,
      approved: decision.approve,
      approved_scopes,
      iat,
      exp: iat + 300,
      jti: randomToken(16),
    });
    return {
      type: 'authorization_confirmation_response',
      request_id: request.request_id,
      approved: decision.approve,
      approved_scopes,
      signature,
      timestamp: iat,
    };
  }

  /** Signs the decision and posts it to the request's confirmation endpoint (no agent credentials, ever). */
  async confirm(
    request: AuthorizationConfirmationRequest,
    decision: { approve: boolean; scopes?: readonly string[] },
    http: HttpOptions = {},
  ): Promise<AuthorizationConfirmationResponse> {
    const body = await this.confirmation(request, decision);
    await processJson(
      await postJson(request.confirmation_endpoint, body, http),
      200,
      validateHandshakeStatus,
      'confirmation',
    );
    return body;
  }
}
