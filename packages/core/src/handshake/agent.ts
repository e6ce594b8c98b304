// The client-safe half of the 9-step handshake (`@athkit/core/handshake`): key agreement, session
// key derivation, transcript signing and verification. No engine, store or network code, so the
// agent SDK and the user wallet can import it in any runtime with Web Crypto.
export {
  KEY_EXCHANGE_ALG,
  CIPHER_SUITE,
  MAX_SESSION_KEY_SECONDS,
  generateEphemeralKeyPair,
  importEphemeralPublicKey,
  ephemeralKeyThumbprint,
  deriveSessionKey,
  encryptWithSessionKey,
  decryptWithSessionKey,
  fromBase64url,
  type EphemeralKeyPair,
  type SessionKey,
  type SessionKeyInput,
  type EncryptedBody,
} from './session-key.js';
export {
  SERVER_TRANSCRIPT_TYP,
  PRESENTATION_TYP,
  CONFIRMATION_TYP,
  PUSH_TYP,
  signJson,
  verifyJsonJws,
  signPresentation,
  credentialDigest,
  type ServerTranscript,
  type VerificationKey,
} from './transcript.js';
export { samePublicKey, didWebFor } from './keys.js';
