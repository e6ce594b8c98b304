export {
  HandshakeService,
  negotiateVersion,
  HANDSHAKE_PATH,
  DEVICES_PATH,
  HANDSHAKE_TTL_SECONDS,
  HANDSHAKE_SKEW_SECONDS,
  NONCE_REPLAY_SECONDS,
  SUPPORTED_VERSIONS,
  SERVER_CAPABILITIES,
  type HandshakeOptions,
} from './service.js';
export {
  generateServerSigningKey,
  importServerSigningKey,
  exportServerSigningKey,
  serverJwks,
  didWebFor,
  didDocument,
  samePublicKey,
  type ServerSigningKey,
} from './keys.js';
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
  signServerTranscript,
  verifyJsonJws,
  signPresentation,
  credentialDigest,
  type ServerTranscript,
  type VerificationKey,
} from './transcript.js';
export { MemoryUserDirectory, type UserKeyDirectory } from './users.js';
export {
  BrowserConfirmationChannel,
  PushConfirmationChannel,
  type ConfirmationChannel,
  type ConfirmationTarget,
  type PushChannelOptions,
} from './channels.js';
export { parseRateLimit, ipAllowed, checkRestrictions, enforceTokenRestrictions } from './restrictions.js';
