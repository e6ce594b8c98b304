// @athkit/client/node: Node-only helpers (files, node:http). The main entry stays runtime-neutral.
export { ensurePrivateDir, writePrivateFile, readOptionalFile, isGroupOrWorldReadable } from './files.js';
export { readAgentKey, writeAgentKey, loadOrCreateAgentKey } from './keyfile.js';
export { FileCredentialStore } from './credential-store.js';
export {
  identityDocumentListener,
  serveIdentityDocument,
  listenForRedirect,
  type ServeIdentityOptions,
  type ServedIdentity,
  type RedirectListener,
} from './serve.js';
