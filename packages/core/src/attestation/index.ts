export { acceptedAudiences, audienceMatches, type AudienceMode } from './audience.js';
export {
  signAttestation,
  generateAgentKeyPair,
  exportPublicJwk,
  type SignAttestationOptions,
} from './sign.js';
export {
  AttestationVerifier,
  type AttestationVerifierOptions,
  type AttestationExpectation,
  type VerifiedAttestation,
} from './verify.js';
export { MAX_ATTESTATION_LENGTH, hasDuplicateKeys, type AttestationHeader } from './compact.js';
