export {
  classifyAddress,
  isForbiddenAddress,
  isIpLiteral,
  parseIPv4,
  parseIPv6,
  type AddressClass,
} from './ip.js';
export type { DocumentFetcher, FetchedDocument } from './fetcher.js';
export {
  createSafeFetcher,
  type SafeFetcher,
  type SafeFetcherOptions,
  type LookupAllFunction,
} from './node-fetcher.js';
export { parseAgentId, MAX_AGENT_ID_LENGTH } from './agent-id.js';
export { parseIdentityDocument, exceedsJsonDepth, MAX_DOCUMENT_DEPTH } from './document.js';
export { importAgentKeys, type AgentKey } from './keys.js';
export {
  IdentityResolver,
  MAX_CACHE_TTL_MS,
  type IdentityResolverOptions,
  type ResolvedIdentity,
} from './resolver.js';
export { attestationFailure, type AttestationFailureReason } from './failure.js';
