export { athFastify, athFastify as default, MAX_JSON_DEPTH, type AthRouteConfig } from './plugin.js';
export { AthFastifyOptionsError, type AthFastifyOptions, type AuthenticateUser } from './options.js';
export { CONSENT_PATH, GATEWAY_CONTINUE_PATH, sendCompletionPage, sendConsentPage, sendGatewayConsentPage, type ConsentPageInput, type GatewayConsentPageInput } from './pages.js';
export { HSTS, accessRequest, athHeaders, escapeHtml, fromFastifyError, headerCount, parseCookies, replyAthError, sendAthError, singleHeader } from './http.js';
export {
  athEndpoints,
  endpoint,
  engineRateLimits,
  formToObject,
  onlyValue,
  statusAuth,
  wellKnownDocument,
  type AthEndpointsOptions,
  type AthRateLimits,
  type BodyKind,
  type BrowserKit,
} from './endpoints.js';
export { athHandshake, type AthHandshakeOptions } from './handshake/plugin.js';
