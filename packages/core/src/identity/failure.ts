import { AthError } from '../errors.js';

/**
 * Every way an attestation or its identity document can be unusable. All of them are
 * `INVALID_ATTESTATION` (401): the agent's misconfiguration is never a server fault (AMB-25).
 * The reason travels in `details.reason` so operators and agent developers can tell them apart.
 */
export type AttestationFailureReason =
  // agent_id / fetch target
  | 'invalid_agent_id'
  | 'ssrf_blocked'
  | 'identity_document_unavailable'
  | 'identity_document_redirect'
  | 'identity_document_timeout'
  | 'identity_document_too_large'
  | 'invalid_identity_document'
  // the JWT itself
  | 'malformed_token'
  | 'unsupported_alg'
  | 'sub_mismatch'
  | 'unknown_kid'
  | 'invalid_signature'
  | 'missing_claim'
  | 'invalid_claim'
  | 'expired'
  | 'iat_out_of_range'
  | 'lifetime_too_long'
  | 'audience_mismatch'
  | 'issuer_mismatch'
  | 'replayed_jti'
  // 9-step handshake proof (step 3): the JWT does not bind this handshake's nonces and id
  | 'transcript_mismatch';

/** Builds the one error type of this module. Messages never contain the token or resolved IPs. */
export function attestationFailure(
  reason: AttestationFailureReason,
  message: string,
  extra?: Record<string, unknown>,
): AthError {
  return new AthError('INVALID_ATTESTATION', message, { reason, ...extra });
}
