import { errors, jwtVerify, type JWTPayload } from 'jose';
import { systemClock, type Clock } from '../clock.js';
import { AthError } from '../errors.js';
import type { Store } from '../store.js';
import { attestationFailure } from '../identity/failure.js';
import type { AgentKey } from '../identity/keys.js';
import type { IdentityResolver, ResolvedIdentity } from '../identity/resolver.js';
import { audienceMatches } from './audience.js';
import { decodeJsonSegment, parseHeader, splitCompact } from './compact.js';

export interface AttestationVerifierOptions {
  resolver: IdentityResolver;
  /** Replay cache; keyed by (agent_id, jti) and kept until `exp` (C-020, C-022). */
  replay: Pick<Store, 'markJtiUsed'>;
  clock?: Clock;
  /** Allowed |now − iat| in seconds (default 300; C-018). */
  skewSeconds?: number;
  /** Allowed exp − iat in seconds (default 3600; C-035). */
  maxLifetimeSeconds?: number;
}

export interface AttestationExpectation {
  /** Accepted `aud` values for the receiving endpoint (see acceptedAudiences). */
  audiences: ReadonlySet<string> | readonly string[];
  /**
   * The agent_id whose document supplies the key: the registered agent_id at authorize/token,
   * the body's agent_id at register (C-023, AMB-26). `sub` must equal it.
   */
  agentId: string;
}

export interface VerifiedAttestation {
  agentId: string;
  jti: string;
  /** `iat` in milliseconds since the epoch. */
  issuedAt: number;
  /** `exp` in milliseconds since the epoch. */
  expiresAt: number;
  claims: JWTPayload;
  identity: ResolvedIdentity;
}

const REQUIRED_CLAIMS = ['iss', 'sub', 'aud', 'iat', 'exp', 'jti'];
const MAX_JTI_LENGTH = 256;

/** Why a key did not verify; both may be cured by a fresh document (key rotation, C-029). */
type Retryable = 'unknown_kid' | 'invalid_signature';

/**
 * Verifies ATH attestation JWTs. Cheap structural checks come first, then the key is taken only
 * from the identity document at `expect.agentId` (never from iss, kid, jku, x5u or jwk), then jose
 * checks the signature pinned to ES256, then our own time, audience and issuer rules, and last the
 * jti is consumed atomically. Every failure is `INVALID_ATTESTATION` (401) with `details.reason`.
 */
export class AttestationVerifier {
  private readonly resolver: IdentityResolver;
  private readonly replay: Pick<Store, 'markJtiUsed'>;
  private readonly clock: Clock;
  private readonly skew: number;
  private readonly maxLifetime: number;
  /** Accepted `iss` values, derived once per fetched identity. */
  private readonly issuers = new WeakMap<ResolvedIdentity, ReadonlySet<string>>();

  constructor(options: AttestationVerifierOptions) {
    this.resolver = options.resolver;
    this.replay = options.replay;
    this.clock = options.clock ?? systemClock;
    this.skew = options.skewSeconds ?? 300;
    this.maxLifetime = options.maxLifetimeSeconds ?? 3600;
  }

  async verify(jwt: string, expect: AttestationExpectation): Promise<VerifiedAttestation> {
    const [headerSegment, payloadSegment] = splitCompact(jwt);
    const header = parseHeader(headerSegment);
    const agentId = expect.agentId;

    // Warm path: no fetch can happen, and jose's `subject` option enforces sub after the signature,
    // so the payload is decoded only once (by jose). Cold path: refuse a foreign `sub` before
    // fetching anything (threats A11).
    const cached = this.resolver.peek(agentId);
    const subChecked = cached === undefined;
    if (subChecked) this.assertSubject(payloadSegment, agentId);
    let identity = cached ?? (await this.resolver.resolve(agentId));

    const now = this.clock.now();
    let outcome = await this.verifySignature(jwt, header.kid, identity, agentId, now);
    if (typeof outcome === 'string') {
      // Only a signature/kid failure may bypass the cache (C-029), at most once per agent per
      // interval (enforced by the resolver, C-030). Expiry or audience failures never get here (C-031).
      if (!subChecked) this.assertSubject(payloadSegment, agentId);
      const stale = identity;
      const refreshed = await this.resolver.resolve(agentId, { forceRefresh: true }).catch(() => stale);
      if (refreshed !== stale) {
        identity = refreshed;
        outcome = await this.verifySignature(jwt, header.kid, identity, agentId, now);
      }
      if (typeof outcome === 'string') {
        throw outcome === 'unknown_kid'
          ? attestationFailure('unknown_kid', 'No key in the identity document matches the attestation kid')
          : attestationFailure(
              'invalid_signature',
              'The attestation signature does not verify with the agent key',
            );
      }
    }
    return this.checkClaims(outcome, identity, expect.audiences, now);
  }

  private assertSubject(payloadSegment: string, agentId: string): void {
    if (decodeJsonSegment(payloadSegment).value['sub'] !== agentId) {
      throw attestationFailure('sub_mismatch', 'The attestation sub does not equal the agent_id');
    }
  }

  /** The key named by `kid`, or the document's single key when the document has no kids (C-036). */
  private selectKey(keys: readonly AgentKey[], kid: string | undefined): AgentKey | undefined {
    if (keys.length === 1) {
      const only = keys[0]!;
      return only.kid === null || kid === undefined || only.kid === kid ? only : undefined;
    }
    return kid === undefined ? undefined : keys.find((k) => k.kid === kid);
  }

  private async verifySignature(
    jwt: string,
    kid: string | undefined,
    identity: ResolvedIdentity,
    agentId: string,
    now: number,
  ): Promise<JWTPayload | Retryable> {
    const key = this.selectKey(identity.keys, kid);
    if (key === undefined) return 'unknown_kid';
    try {
      const { payload } = await jwtVerify(jwt, key.key, {
        algorithms: ['ES256'],
        requiredClaims: REQUIRED_CLAIMS,
        subject: agentId,
        currentDate: new Date(now),
      });
      return payload;
    } catch (err) {
      if (err instanceof errors.JWSSignatureVerificationFailed) return 'invalid_signature';
      throw fromJoseError(err);
    }
  }

  private async checkClaims(
    claims: JWTPayload,
    identity: ResolvedIdentity,
    audiences: ReadonlySet<string> | readonly string[],
    nowMs: number,
  ): Promise<VerifiedAttestation> {
    // jose has checked presence of every required claim, numeric iat/exp, exp > now and sub.
    const now = Math.floor(nowMs / 1000);
    const iat = claims.iat!;
    const exp = claims.exp!;
    const { jti, iss } = claims;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
      throw attestationFailure('invalid_claim', `jti must be a string of 1-${MAX_JTI_LENGTH} characters`, {
        claim: 'jti',
      });
    }
    if (Math.abs(now - iat) > this.skew) {
      throw attestationFailure(
        'iat_out_of_range',
        `iat must be within ${this.skew} seconds of the server time`,
      );
    }
    if (exp <= iat) throw attestationFailure('invalid_claim', 'exp must be after iat', { claim: 'exp' });
    if (exp - iat > this.maxLifetime) {
      throw attestationFailure('lifetime_too_long', `exp - iat must be at most ${this.maxLifetime} seconds`);
    }
    const accepted = Array.isArray(audiences)
      ? new Set<string>(audiences)
      : (audiences as ReadonlySet<string>);
    if (!audienceMatches(claims.aud, accepted))
      throw attestationFailure('audience_mismatch', 'The attestation aud does not name this endpoint');
    if (typeof iss !== 'string' || !this.acceptedIssuers(identity).has(iss)) {
      throw attestationFailure('issuer_mismatch', 'The attestation iss does not name the agent host');
    }
    // Consumed now, before any business check of the caller can fail (C-021).
    if (!(await this.replay.markJtiUsed(identity.agentId, jti, exp * 1000))) {
      throw attestationFailure('replayed_jti', 'The attestation jti has already been used');
    }
    return { agentId: identity.agentId, jti, issuedAt: iat * 1000, expiresAt: exp * 1000, claims, identity };
  }

  /** C-024 / AMB-09: the origin, the bare host (with or without port), or the full agent_id. */
  private acceptedIssuers(identity: ResolvedIdentity): ReadonlySet<string> {
    let set = this.issuers.get(identity);
    if (set === undefined) {
      const url = new URL(identity.agentId);
      set = new Set([url.origin, url.host, url.hostname, identity.agentId]);
      this.issuers.set(identity, set);
    }
    return set;
  }
}

/** Maps jose's errors to our reasons; anything unexpected from untrusted input is "malformed". */
function fromJoseError(err: unknown): AthError {
  if (err instanceof AthError) return err;
  if (err instanceof errors.JWTExpired) return attestationFailure('expired', 'The attestation has expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing')
      return attestationFailure('missing_claim', `The attestation lacks the ${err.claim} claim`, {
        claim: err.claim,
      });
    if (err.claim === 'sub')
      return attestationFailure('sub_mismatch', 'The attestation sub does not equal the agent_id');
    return attestationFailure('invalid_claim', `The attestation ${err.claim} claim is invalid`, {
      claim: err.claim,
    });
  }
  if (err instanceof errors.JOSEAlgNotAllowed)
    return attestationFailure('unsupported_alg', 'agent_attestation must be signed with ES256');
  return attestationFailure('malformed_token', 'agent_attestation is not a valid JWT');
}
