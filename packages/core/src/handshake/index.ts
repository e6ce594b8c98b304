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
  didDocument,
  type ServerSigningKey,
} from './keys.js';
// Everything the agent side needs (session key, transcript signing) is also the server's.
export * from './agent.js';
export { signServerTranscript } from './transcript.js';
export { MemoryUserDirectory, type UserKeyDirectory } from './users.js';
export {
  BrowserConfirmationChannel,
  PushConfirmationChannel,
  type ConfirmationChannel,
  type ConfirmationTarget,
  type PushChannelOptions,
} from './channels.js';
export { parseRateLimit, ipAllowed, checkRestrictions, enforceTokenRestrictions } from './restrictions.js';
