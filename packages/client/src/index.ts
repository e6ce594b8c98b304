// @athkit/client: the ATH agent SDK. Runtime-neutral: fetch + Web Crypto only (Node-only helpers
// live in '@athkit/client/node').
export {
  AthClientError,
  isAthClientError,
  type AthClientErrorCode,
  type AthClientErrorOptions,
  type ClientErrorCode,
  type RecoveryAction,
} from './errors.js';
export {
  DEFAULT_TIMEOUT_MS,
  normalizeBaseUrl,
  parseRetryAfter,
  systemClock,
  type Clock,
  type FetchLike,
  type HttpOptions,
} from './http.js';
export {
  DEFAULT_ATTESTATION_LIFETIME_SECONDS,
  attestationAudience,
  createAttestation,
  type AgentCredentials,
  type AgentCryptoKey,
  type AttestationOptions,
  type AttestedEndpoint,
} from './attestation.js';
export {
  createIdentityDocument,
  exportAgentKey,
  generateAgentKey,
  importAgentKey,
  jwkThumbprint,
  publicJwk,
  type AgentKey,
  type IdentityDocumentOptions,
  type KeyFormat,
  type PublicJwk,
} from './keys.js';
export {
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
  type AuthorizationParameters,
  type ProtectedResourceInit,
  type RegistrationParameters,
  type RevocationParameters,
  type TokenExpectation,
  type TokenParameters,
} from './endpoints.js';
export { generateState, parseRedirect } from './redirect.js';
export {
  MemoryCredentialStore,
  type CredentialStore,
  type PendingAuthorization,
  type StoredCredentials,
  type StoredToken,
} from './store.js';
export {
  AthClient,
  GatewayClient,
  NativeClient,
  NO_REDIRECT_CODE,
  type AthClientOptions,
  type AuthorizeOptions,
  type ExchangeOptions,
  type GatewayAuthorizeOptions,
  type GatewayRegisterOptions,
  type NativeRegisterOptions,
  type RegistrationResult,
  type WaitOptions,
} from './client.js';
export {
  handshakeDiscovery,
  runHandshake,
  type HandshakeContext,
  type HandshakeParameters,
  type HandshakeSession,
  type HandshakeStepEvent,
} from './handshake.js';
export { UserWallet } from './wallet.js';
